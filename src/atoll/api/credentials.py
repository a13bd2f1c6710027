"""Device credentials: rotate (new secret, shown once) and revoke."""

from __future__ import annotations

from fastapi import APIRouter, Response

from atoll.api.deps import Ctx, Operator, audit, disconnect_device
from atoll.api.schemas import CredentialsOut

router = APIRouter(tags=["credentials"])


@router.post(
    "/devices/{device}/credentials/rotate",
    response_model=CredentialsOut,
    summary="Rotate a device's secret",
)
def rotate(device: str, who: Operator, ctx: Ctx):
    """The old secret stops working at once, and the device's live connections are closed
    before this answers; the new secret is in this answer only."""
    creds = ctx.registry.rotate_credentials(device, who.tenant)
    disconnect_device(ctx, device, "credentials rotated")
    audit(ctx, who, "device.credentials.rotate", f"device:{device}")
    return CredentialsOut.of(creds)


@router.delete("/devices/{device}/credentials", status_code=204, summary="Revoke a device's secret")
def revoke(device: str, who: Operator, ctx: Ctx):
    """The device cannot authenticate until its credentials are rotated again; its live
    connections are closed before this answers."""
    ctx.registry.revoke_credentials(device, who.tenant)
    disconnect_device(ctx, device, "credentials revoked")
    audit(ctx, who, "device.credentials.revoke", f"device:{device}")
    return Response(status_code=204)
