"""Route one device publish (already authenticated) to the pipeline. Shared by both MQTT modes."""

from __future__ import annotations

import logging

from atoll.core import acl, topics
from atoll.core.errors import Conflict, InvalidInput, NotFound, QuotaExceeded
from atoll.ingest import gateway
from atoll.ingest.devices import Identity
from atoll.ingest.gateway import Reply
from atoll.ingest.pipeline import IngestPipeline

log = logging.getLogger(__name__)

ACL_PUBLISH = "acl_publish"


async def dispatch(
    pipeline: IngestPipeline,
    identity: Identity,
    topic: str,
    payload: bytes,
    transport: str = "mqtt",
    reply: Reply | None = None,
) -> bool:
    """Handle a device's message; ``True`` if it was stored/applied, ``False`` if refused.

    Bad input and ACL violations are counted (never raised): the message is *handled* and may be
    acknowledged. ``Unavailable`` (the store failed) propagates: the caller must not acknowledge.
    A gateway's messages for its children (``gateway/...``, ``atoll.ingest.gateway``) count as
    handled even when some children's parts were refused; ``reply`` publishes the answer to a
    ``gateway/connect``.
    """
    if not acl.may_publish(identity.device, topic, identity.kind):
        own = topics.parse(topic)
        why = (
            "only a device registered as a gateway may"
            if own is not None and own[0] == identity.device and own[1].startswith("gateway/")
            else f"use {topics.device_root(identity.device)}/..."
        )
        pipeline.reject(
            identity.device,
            transport,
            ACL_PUBLISH,
            f"device may not publish to {topic!r}; {why}",
        )
        return False
    rest = topics.parse(topic)[1]  # type: ignore[index]  # may_publish guarantees a device topic
    try:
        if rest == "telemetry":
            await pipeline.submit_telemetry(identity, payload, transport)
        elif rest == "twin/reported":
            await pipeline.twin_reported(identity, payload, transport)
        elif rest == "gateway/telemetry":
            await gateway.telemetry(pipeline, identity, payload, transport)
        elif rest == "gateway/connect":
            await gateway.connect(pipeline, identity, payload, transport, reply)
        elif rest.startswith("gateway/commands/"):  # gateway/commands/{child}/{id}/ack
            _, _, child, command_id, _ = rest.split("/")
            await gateway.command_ack(pipeline, identity, child, command_id, payload, transport)
        else:  # commands/{id}/ack
            await pipeline.command_ack(identity, rest.split("/")[1], payload, transport)
    except (InvalidInput, NotFound, Conflict, QuotaExceeded):
        return False  # counted and logged by the pipeline
    return True
