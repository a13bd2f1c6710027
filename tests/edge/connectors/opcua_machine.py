"""A real asyncua server with a simulated press for the OPC UA connector's tests: variables
the test changes (with the source timestamps it chooses), a method, optional Basic256Sha256."""

from __future__ import annotations

import socket
from datetime import datetime
from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

NS = "urn:atoll:test:press"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def certificates(folder: Path) -> dict[str, Path]:
    """A server and a client certificate (self-signed, as OPC UA applications use)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        name: folder / f"{name}.{ext}"
        for name, ext in (
            ("server_cert", "der"),
            ("server_key", "pem"),
            ("client_cert", "der"),
            ("client_key", "pem"),
        )
    }
    host = socket.gethostname()
    await setup_self_signed_certificate(
        files["server_key"],
        files["server_cert"],
        "urn:atoll:test:server",
        host,
        [ExtendedKeyUsageOID.SERVER_AUTH],
        {"organizationName": "Atoll tests"},
    )
    await setup_self_signed_certificate(
        files["client_key"],
        files["client_cert"],
        "urn:atoll:edge",
        host,
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "Atoll tests"},
    )
    return files


class Press:
    """``async with Press() as press: await press.set("Temperature", 21.5)``"""

    def __init__(self, port: int | None = None, certs: dict[str, Path] | None = None) -> None:
        self.port = port or free_port()
        self.url = f"opc.tcp://127.0.0.1:{self.port}/atoll/"
        self.certs = certs
        self.server: Server | None = None
        self.vars: dict[str, object] = {}
        self.ns = 0

    async def start(self) -> Press:
        server = Server()
        await server.init()
        server.set_endpoint(self.url)
        server.set_server_name("Atoll test press")
        await server.set_application_uri("urn:atoll:test:server")
        if self.certs is not None:
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
            await server.load_certificate(str(self.certs["server_cert"]))
            await server.load_private_key(str(self.certs["server_key"]))
        else:
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        self.ns = await server.register_namespace(NS)
        press = await server.nodes.objects.add_object(ua.NodeId("Press1", self.ns), "Press1")
        for name, value, vtype in (
            ("Temperature", 20.0, ua.VariantType.Double),
            ("Count", 0, ua.VariantType.Int32),
            ("Running", False, ua.VariantType.Boolean),
            ("Label", "idle", ua.VariantType.String),
        ):
            node = await press.add_variable(
                ua.NodeId(f"Press1.{name}", self.ns), name, ua.Variant(value, vtype)
            )
            self.vars[name] = node

        async def set_speed(_parent, speed: ua.Variant):
            if speed.Value > 100:  # the machine's limit, answered as OPC UA status
                return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
            return [ua.Variant(speed.Value * 2, ua.VariantType.Double)]

        await press.add_method(
            ua.NodeId("Press1.SetSpeed", self.ns),
            "SetSpeed",
            set_speed,
            [ua.VariantType.Double],
            [ua.VariantType.Double],
        )
        await server.start()
        self.server = server
        return self

    def node(self, name: str) -> str:
        return f"ns={self.ns};s=Press1.{name}"

    async def set(
        self,
        name: str,
        value,
        vtype=ua.VariantType.Double,
        *,
        source: datetime | None = None,
        server: datetime | None = None,
        status: int = ua.StatusCodes.Good,
    ) -> None:
        assert self.server is not None
        dv = ua.DataValue(
            ua.Variant(value, vtype),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=source,
            ServerTimestamp=server,
        )
        await self.server.write_attribute_value(self.vars[name].nodeid, dv)

    async def stop(self) -> None:
        if self.server is not None:
            await self.server.stop()
            self.server = None

    async def __aenter__(self) -> Press:
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()
