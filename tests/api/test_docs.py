"""The SDK example in docs/API.md runs against a real server, so it cannot rot."""

import contextlib
import io
import re
from pathlib import Path

from tests.api.serving import ApiServer

DOC = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def test_api_md_python_example_runs(tmp_path):
    (code,) = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
    out = io.StringIO()
    with ApiServer(tmp_path) as server, contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {"url": server.url, "api_key": server.boot.api_key})  # noqa: S102 - our own doc
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("refused:") and "humidity" in lines[0]
    assert lines[1:] == ["24.5", "[24.5]", "too-warm [24.5]"]
