"""The Modbus connector against a real pymodbus server with simulated slaves."""

from __future__ import annotations

import asyncio
import json

import pytest
from pymodbus.client.mixin import ModbusClientMixin

from atoll.edge.connectors import modbus
from atoll.edge.port import CommandFailed
from atoll.testing.connector import MemorySink, check_connector
from tests.edge.connectors.modbus_slave import (
    COIL,
    DISCRETE,
    HOLDING,
    INPUT,
    SerialLine,
    Slaves,
)

DT = ModbusClientMixin.DATATYPE
SAMPLES = {  # a value per type that the type holds exactly, and its pymodbus data type
    "int16": (-1234, DT.INT16),
    "uint16": (54321, DT.UINT16),
    "int32": (-123456789, DT.INT32),
    "uint32": (3_000_000_000, DT.UINT32),
    "int64": (-9_000_000_000_123, DT.INT64),
    "float32": (12.5, DT.FLOAT32),
    "float64": (-1234.5678, DT.FLOAT64),
}
ORDERS = [(b, w) for b in ("big", "little") for w in ("big", "little")]


def registers(value, dtype, byte_order, word_order) -> list[int]:
    """The registers a device with these orders holds (pymodbus packs; bytes swapped here)."""
    regs = ModbusClientMixin.convert_to_registers(value, dtype, word_order=word_order)
    if byte_order == "little":
        regs = [((r & 0xFF) << 8) | (r >> 8) for r in regs]
    return regs


def config(port: int, devices: list[dict], **extra) -> dict:
    return {
        "name": "line-1",
        "link": {"type": "tcp", "host": "127.0.0.1", "port": port, **extra.pop("link", {})},
        "timeout_s": 0.5,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        "buffer_retry_s": 0.05,
        "devices": devices,
        **extra,
    }


async def run_until(connector, sink, done, timeout=10.0):
    task = asyncio.create_task(connector.run(sink))
    try:
        return await sink.wait_for(done, timeout)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def test_known_register_vectors():
    # float32 12.5 is 0x41480000: the four orders, spelled out
    assert registers(12.5, DT.FLOAT32, "big", "big") == [0x4148, 0x0000]
    assert registers(12.5, DT.FLOAT32, "little", "big") == [0x4841, 0x0000]
    assert registers(12.5, DT.FLOAT32, "big", "little") == [0x0000, 0x4148]
    assert registers(12.5, DT.FLOAT32, "little", "little") == [0x0000, 0x4841]


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_every_type_and_order_reads_back_what_the_slave_holds(framer):
    points, writes, expected, address = [], [], {}, 0
    for dtype, (value, dt) in SAMPLES.items():
        for byte_order, word_order in ORDERS:
            name = f"{dtype}_{byte_order[0]}{word_order[0]}"
            regs = registers(value, dt, byte_order, word_order)
            points.append(
                {
                    "name": name,
                    "address": address,
                    "type": dtype,
                    "byte_order": byte_order,
                    "word_order": word_order,
                }
            )
            writes.append((address, regs))
            expected[name] = float(value)
            address += len(regs)
    points += [
        {"name": "flag_reg", "address": address, "type": "bool"},
        {
            "name": "temp",
            "table": "input",
            "address": 10,
            "type": "int16",
            "scale": 0.1,
            "offset": -40,
        },
        {
            "name": "power",
            "table": "input",
            "address": 11,
            "type": "float32",
            "word_order": "little",
            "scale": 1000,
        },
        {"name": "pump", "table": "coil", "address": 3, "type": "bool"},
        {"name": "door", "table": "discrete", "address": 5, "type": "bool"},
        {"name": "alarm", "table": "discrete", "address": 6, "type": "bool"},
    ]
    async with Slaves(framer=framer) as slave:
        for at, regs in writes:
            await slave.write(1, HOLDING, at, regs)
        await slave.write(1, HOLDING, address, [1])
        await slave.write(1, INPUT, 10, [(-215) & 0xFFFF])  # -21.5 °C raw, 0.1 °C per bit
        await slave.write(1, INPUT, 11, registers(1.25, DT.FLOAT32, "big", "little"))
        await slave.write(1, COIL, 3, [True])
        await slave.write(1, DISCRETE, 5, [True])
        slave.requests.clear()
        link = {"framer": framer}
        c = modbus.build(config(slave.port, [{"id": "m1", "points": points}], link=link))
        sink = MemorySink()
        [reading] = (await run_until(c, sink, lambda rs: len(rs) >= 1))[:1]
    values = reading.values
    for name, want in expected.items():
        assert values[name] == want, name
        assert type(values[name]) is float
    assert values["flag_reg"] is True
    assert values["temp"] == pytest.approx(-61.5)  # -215 * 0.1 - 40
    assert values["power"] == pytest.approx(1250.0)
    assert (values["pump"], values["door"], values["alarm"]) == (True, True, False)
    # contiguous registers are read with one request per table and poll (the slave's log has
    # registers, so a bit read shows as the one register holding those bits)
    first_poll = sorted(slave.requests[:4])
    assert [fc for fc, _, _ in first_poll] == [COIL, DISCRETE, HOLDING, INPUT]
    assert first_poll[2:] == [(HOLDING, 0, address + 1), (INPUT, 10, 3)]


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_conformance(framer):
    async with Slaves(ids=(1, 2), framer=framer) as slave:
        await slave.write(1, HOLDING, 0, [100])
        await slave.write(2, INPUT, 0, [7])
        c = modbus.build(
            config(
                slave.port,
                [
                    {
                        "id": "m1",
                        "slave": 1,
                        "poll_interval_s": 0.05,
                        "points": [{"name": "v", "address": 0, "scale": 0.5}],
                    },
                    {
                        "id": "m2",
                        "slave": 2,
                        "poll_interval_s": 0.05,
                        "points": [{"name": "n", "table": "input", "address": 0}],
                    },
                ],
                link={"framer": framer},
            )
        )
        readings = await check_connector(c)
    assert {r.device: r.values for r in readings} == {"m1": {"v": 50.0}, "m2": {"n": 7.0}}
    assert c.status()["buffer_stopped_waits"] >= 2


async def test_rtu_on_a_serial_port():
    async with Slaves(ids=(3,), framer="rtu") as slaves, SerialLine(slaves) as line:
        await slaves.write(3, INPUT, 0, registers(-7.25, DT.FLOAT32, "big", "big"))
        cfg = {
            "link": {"type": "serial", "device": line.path, "baudrate": 115200, "parity": "N"},
            "timeout_s": 1.0,
            "devices": [
                {
                    "id": "drive",
                    "slave": 3,
                    "poll_interval_s": 0.1,
                    "points": [
                        {"name": "torque", "table": "input", "address": 0, "type": "float32"},
                        {"name": "speed", "address": 4},
                    ],
                    "commands": {"set_speed": {"point": "speed"}},
                },
            ],
        }
        c = modbus.build(cfg)
        assert c.status()["link"] == f"rtu://{line.path}@115200"
        readings = await check_connector(c)
        assert {r.values["torque"] for r in readings} == {-7.25}
        sink = MemorySink()
        task = asyncio.create_task(c.run(sink))
        try:
            assert (await c.command("drive", "set_speed", {"value": 1200}))["raw"] == 1200
            await sink.wait_for(lambda rs: any(r.values["speed"] == 1200.0 for r in rs), 5)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        assert await slaves.read(3, HOLDING, 4, 1) == [1200]


async def test_polls_follow_changes_and_intervals():
    async with Slaves() as slave:
        c = modbus.build(
            config(
                slave.port,
                [
                    {
                        "id": "m1",
                        "poll_interval_s": 0.05,
                        "points": [
                            {"name": "fast", "address": 0},
                            {"name": "slow", "address": 1, "poll_interval_s": 0.5},
                        ],
                    }
                ],
            )
        )
        sink = MemorySink()
        task = asyncio.create_task(c.run(sink))
        try:
            await slave.write(1, HOLDING, 0, [1])
            await sink.wait_for(lambda rs: any(r.values.get("fast") == 1.0 for r in rs), 5)
            await slave.write(1, HOLDING, 0, [2])
            await sink.wait_for(lambda rs: any(r.values.get("fast") == 2.0 for r in rs), 5)
            await asyncio.sleep(1.0)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    fast = [r for r in sink.readings if "fast" in r.values]
    slow = [r for r in sink.readings if "slow" in r.values]
    assert len(fast) >= 4 * len(slow) and slow  # two groups, each at its own interval
    assert all("slow" not in r.values for r in fast)
    ts = [r.ts_us for r in fast]
    assert ts == sorted(ts)


async def test_reconnects_after_the_server_restarts():
    slave = await Slaves().start()
    c = modbus.build(
        config(
            slave.port,
            [{"id": "m1", "poll_interval_s": 0.05, "points": [{"name": "v", "address": 0}]}],
        )
    )
    sink = MemorySink()
    task = asyncio.create_task(c.run(sink))
    try:
        await slave.write(1, HOLDING, 0, [11])
        await sink.wait_for(lambda rs: any(r.values["v"] == 11.0 for r in rs), 5)
        await slave.stop()
        await asyncio.sleep(0.5)
        down = c.status()
        assert down["connected"] is False
        assert down["connect_failures"] >= 1
        await slave.start()  # same port, fresh registers
        await slave.write(1, HOLDING, 0, [22])
        await sink.wait_for(lambda rs: any(r.values["v"] == 22.0 for r in rs), 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await slave.stop()
    status = c.status()
    assert status["reconnects"] >= 1 and status["connects"] == status["reconnects"] + 1
    assert status["slaves"]["m1"]["errors"] + status["slaves"]["m1"]["reads"] > 0
    json.dumps(status)


@pytest.mark.parametrize("framer", ["socket", "rtu"])
async def test_per_slave_counters_for_exceptions_and_timeouts(framer):
    def device(id_, address, type_="uint16"):
        return {
            "id": id_,
            "slave": 1,
            "poll_interval_s": 0.05,
            "points": [{"name": "v", "address": address, "type": type_}],
        }

    async with Slaves(ids=(1,), framer=framer) as slave:
        await slave.write(1, HOLDING, 0, [111])
        await slave.write(1, HOLDING, 5, [555])
        c = modbus.build(
            config(
                slave.port,
                [device("ok", 0), device("other", 5), device("past-the-map", 199, "uint32")],
                timeout_s=0.2,
                link={"framer": framer},
            )
        )
        sink = MemorySink()
        task = asyncio.create_task(c.run(sink))
        try:
            await sink.wait_for(lambda rs: len(rs) >= 2, 5)
            slave.delay_s = 0.3  # the slave answers too late
            await asyncio.sleep(1.0)
            slave.delay_s = 0.0
            after = len(sink.readings)
            await sink.wait_for(lambda rs: {r.device for r in rs[after:]} == {"ok", "other"}, 10)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    slaves = c.status()["slaves"]
    assert slaves["past-the-map"]["exceptions"] >= 1
    assert "illegal data address" in slaves["past-the-map"]["last_error"]
    assert slaves["ok"]["timeouts"] + slaves["other"]["timeouts"] >= 1
    assert slaves["ok"]["reconnects"] + slaves["other"]["reconnects"] >= 1
    assert slaves["past-the-map"]["reconnects"] == 0  # an exception answer keeps the link
    assert slaves["ok"]["reads"] >= 1
    # every value is the device's own: no late answer was taken for another request's (the
    # link is reopened after a timeout)
    assert {(r.device, r.values["v"]) for r in sink.readings} == {("ok", 111.0), ("other", 555.0)}
    assert c.status()["reconnects"] >= 1


async def test_commands_write_scaled_points_and_report_failures():
    async with Slaves() as slave:
        c = modbus.build(
            config(
                slave.port,
                [
                    {
                        "id": "drive",
                        "points": [
                            {
                                "name": "speed",
                                "address": 20,
                                "type": "float32",
                                "word_order": "little",
                                "scale": 0.5,
                            },
                            {"name": "setpoint", "address": 30, "type": "int16", "scale": 0.1},
                            {"name": "run", "table": "coil", "address": 9, "type": "bool"},
                            {"name": "rpm", "table": "input", "address": 0},
                        ],
                        "commands": {
                            "set_speed": {"point": "speed", "min": 0, "max": 3000},
                            "set_temperature": {"point": "setpoint"},
                            "start": {"point": "run"},
                        },
                    }
                ],
            )
        )
        ack = await c.command("drive", "set_speed", {"value": 1500})
        assert ack == {"point": "speed", "value": 1500, "raw": 3000.0}
        assert await slave.read(1, HOLDING, 20, 2) == registers(3000.0, DT.FLOAT32, "big", "little")
        ack = await c.command("drive", "set_temperature", {"value": -12.3})
        assert ack["raw"] == -123
        assert await slave.read(1, HOLDING, 30, 1) == [(-123) & 0xFFFF]
        assert (await c.command("drive", "start", {"value": True}))["raw"] is True
        assert await slave.read(1, COIL, 9, 1) == [True]

        with pytest.raises(CommandFailed, match="above the maximum 3000"):
            await c.command("drive", "set_speed", {"value": 3001})
        with pytest.raises(CommandFailed, match="out of range for int16"):
            await c.command("drive", "set_temperature", {"value": 4000})
        with pytest.raises(CommandFailed, match="args must be"):
            await c.command("drive", "set_speed", {"speed": 3})
        with pytest.raises(CommandFailed, match="no command 'stop'"):
            await c.command("drive", "stop", {})
        with pytest.raises(CommandFailed, match="no device 'pump'"):
            await c.command("pump", "start", {"value": 1})
        assert await slave.read(1, HOLDING, 20, 2) == registers(3000.0, DT.FLOAT32, "big", "little")
        assert c.status()["slaves"]["drive"]["writes"] == 3
    # the slave gone: the write fails with the reason, no exception escapes otherwise
    with pytest.raises(CommandFailed, match="set_speed: (no answer|cannot connect|link error)"):
        await c.command("drive", "set_speed", {"value": 1})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"link": {"type": "udp", "host": "x"}}, "link: Input tag 'udp'"),
        ({"link": {"type": "tcp", "host": "h", "port": 70000}}, "link.tcp.port"),
        ({"devices": []}, "devices: List should have at least 1 item"),
        ({"timeout_s": 0}, "timeout_s: Input should be greater than 0"),
        ({"bogus": 1}, "bogus: Extra inputs are not permitted"),
        (
            {"devices": [{"id": "d", "points": [{"name": "p", "address": 0, "type": "int8"}]}]},
            "devices.0.points.0.type: Input should be 'int16'",
        ),
        (
            {"devices": [{"id": "d", "points": [{"name": "p", "address": 0, "table": "coil"}]}]},
            "a coil table holds bits: use type bool",
        ),
        (
            {
                "devices": [
                    {"id": "d", "points": [{"name": "p", "address": 65535, "type": "int32"}]}
                ]
            },
            "int32 at 65535 ends past 65535",
        ),
        (
            {"devices": [{"id": "d", "points": [{"name": "p", "address": 0, "scale": 0}]}]},
            "scale must not be 0",
        ),
        (
            {
                "devices": [
                    {
                        "id": "d",
                        "points": [{"name": "p", "address": 0}, {"name": "p", "address": 1}],
                    }
                ]
            },
            "point names used twice: ['p']",
        ),
        (
            {
                "devices": [
                    {
                        "id": "d",
                        "points": [{"name": "p", "address": 0, "table": "input"}],
                        "commands": {"set": {"point": "p"}},
                    }
                ]
            },
            "input is read-only in Modbus",
        ),
        (
            {
                "devices": [
                    {
                        "id": "d",
                        "points": [{"name": "p", "address": 0}],
                        "commands": {"set": {"point": "q"}},
                    }
                ]
            },
            "command 'set' writes unknown point 'q'",
        ),
        (
            {
                "devices": [
                    {"id": "d", "points": [{"name": "p", "address": 0}]},
                    {"id": "d", "points": [{"name": "p", "address": 0}]},
                ]
            },
            "device ids used twice: ['d']",
        ),
    ],
)
def test_bad_configuration_is_a_clear_value_error(change, message):
    good = config(502, [{"id": "m1", "points": [{"name": "v", "address": 0}]}])
    with pytest.raises(ValueError, match="modbus connector configuration is invalid") as e:
        modbus.build({**good, **change})
    assert message in str(e.value)
