"""Scheduled reports: CSV and PDF contents, and the cron schedule."""

from __future__ import annotations

import re
import zlib
from datetime import UTC, datetime

import numpy as np
import pytest

from atoll.core.errors import InvalidInput
from atoll.core.points import PointBatch, SeriesKey
from atoll.rules.loading import validate
from atoll.rules.reports import ReportSpec, build_report
from atoll.store.memory import MemoryStore

from .conftest import SENT

H = 3600 * 1_000_000
DAY0 = int(datetime(2027, 3, 1, tzinfo=UTC).timestamp() * 1_000_000)


def seeded_store() -> MemoryStore:
    store = MemoryStore()
    ts = DAY0 + np.arange(0, 3 * H, 600 * 1_000_000)  # every 10 min for 3 h: 18 points
    store.append(
        PointBatch.of_series(SeriesKey("p", "d1", "t"), ts, np.arange(len(ts), dtype=float))
    )
    store.append(PointBatch.of_series(SeriesKey("p", "d2", "t"), ts[:6], np.full(6, 2.5)))
    return store


def spec(**kw) -> ReportSpec:
    base = {
        "name": "Daily",
        "project": "p",
        "cron": "0 7 * * *",
        "period": "3h",
        "bucket": "1h",
        "series": [{"device": "d1", "metric": "t"}, {"device": "d2", "metric": "t"}],
        "channels": ["ops"],
    }
    return ReportSpec.model_validate({**base, **kw})


async def raise_and_clear(harness):
    svc = harness.svc
    await svc.create_rule(
        {
            "name": "Hot",
            "project": "p",
            "target": {"device": "d1"},
            "condition": {"type": "threshold", "metric": "t", "value": 10},
        }
    )
    harness.clock.set(DAY0 + H)
    changes = svc.engine.on_telemetry("p", "d1", DAY0 + H, {"t": 11})
    await svc._apply(changes)
    harness.clock.set(DAY0 + 2 * H)
    await svc._apply(svc.engine.on_telemetry("p", "d1", DAY0 + 2 * H, {"t": 1}))


async def test_csv_report_has_the_buckets_and_alarms(harness):
    await raise_and_clear(harness)
    files = build_report(
        spec(aggs=["min", "avg", "max", "count"]),
        seeded_store(),
        harness.svc.db,
        DAY0,
        DAY0 + 3 * H,
    )
    series, alarms = files
    assert series.filename == "p-daily-20270301T0300-series.csv" and series.mime == "text/csv"
    assert series.content.decode().splitlines() == [
        "device,metric,bucket_start,min,avg,max,count",
        "d1,t,2027-03-01T00:00:00Z,0,2.5,5,6",
        "d1,t,2027-03-01T01:00:00Z,6,8.5,11,6",
        "d1,t,2027-03-01T02:00:00Z,12,14.5,17,6",
        "d2,t,2027-03-01T00:00:00Z,2.5,2.5,2.5,6",
    ]
    lines = alarms.content.decode().splitlines()
    assert lines[0] == (
        "id,device,rule_name,severity,status,acknowledged,raised_at,"
        "acknowledged_by,cleared_at,cleared_by,detail"
    )
    assert lines[1].startswith(
        "1,d1,Hot,major,cleared,false,2027-03-01T01:00:00Z,,"
        "2027-03-01T02:00:00Z,system,d1.t = 11 > 10"
    )
    assert len(lines) == 2
    # An alarm cleared before the period is not in it.
    files = build_report(spec(), seeded_store(), harness.svc.db, DAY0 + 2 * H + 1, DAY0 + 3 * H)
    assert len(files[1].content.decode().splitlines()) == 1


def pdf_text(blob: bytes) -> str:
    """Text drawn by the PDF's content streams (fpdf2 writes core-font text as literals)."""
    out = []
    for raw in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", blob, re.DOTALL):
        try:
            raw = zlib.decompress(raw)
        except zlib.error:
            pass
        out += [m.decode("latin-1") for m in re.findall(rb"\((.*?)\)\s*Tj", raw)]
    return "\n".join(out)


async def test_pdf_report_draws_tables_of_series_and_alarms(harness):
    await raise_and_clear(harness)
    (pdf,) = build_report(spec(format="pdf"), seeded_store(), harness.svc.db, DAY0, DAY0 + 3 * H)
    assert pdf.filename.endswith(".pdf") and pdf.content.startswith(b"%PDF-")
    text = pdf_text(pdf.content)
    for expected in (
        "Daily",
        "Project p: 2027-03-01T00:00:00Z to 2027-03-01T03:00:00Z",
        "d1 / t",
        "d2 / t",
        "2027-03-01T02:00:00Z",
        "14.5",
        "17",
        "Alarms \\(1\\)",
        "Hot",
        "cleared, unack",
        "max 17",
        "min 0",
        "max 2.5",
    ):  # chart axis labels
        assert expected in text, expected


def test_report_spec_errors_name_the_field():
    with pytest.raises(InvalidInput, match="cron: Value error|cron: 'every day' is not a cron"):
        validate(ReportSpec, {"name": "x", "project": "p", "cron": "every day", "channels": ["a"]})
    # No channel is allowed: the report is kept for running and downloading (#13's walk).
    assert validate(ReportSpec, {"name": "x", "project": "p", "cron": "@daily"}).channels == []
    with pytest.raises(InvalidInput, match="bucket must not be longer than period"):
        validate(
            ReportSpec,
            {
                "name": "x",
                "project": "p",
                "cron": "@daily",
                "channels": ["a"],
                "period": "1h",
                "bucket": "1d",
            },
        )


async def test_reports_run_on_their_cron_schedule_in_local_time(harness):
    svc = harness.svc
    svc.store = seeded_store()
    harness.clock.set(DAY0)  # Monday 2027-03-01 00:00 UTC = 01:00 in Paris
    svc.reports.put(spec(cron="0 4 * * *", timezone="Europe/Paris", format="csv"))
    await harness.tick_at(DAY0 + 3 * H - 1)
    assert [n for n in harness.sent if n.event == "report"] == []
    await harness.tick_at(DAY0 + 3 * H)  # 04:00 Paris
    (note,) = [n for n in harness.sent if n.event == "report"]
    assert [a.filename for a in note.attachments] == [
        "p-daily-20270301T0300-series.csv",
        "p-daily-20270301T0300-alarms.csv",
    ]
    assert note.attachments[0].content.decode().count("\n") == 5
    await harness.tick_at(DAY0 + 3 * H + 60_000_000)
    assert len([n for n in harness.sent if n.event == "report"]) == 1
    # Three days of downtime: one catch-up report for the latest slot.
    await harness.tick_at(DAY0 + 75 * H)
    notes = [n for n in harness.sent if n.event == "report"]
    assert len(notes) == 2 and "20270304T0300" in notes[1].attachments[0].filename


async def test_a_report_without_channels_is_not_run_by_the_schedule(harness):
    svc = harness.svc
    svc.store = seeded_store()
    harness.clock.set(DAY0)
    svc.reports.put(spec(cron="0 4 * * *", channels=[]))
    await harness.tick_at(DAY0 + 5 * H)
    assert [n for n in harness.sent if n.event == "report"] == []


async def test_report_needs_known_channels(harness):
    with pytest.raises(InvalidInput, match="has no channel 'nope'"):
        harness.svc.reports.put(spec(channels=["nope"]))
    assert SENT[harness.box] == []
