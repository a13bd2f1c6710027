"""A real Atoll API (registry, memory store, ingest) behind uvicorn on an ephemeral port."""

from __future__ import annotations

import asyncio
import socket
import threading

import uvicorn
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.store.memory import MemoryStore


class AtollServer:
    """Registry + memory store + ingest behind uvicorn on an ephemeral port, in a thread."""

    def __init__(self, tmp_path) -> None:
        self.registry = Registry.open(tmp_path, password_hasher=PasswordHasher(
            time_cost=1, memory_cost=1024, parallelism=1))
        self.boot = self.registry.bootstrap()
        self.store = MemoryStore()
        self.ready = threading.Event()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        pipeline = IngestPipeline(self.store, MemoryBus(), RegistryDirectory(self.registry),
                                  flush_interval=0.05)
        await pipeline.start()
        app = create_app(AppContext(self.registry, self.store, pipeline))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", lifespan="off"))
        serve = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.ready.set()
        await serve
        await pipeline.stop()

    def __enter__(self):
        self.thread.start()
        assert self.ready.wait(20), "uvicorn did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.registry.close()
