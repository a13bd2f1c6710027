"""Notification channels: a small ``Channel`` protocol, built-in webhook/command/log channels,
and a plug-in point (``register_channel_type`` or the ``atoll.channels`` entry-point group).

A channel type is data: a name, a pydantic model for its config, and a factory. A plug-in
package (email, chat...) declares ``[project.entry-points."atoll.channels"] mail = "pkg:TYPE"``
where ``TYPE`` is a ``ChannelType``; Atoll never imports it by name.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import random
import smtplib
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from email.message import EmailMessage
from importlib.metadata import entry_points
from typing import Any, Literal, Protocol, runtime_checkable

import httpx
import orjson
from pydantic import BaseModel, ConfigDict, Field

from atoll.core.errors import InvalidInput, Unavailable
from atoll.rules.loading import validate
from atoll.rules.model import ChannelSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: bytes
    mime: str


@dataclass(frozen=True)
class Notification:
    project: str
    event: str  # raised | acknowledged | cleared | escalated | repeat | report | test
    title: str
    text: str
    alarm: dict[str, Any] | None = None
    attachments: tuple[Attachment, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Notification:
        files = tuple(
            Attachment(a["filename"], base64.b64decode(a["content_base64"]), a["mime"])
            for a in d.get("attachments") or ()
        )
        return cls(d["project"], d["event"], d["title"], d["text"], d.get("alarm"), files)

    def to_json(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k != "attachments"}
        out["attachments"] = [
            {
                "filename": a.filename,
                "mime": a.mime,
                "content_base64": base64.b64encode(a.content).decode(),
            }
            for a in self.attachments
        ]
        return out


class DeliveryFailed(Unavailable):
    code = "delivery_failed"

    def __init__(self, message: str, *, attempts: int = 1, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts


@runtime_checkable
class Channel(Protocol):
    async def send(self, note: Notification) -> int:
        """Deliver ``note``; return how many attempts it took, or raise ``DeliveryFailed``."""


class CommandSender(Protocol):
    """Sends a command to a device (the registry/ingest side implements it over MQTT)."""

    async def send_command(self, project: str, device: str, name: str, args: dict[str, Any]) -> str:
        """Queue the command; return its id."""


@dataclass
class ChannelContext:
    """What channel factories may use."""

    command_sender: CommandSender | None = None
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep


@dataclass(frozen=True)
class ChannelType:
    name: str
    config: type[BaseModel]
    factory: Callable[[Any, ChannelContext], Channel]
    description: str = ""


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- webhook


class WebhookConfig(_Config):
    url: str = Field(pattern=r"^https?://", description="http(s) URL that receives a JSON POST")
    headers: dict[str, str] = {}
    timeout: float = Field(5.0, gt=0)
    attempts: int = Field(5, ge=1, le=20)
    backoff: float = Field(0.5, ge=0, description="first retry delay, doubled each time")
    max_backoff: float = Field(30.0, ge=0)
    jitter: float = Field(0.5, ge=0, le=1, description="fraction of each delay that is random")
    secret: str | None = Field(
        None, description="sign each body: header X-Atoll-Signature: sha256=HMAC(secret, body)"
    )


class WebhookChannel:
    """POSTs the notification as JSON; retries network errors, 429 and 5xx with backoff."""

    def __init__(self, config: WebhookConfig, ctx: ChannelContext) -> None:
        self.config, self.sleep = config, ctx.sleep

    def body(self, note: Notification) -> dict[str, Any]:
        return note.to_json()

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        c = self.config
        base = min(c.max_backoff, c.backoff * 2 ** (attempt - 1))
        if retry_after is not None:
            base = min(c.max_backoff, max(base, retry_after))
        return base * (1 - c.jitter * random.random())

    async def send(self, note: Notification) -> int:
        c = self.config
        last = ""
        content = orjson.dumps(self.body(note))
        headers = {"Content-Type": "application/json", **c.headers}
        if c.secret:
            mac = hmac.new(c.secret.encode(), content, hashlib.sha256).hexdigest()
            headers["X-Atoll-Signature"] = f"sha256={mac}"
        async with httpx.AsyncClient(timeout=c.timeout) as client:
            for attempt in range(1, c.attempts + 1):
                retry_after = None
                try:
                    r = await client.post(c.url, content=content, headers=headers)
                except httpx.HTTPError as exc:
                    last = f"{type(exc).__name__}: {exc}"
                else:
                    if r.is_success:
                        return attempt
                    last = f"HTTP {r.status_code}"
                    if r.status_code < 500 and r.status_code not in (408, 429):
                        raise DeliveryFailed(
                            f"webhook refused: {last}",
                            attempts=attempt,
                            hint="check the URL and credentials of the channel",
                        )
                    try:
                        retry_after = float(r.headers.get("retry-after", ""))
                    except ValueError:
                        pass
                if attempt < c.attempts:
                    await self.sleep(self.delay(attempt, retry_after))
        raise DeliveryFailed(
            f"webhook failed after {c.attempts} attempts: {last}", attempts=c.attempts
        )


class ChatConfig(WebhookConfig):
    field: str = Field(
        "text", description="'text' for Slack, Mattermost, Rocket.Chat; 'content' for Discord"
    )


class ChatChannel(WebhookChannel):
    """A chat room's incoming webhook: one line of text, with the same retries."""

    config: ChatConfig

    def body(self, note: Notification) -> dict[str, Any]:
        text = f"{note.title}\n{note.text}" if note.text else note.title
        return {self.config.field: text}


# ---------------------------------------------------------------- e-mail


class EmailConfig(_Config):
    host: str = Field(min_length=1, description="SMTP server")
    port: int = Field(587, ge=1, le=65535)
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$", description="From: address")
    to: list[str] = Field(min_length=1)
    timeout: float = Field(10.0, gt=0)
    attempts: int = Field(3, ge=1, le=20)
    backoff: float = Field(2.0, ge=0)


class EmailChannel:
    """Plain-text mail through SMTP (reports travel as attachments); retries with backoff."""

    def __init__(self, config: EmailConfig, ctx: ChannelContext) -> None:
        self.config, self.sleep = config, ctx.sleep

    def message(self, note: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = note.title
        msg["From"] = self.config.sender
        msg["To"] = ", ".join(self.config.to)
        msg.set_content(f"{note.text}\n\nproject: {note.project}\nevent: {note.event}\n")
        for a in note.attachments:
            main, _, sub = a.mime.partition("/")
            msg.add_attachment(
                a.content, maintype=main, subtype=sub or "octet-stream", filename=a.filename
            )
        return msg

    def _send(self, msg: EmailMessage) -> None:
        c = self.config
        cls = smtplib.SMTP_SSL if c.security == "ssl" else smtplib.SMTP
        with cls(c.host, c.port, timeout=c.timeout) as smtp:
            if c.security == "starttls":
                smtp.starttls()
            if c.username:
                smtp.login(c.username, c.password or "")
            smtp.send_message(msg)

    async def send(self, note: Notification) -> int:
        c, msg, last = self.config, self.message(note), ""
        for attempt in range(1, c.attempts + 1):
            try:
                await asyncio.to_thread(self._send, msg)
                return attempt
            except smtplib.SMTPRecipientsRefused as exc:
                raise DeliveryFailed(
                    f"mail refused for {list(exc.recipients)}",
                    attempts=attempt,
                    hint="check the 'to' addresses",
                ) from None
            except smtplib.SMTPAuthenticationError:
                raise DeliveryFailed(
                    "SMTP login refused", attempts=attempt, hint="check username and password"
                ) from None
            except (smtplib.SMTPException, OSError) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if attempt < c.attempts:
                await self.sleep(c.backoff * 2 ** (attempt - 1) * (1 - 0.5 * random.random()))
        raise DeliveryFailed(
            f"mail failed after {c.attempts} attempts: {last}", attempts=c.attempts
        )


# ---------------------------------------------------------------- command to a device


class CommandConfig(_Config):
    command: str = Field(min_length=1)
    args: dict[str, Any] = {}
    device: str | None = Field(None, description="default: the alarm's device")


class CommandChannel:
    """Sends a command to a device, e.g. switch a pump off when its alarm is raised."""

    def __init__(self, config: CommandConfig, ctx: ChannelContext) -> None:
        self.config, self.ctx = config, ctx

    async def send(self, note: Notification) -> int:
        sender = self.ctx.command_sender  # read late: the runtime may wire it after start
        if sender is None:
            raise DeliveryFailed("no command sender is configured in this process")
        device = self.config.device or (note.alarm or {}).get("device")
        if not device:
            raise DeliveryFailed("command channel has no device: set 'device' in its config")
        args = {**self.config.args, "alarm": (note.alarm or {}).get("id"), "event": note.event}
        try:
            await sender.send_command(note.project, device, self.config.command, args)
        except DeliveryFailed:
            raise
        except Exception as exc:  # a foreign error from the sender: translate at the edge
            raise DeliveryFailed(f"command to {device} failed: {exc}") from exc
        return 1


# ---------------------------------------------------------------- log


class LogConfig(_Config):
    level: str = Field("WARNING", pattern="^(DEBUG|INFO|WARNING|ERROR|CRITICAL)$")


class LogChannel:
    """Writes notifications to the service log; handy for demos and as a last resort."""

    def __init__(self, config: LogConfig, ctx: ChannelContext) -> None:
        self.level = logging.getLevelName(config.level)

    async def send(self, note: Notification) -> int:
        log.log(self.level, "[%s] %s: %s", note.project, note.title, note.text)
        return 1


# ---------------------------------------------------------------- registry of types

_TYPES: dict[str, ChannelType] = {}
_discovered = False


def register_channel_type(ct: ChannelType) -> None:
    _TYPES[ct.name] = ct


for _ct in (
    ChannelType("webhook", WebhookConfig, WebhookChannel, "HTTP POST of a JSON document"),
    ChannelType(
        "chat", ChatConfig, ChatChannel, "chat incoming webhook (Slack, Mattermost, Discord)"
    ),
    ChannelType("email", EmailConfig, EmailChannel, "plain-text mail through SMTP"),
    ChannelType("command", CommandConfig, CommandChannel, "command to a device over MQTT"),
    ChannelType("log", LogConfig, LogChannel, "line in the service log"),
):
    register_channel_type(_ct)


def channel_types() -> dict[str, ChannelType]:
    """Built-in types plus those plug-ins declare in the ``atoll.channels`` entry-point group."""
    global _discovered
    if not _discovered:
        _discovered = True
        for ep in entry_points(group="atoll.channels"):
            try:
                ct = ep.load()
            except Exception:  # a broken plug-in must not take the platform down
                log.exception("channel plug-in %s failed to load", ep.name)
                continue
            if isinstance(ct, ChannelType):
                _TYPES.setdefault(ct.name, ct)
            else:
                log.error("entry point %s is not a ChannelType", ep.name)
    return dict(_TYPES)


def check_channel(spec: ChannelSpec) -> BaseModel:
    """The validated config of ``spec``; ``InvalidInput`` naming the bad field otherwise."""
    types = channel_types()
    ct = types.get(spec.type)
    if ct is None:
        raise InvalidInput(
            f"channels.{spec.name}.type: unknown channel type {spec.type!r}",
            hint=f"known types: {', '.join(sorted(types))}",
        )
    return validate(ct.config, spec.config, f"channels.{spec.name}.config")


def make_channel(spec: ChannelSpec, ctx: ChannelContext) -> Channel:
    config = check_channel(spec)
    return channel_types()[spec.type].factory(config, ctx)
