"""A real uvicorn server on an ephemeral port: registry (SQLite), memory store, real ingest
pipeline, the real rules service (rules, alarms, channels, reports on the registry's database)
and, with ``detection=True``, the real detection service (else a device's detection routes
answer 503); with ``rul=True`` the real RUL service, scoring every 0.2 s and looking for
retrainings due every 0.3 s."""

from __future__ import annotations

import asyncio
import socket
import threading
from typing import Self

import uvicorn
from argon2 import PasswordHasher

from atoll.api import AppContext, create_app
from atoll.bus.memory import MemoryBus
from atoll.detect.service import DetectionService
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import Registry
from atoll.registry.directory import RegistryDirectory
from atoll.rul.service import RulService
from atoll.rules.directory import RegistryDevices
from atoll.rules.service import RulesService
from atoll.store.memory import MemoryStore

FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


class ApiServer:
    """``with ApiServer(tmp_path) as s: ... s.url, s.boot.api_key``; runs in a background thread."""

    def __init__(self, data_dir, *, detection: bool = False, rul: bool = False) -> None:
        self.with_detection, self.with_rul = detection, rul
        self.detection: DetectionService | None = None
        self.rul: RulService | None = None
        self.data_dir = data_dir
        self.registry = Registry.open(data_dir, password_hasher=FAST_HASHER)
        self.boot = self.registry.bootstrap()
        self.store = MemoryStore()
        self.ready = threading.Event()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        bus = MemoryBus()
        pipeline = IngestPipeline(
            self.store, bus, RegistryDirectory(self.registry), flush_interval=0.05
        )
        await pipeline.start()
        self.pipeline = pipeline
        self.rules = RulesService(
            bus,
            db=self.registry.engine,
            directory=RegistryDevices(self.registry),
            store=self.store,
            tick_interval=0.2,
            catalog=self.registry,  # as ``create_service`` files the rules' forecasters
        )
        await self.rules.start()
        if self.with_detection:
            self.detection = DetectionService(
                bus, self.store, registry=self.registry, group=None, refit_interval=0
            )
            await self.detection.start()
        if self.with_rul:
            self.rul = RulService(
                bus,
                self.store,
                self.registry,
                self.data_dir / "models" / "rul",
                interval=0.2,
                refresh=0.2,
                retrain_check=0.3,
            )
            await self.rul.start()
        ctx = AppContext(
            self.registry,
            self.store,
            pipeline,
            bus=bus,
            rules=self.rules,
            detection=self.detection,
            rul=self.rul,
        )
        app = create_app(ctx)
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self.server = uvicorn.Server(config)
        serve = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        self.ready.set()
        await serve
        if self.rul is not None:
            await self.rul.stop()
        if self.detection is not None:
            await self.detection.stop()
        await self.rules.stop()
        await pipeline.stop()

    def __enter__(self) -> Self:
        self.thread.start()
        assert self.ready.wait(20), "uvicorn did not start"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        self.registry.close()
