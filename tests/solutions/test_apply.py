"""What applying a template asks of the platform
(the REST part runs in tests/cli/test_solutions)."""

from __future__ import annotations

from atoll.detect import registry
from atoll.solutions import discover, load
from atoll.solutions.apply import detector_bindings


def test_detector_bindings_name_registered_detectors_and_declared_metrics():
    bindings = detector_bindings(load("manufacturing"))
    assert ("motor", "default", ["vibration_rms", "bearing_temp", "current"], {}) in bindings
    for template in discover():
        for dtype, detector, metrics, _ in detector_bindings(template):
            assert detector in registry.names()
            assert set(metrics) <= set(template.device_type(dtype).metric_names)


def test_registry_metrics_carry_units_and_ranges():
    metrics = load("retail").device_type("freezer").registry_metrics()
    assert {
        "name": "temperature",
        "type": "float",
        "unit": "°C",
        "min": -25.0,
        "max": -15.0,
    } in metrics
    assert {"name": "door", "type": "bool", "unit": "", "min": None, "max": None} in metrics
