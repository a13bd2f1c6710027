"""``atoll edge browse`` against a real asyncua server (run in its own thread and loop)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
import typer
from typer.testing import CliRunner

from atoll.cli import edge_browse
from tests.edge.connectors.opcua_machine import Press, free_port


@pytest.fixture
def press():
    ready, stop = threading.Event(), None
    holder: dict = {}

    def serve():
        async def main():
            nonlocal stop
            stop = asyncio.Event()
            async with Press() as p:
                await p.set("Temperature", 42.5)
                holder["press"] = p
                ready.set()
                await stop.wait()

        loop = asyncio.new_event_loop()
        holder["loop"] = loop
        loop.run_until_complete(main())
        loop.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield holder["press"]
    holder["loop"].call_soon_threadsafe(stop.set)
    thread.join(10)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("version")(lambda: None)  # a group, as `atoll edge` is
    edge_browse.register(app)
    return app


def test_browse_lists_the_variables_under_a_node(press):
    result = CliRunner().invoke(
        _app(), ["browse", press.url, "--node", f"ns={press.ns};s=Press1", "--json"]
    )
    assert result.exit_code == 0, result.output
    found = {v["path"]: v for v in json.loads(result.stdout)}
    assert found["Temperature"]["value"] == 42.5
    assert found["Temperature"]["node"] == press.node("Temperature")
    assert set(found) >= {"Temperature", "Count", "Running", "Label", "SetSpeed/InputArguments"}


def test_browse_says_what_is_wrong():
    url = f"opc.tcp://127.0.0.1:{free_port()}"
    result = CliRunner().invoke(_app(), ["browse", url])
    assert result.exit_code == 2
    assert f"cannot reach {url}" in result.stderr
    result = CliRunner().invoke(_app(), ["browse", url, "--certificate", "c.der"])
    assert result.exit_code == 2
    assert "go together" in result.stderr
