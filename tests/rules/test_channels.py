"""Channels: the webhook against a real local HTTP receiver that fails at first; commands."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from atoll.core.errors import InvalidInput
from atoll.rules.channels import (
    ChannelContext,
    DeliveryFailed,
    Notification,
    WebhookChannel,
    WebhookConfig,
    channel_types,
    check_channel,
    make_channel,
)
from atoll.rules.model import ChannelSpec


class Receiver:
    """An HTTP server on an ephemeral port that answers
    ``fail_status`` to the first ``fail`` POSTs."""

    def __init__(self, fail: int = 0, fail_status: int = 503, headers: dict | None = None) -> None:
        self.fail, self.fail_status, self.headers = fail, fail_status, headers or {}
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                outer.requests.append(
                    {
                        "path": self.path,
                        "body": json.loads(body),
                        "raw": body,
                        "headers": dict(self.headers),
                    }
                )
                status = outer.fail_status if len(outer.requests) <= outer.fail else 204
                self.send_response(status)
                for k, v in outer.headers.items() if status != 204 else ():
                    self.send_header(k, v)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


NOTE = Notification(
    "p", "raised", "[MAJOR] Hot on d1: raised", "d1.t = 31 > 30", {"id": 7, "device": "d1"}
)


def hook(url: str, sleeps: list | None = None, **kw) -> WebhookChannel:
    async def sleep(s: float) -> None:
        if sleeps is not None:
            sleeps.append(s)

    cfg = WebhookConfig(url=url, **{"backoff": 0.01, "jitter": 0.5, **kw})
    return WebhookChannel(cfg, ChannelContext(sleep=sleep))


async def test_webhook_retries_until_the_receiver_recovers():
    sleeps: list[float] = []
    with Receiver(fail=3) as rx:
        attempts = await hook(rx.url, sleeps, attempts=5, headers={"X-Token": "s3"}).send(NOTE)
    assert attempts == 4 and len(rx.requests) == 4
    body = rx.requests[-1]["body"]
    assert body["event"] == "raised" and body["alarm"] == {"id": 7, "device": "d1"}
    assert body["text"] == "d1.t = 31 > 30" and body["attachments"] == []
    assert rx.requests[-1]["headers"]["X-Token"] == "s3"
    # Exponential backoff with jitter: delay n lies in [base*2^n * 0.5, base*2^n].
    assert len(sleeps) == 3
    for n, s in enumerate(sleeps):
        assert 0.01 * 2**n * 0.5 <= s <= 0.01 * 2**n


async def test_webhook_real_sleeps_between_attempts():
    # The default sleep really waits (asyncio.sleep): no injected clock here.
    import time

    cfg = WebhookConfig(url="http://x.invalid", backoff=0.05, jitter=0, attempts=3)
    with Receiver(fail=2) as rx:
        cfg = cfg.model_copy(update={"url": rx.url})
        t = time.perf_counter()
        assert await WebhookChannel(cfg, ChannelContext()).send(NOTE) == 3
        assert time.perf_counter() - t >= 0.05 + 0.1


async def test_webhook_gives_up_after_its_attempts():
    with Receiver(fail=100, fail_status=500) as rx:
        with pytest.raises(DeliveryFailed, match="after 3 attempts: HTTP 500") as e:
            await hook(rx.url, attempts=3).send(NOTE)
    assert e.value.attempts == 3 and len(rx.requests) == 3


async def test_webhook_does_not_retry_a_client_error():
    with Receiver(fail=100, fail_status=404) as rx:
        with pytest.raises(DeliveryFailed, match="refused: HTTP 404") as e:
            await hook(rx.url, attempts=5).send(NOTE)
    assert e.value.attempts == 1 and len(rx.requests) == 1


async def test_webhook_honours_retry_after_within_max_backoff():
    sleeps: list[float] = []
    with Receiver(fail=1, fail_status=429, headers={"Retry-After": "2"}) as rx:
        assert await hook(rx.url, sleeps, jitter=0, max_backoff=1.5).send(NOTE) == 2
    assert sleeps == [1.5]


async def test_webhook_retries_connection_errors():
    with Receiver() as rx:
        url = rx.url
    # The server is gone: nothing listens on that port any more.
    with pytest.raises(DeliveryFailed, match="ConnectError") as e:
        await hook(url, attempts=2).send(NOTE)
    assert e.value.attempts == 2


async def test_attachments_travel_base64():
    from atoll.rules.channels import Attachment

    note = Notification(
        "p", "report", "Report", "weekly", None, (Attachment("r.csv", b"a,b\n1,2\n", "text/csv"),)
    )
    with Receiver() as rx:
        await hook(rx.url).send(note)
    (att,) = rx.requests[0]["body"]["attachments"]
    import base64

    assert att["filename"] == "r.csv" and base64.b64decode(att["content_base64"]) == b"a,b\n1,2\n"


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple] = []

    async def send_command(self, project, device, name, args):
        self.sent.append((project, device, name, args))
        return f"c-{len(self.sent)}"


async def test_command_channel_sends_to_the_alarm_device_or_a_fixed_one():
    sender = Sender()
    ctx = ChannelContext(command_sender=sender)
    ch = make_channel(
        ChannelSpec(
            name="stop",
            project="p",
            type="command",
            config={"command": "pump_off", "args": {"why": "hot"}},
        ),
        ctx,
    )
    assert await ch.send(NOTE) == 1
    fixed = make_channel(
        ChannelSpec(
            name="siren",
            project="p",
            type="command",
            config={"command": "sound", "device": "siren-1"},
        ),
        ctx,
    )
    await fixed.send(NOTE)
    assert sender.sent == [
        ("p", "d1", "pump_off", {"why": "hot", "alarm": 7, "event": "raised"}),
        ("p", "siren-1", "sound", {"alarm": 7, "event": "raised"}),
    ]
    lonely = make_channel(
        ChannelSpec(name="x", project="p", type="command", config={"command": "c"}),
        ChannelContext(),
    )
    with pytest.raises(DeliveryFailed, match="no command sender"):
        await lonely.send(NOTE)


def test_channel_configs_are_checked_with_field_names():
    with pytest.raises(InvalidInput, match=r"channels.ops.config.url: String should match"):
        check_channel(
            ChannelSpec(name="ops", project="p", type="webhook", config={"url": "ftp://x"})
        )
    with pytest.raises(InvalidInput, match=r"channels.ops.config.atempts: Extra inputs"):
        check_channel(
            ChannelSpec(
                name="ops", project="p", type="webhook", config={"url": "http://x", "atempts": 3}
            )
        )
    with pytest.raises(InvalidInput, match="unknown channel type 'pigeon'") as e:
        check_channel(ChannelSpec(name="ops", project="p", type="pigeon"))
    assert "webhook" in e.value.hint
    assert {"webhook", "command", "log"} <= set(channel_types())


async def test_service_delivers_through_a_flaky_webhook_and_logs_it(harness):
    svc = harness.svc
    with Receiver(fail=2) as rx:
        svc.put_channel(
            ChannelSpec(
                name="hook", project="p", type="webhook", config={"url": rx.url, "backoff": 0.01}
            )
        )
        await svc.create_rule(
            {
                "name": "Hot",
                "project": "p",
                "target": {"device": "d1"},
                "condition": {"type": "threshold", "metric": "t", "value": 1},
                "notify": {"channels": ["hook"]},
            }
        )
        await harness.send("d1", 0, t=5)
        await svc.notifier.drain()
    (d,) = svc.notifier.deliveries("p")
    assert (d["channel"], d["ok"], d["attempts"], d["event"]) == ("hook", True, 3, "raised")
    assert rx.requests[-1]["body"]["alarm"]["device"] == "d1"
    res = await svc.test_channel("p", "ops")
    assert res["ok"] and res["delivery"]["event"] == "test"


async def test_signed_webhook_and_chat_channel():
    import hashlib
    import hmac as _hmac

    with Receiver() as rx:
        await hook(rx.url, secret="k3y").send(NOTE)
        ch = make_channel(
            ChannelSpec(
                name="room", project="p", type="chat", config={"url": rx.url, "field": "content"}
            ),
            ChannelContext(),
        )
        assert await ch.send(NOTE) == 1
    signed, chat = rx.requests
    expected = "sha256=" + _hmac.new(b"k3y", signed["raw"], hashlib.sha256).hexdigest()
    assert signed["headers"]["X-Atoll-Signature"] == expected
    assert chat["body"] == {"content": "[MAJOR] Hot on d1: raised\nd1.t = 31 > 30"}
    assert "X-Atoll-Signature" not in chat["headers"]


async def test_a_delivery_cut_short_by_a_stop_is_sent_on_the_next_start(tmp_path):
    from atoll.rules.clock import FakeClock
    from atoll.rules.service import RulesService

    url = f"sqlite:///{tmp_path}/rules.db"
    with Receiver(fail=1000) as down:
        svc = RulesService(None, db=url, clock=FakeClock(), tick_interval=0)
        svc.put_channel(
            ChannelSpec(
                name="hook",
                project="p",
                type="webhook",
                config={"url": down.url, "backoff": 5, "jitter": 0},
            )
        )
        await svc.create_rule(
            {
                "name": "Hot",
                "project": "p",
                "target": {"device": "d1"},
                "condition": {"type": "threshold", "metric": "t", "value": 1},
                "notify": {"channels": ["hook"]},
            }
        )
        await svc._apply(svc.engine.on_telemetry("p", "d1", svc.clock.now_us(), {"t": 5}))
        await asyncio.sleep(0.2)  # first attempt failed; now waiting 5 s to retry
        svc.stop_timeout = 0.1
        await svc.stop()
    (d,) = svc.notifier.deliveries("p")
    assert d["status"] == "pending" and "payload" not in d
    with Receiver() as up:
        svc2 = RulesService(None, db=url, clock=FakeClock(), tick_interval=0)
        svc2.put_channel(
            ChannelSpec(
                name="hook", project="p", type="webhook", config={"url": up.url, "backoff": 0.01}
            )
        )
        await svc2.start()
        await svc2.notifier.drain()
        await svc2.stop()
    (body,) = [r["body"] for r in up.requests]
    assert body["event"] == "raised" and body["alarm"]["device"] == "d1"
    (d,) = svc2.notifier.deliveries("p")
    assert (d["status"], d["ok"], d["attempts"]) == ("ok", True, 1)


class Mailbox:
    """A real SMTP server (aiosmtpd) on an ephemeral port, keeping what it receives."""

    def __init__(self) -> None:
        import socket

        from aiosmtpd.controller import Controller

        outer = self
        self.messages: list = []

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
                import email

                outer.messages.append(
                    (envelope.rcpt_tos, email.message_from_bytes(envelope.content))
                )
                return "250 OK"

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self):
        self.controller.start()
        return self

    def __exit__(self, *exc):
        self.controller.stop()


async def test_email_channel_sends_text_and_attachments_over_smtp():
    from atoll.rules.channels import Attachment

    with Mailbox() as box:
        ch = make_channel(
            ChannelSpec(
                name="mail",
                project="p",
                type="email",
                config={
                    "host": "127.0.0.1",
                    "port": box.port,
                    "security": "none",
                    "sender": "atoll@example.test",
                    "to": ["ops@example.test", "boss@example.test"],
                },
            ),
            ChannelContext(),
        )
        assert await ch.send(NOTE) == 1
        report = Notification(
            "p",
            "report",
            "Report: Daily",
            "attached",
            None,
            (Attachment("daily.csv", b"a,b\n1,2\n", "text/csv"),),
        )
        await ch.send(report)
    (to, alarm_mail), (_, report_mail) = box.messages
    assert to == ["ops@example.test", "boss@example.test"]
    assert alarm_mail["Subject"] == "[MAJOR] Hot on d1: raised"
    assert "d1.t = 31 > 30" in alarm_mail.get_payload()
    (att,) = [p for p in report_mail.walk() if p.get_filename()]
    assert att.get_filename() == "daily.csv" and att.get_payload(decode=True) == b"a,b\n1,2\n"


async def test_email_channel_retries_then_fails_when_no_server_listens():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []

    async def sleep(x):
        sleeps.append(x)

    ch = make_channel(
        ChannelSpec(
            name="mail",
            project="p",
            type="email",
            config={
                "host": "127.0.0.1",
                "port": port,
                "security": "none",
                "sender": "a@b.c",
                "to": ["x@y.z"],
                "attempts": 3,
                "backoff": 1,
            },
        ),
        ChannelContext(sleep=sleep),
    )
    with pytest.raises(DeliveryFailed, match="mail failed after 3 attempts") as e:
        await ch.send(NOTE)
    assert e.value.attempts == 3 and len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 1 and 1 <= sleeps[1] <= 2  # 1 s, then 2 s, minus up to half
