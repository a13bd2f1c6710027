"""``atoll.client`` model registry calls against a real server: register, the lifecycle with
rollback, versions, cards, and the errors the server answers."""

from __future__ import annotations

import pytest

import atoll


def test_register_promote_roll_back_and_export(client, plant):
    card = {"model": "ets", "validation": {"mase": 0.8}}
    first = client.register_model(
        "plant", "forecaster", device="b1", metric="temperature", card=card, rows=1440
    )
    assert (first.scope, first.version, first.state, first.card) == (
        "series:b1/temperature",
        1,
        "draft",
        card,
    )
    second = client.register_model("plant", "forecaster", scope="series:b1/temperature")
    for m in (first, second):
        assert client.approve_model("plant", m.id).model.state == "approved"
    client.activate_model("plant", first.id)
    change = client.activate_model("plant", second.id, comment="better MASE")
    assert change.retired == [first.id] and change.model.state == "active"
    back = client.rollback_model("plant", second.id)
    assert (back.model.id, back.retired) == (first.id, [second.id])
    assert [(m.version, m.state) for m in client.model_versions("plant", first.id)] == [
        (2, "retired"),
        (1, "active"),
    ]
    assert [m.id for m in client.models("plant", state="active")] == [first.id]
    assert client.model("plant", first.id).allowed == ["retire", "rollback"]
    md = client.model_card("plant", first.id)
    assert isinstance(md, str) and "| Training rows | 1440 |" in md
    doc = client.model_card("plant", first.id, "json")
    assert isinstance(doc, dict) and doc["card"] == card
    with pytest.raises(atoll.Conflict) as refused:
        client.approve_model("plant", first.id)
    assert refused.value.hint == "allowed: retire, rollback"
    with pytest.raises(atoll.InvalidInput):
        client.register_model("plant", "rul", scope="motor")
    with pytest.raises(atoll.NotFound):
        client.retire_model("plant", "mdl-missing")
    client.retire_model("plant", first.id)
    assert client.models("plant", state="active") == []
