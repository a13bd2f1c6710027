"""Route one device publish (already authenticated) to the pipeline. Shared by both MQTT modes."""

from __future__ import annotations

import logging

from atoll.core import acl, topics
from atoll.core.errors import Conflict, InvalidInput, NotFound
from atoll.ingest.devices import Identity
from atoll.ingest.pipeline import IngestPipeline

log = logging.getLogger(__name__)

ACL_PUBLISH = "acl_publish"


async def dispatch(
    pipeline: IngestPipeline,
    identity: Identity,
    topic: str,
    payload: bytes,
    transport: str = "mqtt",
) -> bool:
    """Handle a device's message; ``True`` if it was stored/applied, ``False`` if refused.

    Bad input and ACL violations are counted (never raised): the message is *handled* and may be
    acknowledged. ``Unavailable`` (the store failed) propagates: the caller must not acknowledge.
    """
    if not acl.may_publish(identity.device, topic):
        pipeline.reject(
            identity.device,
            transport,
            ACL_PUBLISH,
            f"device may not publish to {topic!r}; use {topics.device_root(identity.device)}/...",
        )
        return False
    rest = topics.parse(topic)[1]  # type: ignore[index]  # may_publish guarantees a device topic
    try:
        if rest == "telemetry":
            await pipeline.submit_telemetry(identity, payload, transport)
        elif rest == "twin/reported":
            await pipeline.twin_reported(identity, payload, transport)
        else:  # commands/{id}/ack
            await pipeline.command_ack(identity, rest.split("/")[1], payload, transport)
    except (InvalidInput, NotFound, Conflict):
        return False  # counted and logged by the pipeline
    return True
