"""The runtime: wires settings → store → bus → registry → ingest → services → MQTT → HTTP API.

Services (detectors, rules, …) join through ``SERVICE_MODULES``: each listed module exposes
``create_service(ctx: ServiceContext) -> Service | None`` (``atoll.service``); services start
after the store, bus and registry are up and before devices can connect, and stop in reverse
order. Programs embedding Atoll can also call ``platform.add_service(svc)`` before ``start()``.
The HTTP API gets one typed ``AppContext`` (``atoll.api.context.ApiContext``), the rules
and detection services among it.

>>> # async with Platform(Settings(home=tmp, http_port=0, mqtt_port=0)) as p: print(p.http_url)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from atoll import datadir
from atoll.bus.port import MessageBus
from atoll.config import Settings
from atoll.core.errors import InvalidInput, Unavailable
from atoll.detect import service as detect_service
from atoll.forecast.models import preload
from atoll.ingest import quota_changes
from atoll.ingest.admission import raise_fd_limit
from atoll.ingest.embedded_broker import EmbeddedBroker, check_port_free
from atoll.ingest.pipeline import IngestPipeline
from atoll.registry import retention
from atoll.rul import service as rul_service
from atoll.rules import service as rules_service
from atoll.rules.service import RulesService
from atoll.service import PlatformParts, Service, ServiceContext, ServiceModule
from atoll.store.port import SeriesStore, UsageReader

log = logging.getLogger(__name__)

SERVICE_MODULES: tuple[ServiceModule, ...] = (
    detect_service,
    retention,
    rules_service,
    rul_service,
)


@dataclass
class _Named:
    name: str
    service: Service


def open_bus(url: str) -> MessageBus:
    scheme = url.partition("://")[0]
    if scheme == "memory":
        from atoll.bus.memory import MemoryBus

        return MemoryBus()
    if scheme == "nats":
        from atoll.bus.nats import NatsBus

        return NatsBus.from_url(url)
    raise InvalidInput(f"unsupported bus URL {url!r}", hint="use memory:// or nats://host:4222")


class Platform:
    """Everything Atoll runs, in one process. ``async with Platform(settings) as p: ...``."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: SeriesStore | None = None,
        password_hasher: Any = None,
    ) -> None:
        self.settings = settings or Settings()
        self.store: SeriesStore | None = store
        self._own_store = store is None
        self._password_hasher = password_hasher
        self.registry: Any = None
        self.bus: MessageBus | None = None
        self.pipeline: IngestPipeline | None = None
        self.mqtt: Any = None  # EmbeddedBroker | ExternalIngest | None
        self.commands: Any = None
        self.app: Any = None
        self.bootstrap: Any = None  # BootstrapSecrets on the very first start, else None
        self.http_port: int | None = None
        self._services: list[_Named] = []
        self._extra: list[_Named] = []
        self._http: Any = None
        self._http_task: asyncio.Task | None = None
        self._stack: list[tuple[str, Callable[[], Any]]] = []

    # -- extension point -------------------------------------------------------------------------

    def add_service(self, service: Service, name: str | None = None) -> None:
        self._extra.append(_Named(name or type(service).__name__, service))

    def _over_storage(self) -> dict[str, tuple[int, int]]:
        """The tenants at their storage quota (the pipeline asks about once a minute): the
        store's points per project, summed per tenant against the registry's quotas."""
        store = self.store
        if not isinstance(store, UsageReader):
            return {}

        def held() -> dict[str, int]:
            return {p: u.points for p, u in store.usage(since=time.time_ns() // 1000).items()}

        return self.registry.over_storage(held)

    def _metrics(
        self,
        detection: detect_service.DetectionService | None,
        rules: RulesService | None,
        rul: rul_service.RulService | None,
    ) -> dict[str, Callable[[], Mapping[str, Any]]]:
        """What ``GET /metrics`` exports (``atoll.api.metrics``): each running service's counters,
        read at scrape time."""
        sources: dict[str, Callable[[], Mapping[str, Any]]] = {}
        pipeline = self.pipeline
        if pipeline is not None:
            sources["ingest"] = lambda: dataclasses.asdict(pipeline.stats)
        if detection is not None:
            sources["detect"] = lambda: {
                **detection.stats,
                "owned_partitions": len(detection.partitioned.owned())
                if detection.partitioned is not None
                else None,
            }
        if rules is not None and rules.evaluate:
            sources["rules"] = lambda: {
                **rules.stats,
                "owned_partitions": len(rules.partitioned.owned())
                if rules.partitioned is not None
                else None,
            }
        if rul is not None:
            sources["rul"] = lambda: dict(rul.stats)
        return sources

    @property
    def services(self) -> list[Service]:
        return [s.service for s in self._services]

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        s = self.settings
        # Fail before opening anything if a port is taken, with the flag that picks another.
        if s.http_port:
            check_port_free(s.http_host, s.http_port, "HTTP", "--http-port")
        if s.mqtt_mode == "embedded" and s.mqtt_port:
            check_port_free(s.mqtt_host, s.mqtt_port, "MQTT", "--mqtt-port")
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise
        if _tuned:  # see tune_interpreter
            gc.freeze()
            self._stack.append(("gc", gc.unfreeze))  # collectable again once stopped

    async def _start(self) -> None:
        from atoll.api import AppContext, create_app
        from atoll.api.app import EXTENSION_MODULES
        from atoll.api.sender import TopicCommandSender
        from atoll.registry import Registry
        from atoll.registry.directory import RegistryDirectory
        from atoll.store import open_store
        from atoll.web import app as console

        s = self.settings
        self._limit_logs()
        await asyncio.to_thread(datadir.secure, s.home)
        if self.store is None:
            self.store = await asyncio.to_thread(open_store, s.resolved_store_url)
        if self._own_store:
            self._stack.append(("store", self.store.close))
        kw = {"password_hasher": self._password_hasher} if self._password_hasher is not None else {}
        self.registry = (
            Registry(s.registry_url, **kw) if s.registry_url else Registry.open(s.home, **kw)
        )
        self._stack.append(("registry", self.registry.close))
        self.bootstrap = self.registry.bootstrap()
        self.bus = open_bus(s.bus_url)
        self._stack.append(("bus", self.bus.close))
        connect = getattr(self.bus, "connect", None)
        if connect is not None:  # a networked bus fails here, naming its URL, not on first use
            await connect()
        directory = RegistryDirectory(self.registry)
        self.pipeline = IngestPipeline(
            self.store,
            self.bus,
            directory,
            s.limits,
            max_commit_points=s.max_commit_points,
            max_queued_points=s.max_queued_points,
            quotas=s.quotas,
            storage_check=self._over_storage,
            rates_check=self.registry.ingest_rates,
        )
        # The platform operator's quotas (PUT /tenants/{t}/quotas) over the settings': now,
        # whenever any node announces a change, and about once a minute.
        await self.pipeline.refresh_quotas()
        await self.pipeline.start()
        self._stack.append(("ingest", self.pipeline.stop))
        following = await quota_changes.follow(self.bus, self.pipeline.refresh_quotas)
        self._stack.append(("quota changes", following.unsubscribe))

        if s.mqtt_mode == "embedded":
            from atoll.ingest.admission import AdmissionLimits
            from atoll.ingest.listeners import listeners

            self.mqtt = EmbeddedBroker(
                self.pipeline,
                directory,
                host=s.mqtt_host,
                port=s.mqtt_port,
                listeners=listeners(s),
                admission=AdmissionLimits.of(s),
            )
        elif s.mqtt_mode == "external":
            from atoll.ingest.external import ExternalIngest

            self.mqtt = ExternalIngest.from_settings(s, self.pipeline, directory, self.registry)
        if self.mqtt is not None:
            self.commands = TopicCommandSender(self.mqtt.publish)
        if isinstance(self.mqtt, EmbeddedBroker):
            self.mqtt.on_subscribed = self._hand_over

        parts = PlatformParts(
            settings=s,
            registry=self.registry,
            store=self.store,
            bus=self.bus,
            commands=self.commands,
        )
        for named in self._discover_services(parts) + self._extra:
            await named.service.start()
            self._services.append(named)
            self._stack.append((named.name, named.service.stop))

        rules = next((x for x in self.services if isinstance(x, RulesService)), None)
        if rules is None:
            # A node without the rules service still serves every rules, alarms, channels and
            # reports route, from the shared database and the bus (docs/SCALING.md).
            try:
                rules = rules_service.api_only(parts)
                await rules.start()
                self._stack.append(("rules-api", rules.stop))
            except Exception:
                log.exception("the rules API could not be set up; its routes answer 503")
                rules = None

        if self.mqtt is not None:
            await self.mqtt.start()
            self._stack.append(("mqtt", self.mqtt.stop))

        # ``sessions``: registry changes through the API (disable, revoke, rotate, delete) close
        # the device's live connections before they answer.
        detection = next(
            (x for x in self.services if isinstance(x, detect_service.DetectionService)), None
        )
        rul = next((x for x in self.services if isinstance(x, rul_service.RulService)), None)
        ctx = AppContext(
            self.registry,
            self.store,
            ingest=self.pipeline,
            commands=self.commands,
            bus=self.bus,
            sessions=self.mqtt,
            settings=s,
            rules=rules,
            mqtt_url=self.mqtt_url,
            detection=detection,
            rul=rul,
            metrics=self._metrics(detection, rules, rul),
        )
        # The console mounts on the API app; it is composed here, above both.
        self.app = create_app(
            ctx, max_body_bytes=s.max_payload_bytes, extensions=(*EXTENSION_MODULES, console)
        )
        await self._start_http()
        # The stores and the broker auth files were just created with the process umask.
        await asyncio.to_thread(datadir.secure, s.home)

    def _limit_logs(self) -> None:
        """Hostile traffic must not fill the disk: rate-limit the loggers it can reach."""
        from atoll.ingest.log_limit import LogLimit

        limit = LogLimit()
        limit.install()
        task = asyncio.create_task(limit.run(), name="atoll-log-limit")

        def stop() -> None:
            task.cancel()
            limit.uninstall()
            limit.report()

        self._stack.append(("log limit", stop))

    async def _hand_over(self, device: str, topic_filter: str) -> None:
        """A device subscribed: send it the desired twin and the commands it missed."""
        from atoll.core import topics

        reg, sender = self.registry, self.commands
        try:
            if _filter_matches(topic_filter, topics.twin_desired(device)):
                twin = await asyncio.to_thread(reg.get_twin, device)
                if twin.desired_version:
                    await sender.publish_desired(device, twin.desired, twin.desired_version)
            if _filter_matches(topic_filter, topics.command(device, "any")):
                for cmd in await asyncio.to_thread(reg.list_commands, device, status="pending"):
                    await sender.send_command(cmd)
                    await asyncio.to_thread(reg.mark_command_delivered, device, cmd.id)
            if _filter_matches(topic_filter, topics.gateway_command(device, "any", "any")):
                # A gateway: its children's commands (docs/DEVICES.md, "Gateways").
                for cmd in await asyncio.to_thread(reg.pending_child_commands, device):
                    await sender.send_command(cmd)
                    await asyncio.to_thread(reg.mark_command_delivered, cmd.device, cmd.id)
        except Exception:  # the device can still poll over HTTP
            log.exception("handing over twin/commands to %s failed", device)

    async def _start_http(self) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self):  # the runtime owns signals (Ctrl-C stops everything)
                yield

        proxies = self.settings.trusted_proxies
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise; that would let
        # any local process pick the address the login limit counts. Off unless configured.
        config = uvicorn.Config(
            self.app,
            host=self.settings.http_host,
            port=self.settings.http_port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies or None,
        )
        self._http = _Server(config)
        self._http_task = asyncio.create_task(self._http.serve(), name="atoll-http")
        while not self._http.started:
            if self._http_task.done():
                exc = self._http_task.exception()
                raise Unavailable(
                    "could not start the HTTP API on"
                    f" {self.settings.http_host}:{self.settings.http_port}"
                    + (f": {exc}" if exc else ""),
                    hint="choose another port with --http-port N",
                )
            await asyncio.sleep(0.02)
        sock = self._http.servers[0].sockets[0]
        self.http_port = sock.getsockname()[1]
        self._stack.append(("http", self._stop_http))
        if self.settings.forecast_preload:
            threading.Thread(target=preload, name="atoll-forecast-preload", daemon=True).start()

    async def _stop_http(self) -> None:
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._http_task, 10)

    async def stop(self) -> None:
        """Stop in reverse order; ingest drains its queue so nothing acknowledged is lost."""
        while self._stack:
            name, fn = self._stack.pop()
            try:
                result = fn()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # keep stopping the rest
                log.exception("stopping %s failed", name)
        self._services.clear()

    async def run_until(self, event: asyncio.Event) -> None:
        await event.wait()

    # -- urls -------------------------------------------------------------------------------------

    @property
    def http_url(self) -> str:
        return f"http://{self.settings.http_host}:{self.http_port or self.settings.http_port}"

    @property
    def mqtt_url(self) -> str | None:
        if self.mqtt is None:
            return None
        return self.mqtt.url

    # -- services ----------------------------------------------------------------------------------

    def _discover_services(self, ctx: ServiceContext) -> list[_Named]:
        out = []
        wanted = self.settings.services
        for module in SERVICE_MODULES:
            name = module.__name__
            if wanted is not None and name not in wanted and name.rsplit(".", 2)[-2] not in wanted:
                continue
            try:
                svc = module.create_service(ctx)
            except Exception:
                # Like a Home Assistant integration: a broken service is reported, and ingest,
                # storage and the API keep running without it.
                log.exception("service %s could not be created; continuing without it", name)
                continue
            if svc is not None:
                out.append(_Named(name, svc))
        return out


def _filter_matches(topic_filter: str, topic: str) -> bool:
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(f) == len(t)


_tuned = False


def tune_interpreter() -> None:
    """For a process that runs one long-lived platform (``atoll up``, the demo, the benchmark).

    A shorter GIL switch interval: the ingest writer thread gets the GIL back quickly, so
    group commits (and the PUBACKs waiting on them) are not delayed by up to 5 ms each.

    Once a platform has started, the objects of start-up (modules, API, registry: ~10^5) are
    frozen out of the cyclic garbage collector's sight. Otherwise each full collection walks
    them all (60-100 ms); ingest triggers one every ~13,000 single-reading messages, which
    cost ~12 µs of event-loop time per message (docs/BENCHMARKS.md, Ingest, 2026-12-03).

    The open-file limit is raised to its hard limit: a soft limit of 1,024 is far below what
    a broker needs, and the MQTT connection caps are derived from it (``ingest.admission``).
    """
    global _tuned
    _tuned = True
    sys.setswitchinterval(0.001)
    raise_fd_limit()
