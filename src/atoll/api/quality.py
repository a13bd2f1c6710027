"""Detection quality from operators' feedback on alarms: of the alarms judged a real fault or a
false alarm, the share that were real (precision). ``unsure`` verdicts are counted as judged but
left out of the precision. Computed from one grouped query of the alarm book
(``AlarmBook.feedback_counts``), per project, per rule and per week."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any

from atoll.api.schemas import iso
from atoll.rules.alarms import week_of, week_start

#: How far back the lab pages count feedback: alarms raised in the last this many weeks.
QUALITY_WEEKS = 12

Count = tuple[str, str, str, int, str, int]  # project, rule id, rule name, week, verdict, n


def empty() -> dict[str, Any]:
    return {"judged": 0, "real": 0, "false": 0, "unsure": 0, "precision": None}


def add(q: dict[str, Any], verdict: str, n: int) -> None:
    q[verdict] += n
    q["judged"] += n
    decided = q["real"] + q["false"]
    q["precision"] = round(q["real"] / decided, 4) if decided else None


def merge(into: dict[str, Any], q: dict[str, Any]) -> None:
    for verdict in ("real", "false", "unsure"):
        if q[verdict]:
            add(into, verdict, q[verdict])


def since_us(now_us: int, weeks: int = QUALITY_WEEKS) -> int:
    """The start of the week ``weeks - 1`` weeks before the current one (weeks start on
    Monday, UTC)."""
    return week_start(week_of(now_us) - (weeks - 1))


def by(counts: Iterable[Count], key: Callable[[Count], Hashable]) -> dict[Any, dict[str, Any]]:
    out: dict[Any, dict[str, Any]] = {}
    for c in counts:
        add(out.setdefault(key(c), empty()), c[4], c[5])
    return out


def weekly(counts: Iterable[Count], now_us: int, weeks: int) -> list[dict[str, Any]]:
    """One entry per week (oldest first, empty weeks included): its start and its quality."""
    per = by(counts, lambda c: c[3])
    first = week_of(now_us) - (weeks - 1)
    return [
        {"week": iso(week_start(w)), **per.get(w, empty())} for w in range(first, first + weeks)
    ]


def per_rule(
    counts: list[Count], names: dict[str, str], now_us: int, weeks: int
) -> list[dict[str, Any]]:
    """Per (project, rule): its quality over the window and week by week; most judged first."""
    groups: dict[tuple[str, str], list[Count]] = {}
    for c in counts:
        groups.setdefault((c[0], c[1]), []).append(c)
    rows = []
    for (project, rule_id), cs in groups.items():
        total = empty()
        for c in cs:
            add(total, c[4], c[5])
        rows.append(
            {
                "project": project,
                "project_name": names.get(project, project),
                "rule_id": rule_id,
                "rule_name": cs[-1][2],
                **total,
                "weeks": weekly(cs, now_us, weeks),
            }
        )
    rows.sort(key=lambda r: (-r["judged"], r["project"], r["rule_id"]))
    return rows
