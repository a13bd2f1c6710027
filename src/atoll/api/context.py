"""What the HTTP API needs from the rest of the platform: small ports, wired by the runtime.

``atoll.ingest.pipeline.IngestPipeline`` satisfies ``IngestSubmitter``; the MQTT side of ingest
provides a ``CommandSender`` and ``DeviceSessions``; ``atoll.rules.service.RulesService``
satisfies ``RulesPort``; ``atoll.detect.service.DetectionService`` satisfies ``DetectionPort``.
Any may be ``None`` (e.g. MQTT off, or a node without the rules or detection service): the API
then degrades (commands stay ``pending`` for HTTP polling, device-facing ingest, rules, alarms
and a device's detection answer 503, the live feed closes with 4503).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from atoll.core.lineage import ModelRecord, SeriesDetection
from atoll.registry import DeviceIdentity, Registry
from atoll.registry.commands import CommandSender
from atoll.registry.models import RulFit
from atoll.store.port import SeriesStore

if TYPE_CHECKING:
    import sqlalchemy as sa

    from atoll.bus.port import MessageBus
    from atoll.config import Settings
    from atoll.rules.alarms import Alarm, AlarmBook, Comment
    from atoll.rules.clock import Clock
    from atoll.rules.engine import RuleEngine
    from atoll.rules.forecasting import RuleForecasts
    from atoll.rules.loading import RuleFile
    from atoll.rules.model import ChannelSpec, Rule
    from atoll.rules.notify import Notifier
    from atoll.rules.reports import ReportScheduler
    from atoll.rules.repository import RuleRepository


@runtime_checkable
class IngestSubmitter(Protocol):
    async def submit_telemetry(
        self, identity: DeviceIdentity, body: bytes, transport: str = "mqtt"
    ) -> int:
        """Validate and durably store; return the number
        of points. Raises ``InvalidInput`` subclasses."""

    def admit(self, identity: DeviceIdentity, transport: str) -> None:
        """Raise ``RateLimited`` while the device or its tenant is over its rate limit."""

    async def refresh_quotas(self) -> None:
        """Ask the registry and the store again for the tenants' ingest rate and storage
        quotas (after one changed; other nodes hear of it on the bus)."""

    async def twin_reported(
        self, identity: DeviceIdentity, body: bytes, transport: str = "mqtt"
    ) -> Any:
        """Merge a reported-twin JSON document sent by the device itself."""

    async def command_ack(
        self, identity: DeviceIdentity, command_id: str, body: bytes, transport: str = "mqtt"
    ) -> Any:
        """A device's ``{"status": "ok"|"error", "result": ...}`` for one of its commands."""


@runtime_checkable
class DeviceSessions(Protocol):
    async def disconnect(self, device_id: str, reason: str, *, forget: bool = False) -> int:
        """Close the device's live MQTT connections now (it was disabled, revoked, rotated or
        deleted); return how many. When it returns, nothing more of the device is
        acknowledged over those connections. ``forget``: the device was deleted, drop what
        the broker keeps for it (persistent session) too."""


class RulesPort(Protocol):
    """What the rules, alarms and reports routes call on the rules service."""

    @property
    def clock(self) -> Clock: ...

    @property
    def engine(self) -> RuleEngine: ...

    @property
    def repo(self) -> RuleRepository: ...

    @property
    def alarms(self) -> AlarmBook: ...

    @property
    def notifier(self) -> Notifier: ...

    @property
    def forecasts(self) -> RuleForecasts:
        """The forecasts stored for ``forecast`` conditions."""

    @property
    def reports(self) -> ReportScheduler: ...

    @property
    def store(self) -> Any:
        """The ``SeriesStore`` reports and backtests read."""

    @property
    def db(self) -> sa.Engine: ...

    def validate_rule(self, data: Any, *, project: str | None = None) -> Rule: ...

    def check_channels(self, rule: Rule, extra: set[str] | frozenset[str] = ...) -> None: ...

    def get_rule(self, rule_id: str) -> Rule: ...

    def list_rules(self, project: str | list[str] | None = None) -> list[Rule]: ...

    async def create_rule(
        self, data: Any, *, project: str | None = None, auto_id: bool = False
    ) -> Rule: ...

    async def put_rule(self, data: Any, *, project: str | None = None) -> Rule: ...

    async def delete_rule(self, rule_id: str) -> None: ...

    async def apply(self, doc: RuleFile) -> RuleFile: ...

    def put_channel(self, spec: ChannelSpec) -> ChannelSpec: ...

    def delete_channel(self, project: str, name: str) -> None: ...

    async def test_channel(self, project: str, name: str) -> dict[str, Any]: ...

    async def acknowledge(self, alarm_id: int, actor: str, comment: str | None = None) -> Alarm: ...

    async def clear(self, alarm_id: int, actor: str, comment: str | None = None) -> Alarm: ...

    async def comment(self, alarm_id: int, author: str, text: str) -> Comment: ...


class DetectionPort(Protocol):
    """What a device's detection routes call on the detection service (times in µs)."""

    async def detection(self, project: str, device: str) -> list[SeriesDetection]:
        """What judges each series of the device now."""

    async def refit(
        self, project: str, device: str, metric: str | None = None, *, actor: str | None = None
    ) -> tuple[list[ModelRecord], list[tuple[str, str]]]:
        """Refit on stored history now: the new records, and ``(metric, why not)`` for the
        series of the device that could not be (one named ``metric`` raises instead).
        ``NotFound`` for a metric no detector judges, ``InvalidInput`` when it cannot be."""

    async def accept(
        self,
        project: str,
        device: str,
        metric: str,
        start: int,
        end: int,
        *,
        actor: str | None = None,
    ) -> ModelRecord:
        """Learn the stored readings in ``[start, end)`` as normal; the new record."""

    async def rebind(self, project: str, device_type: str) -> int:
        """The device type's detector bindings changed: its series start again with the
        detectors now chosen; how many did."""


class RulPort(Protocol):
    """What the RUL routes call on the RUL service (``atoll.rul.service.RulService``)."""

    def submit(
        self,
        project: str,
        device_type: str,
        *,
        actor: str,
        tenant: str | None = None,
        cycle: int = ...,
        since: int | None = None,
        until: int | None = None,
        cap: float = ...,
    ) -> RulFit:
        """Queue a fit of the device type's RUL model on the fleet's history: the job."""

    async def wait(self, project: str, fit_id: str, timeout: float = ...) -> RulFit:
        """The fit once it is done or failed."""


class ApiContext(Protocol):
    """Everything a handler may use; ``atoll.api.AppContext`` is the plain dataclass form."""

    registry: Registry
    store: SeriesStore
    ingest: IngestSubmitter | None
    commands: CommandSender | None
    sessions: DeviceSessions | None
    #: The live feed subscribes here; ``None``: ``/live`` closes with 4503.
    bus: MessageBus | None
    #: The runtime's settings (``None`` when the API runs without one, as in most tests).
    settings: Settings | None
    #: The rules service, or on a node without it an API-only one (``evaluate=False``);
    #: ``None`` (an API built without one, as in tests): rules and alarms answer 503.
    rules: RulesPort | None
    #: ``None`` on a node without the detection service: a device's detection answers 503.
    detection: DetectionPort | None
    #: ``None`` on a node without the RUL service: fitting an RUL model answers 503.
    rul: RulPort | None
    #: Where devices connect, as the broker actually bound it (``None``: MQTT off, or unknown).
    mqtt_url: str | None
    #: The node's counters by source, for ``GET /metrics`` (``atoll.api.metrics``; ``None``:
    #: only the process's own).
    metrics: Mapping[str, Callable[[], Mapping[str, Any]]] | None
