"""What applying a template asks of the platform
(the REST part runs in tests/cli/test_solutions)."""

from __future__ import annotations

import atoll
from atoll.detect import registry
from atoll.solutions import discover, load
from atoll.solutions.apply import apply, detector_bindings
from tests.api.serving import ApiServer


def test_detector_bindings_name_registered_detectors_and_declared_metrics():
    bindings = detector_bindings(load("manufacturing"))
    assert ("motor", "default", ["vibration_rms", "bearing_temp"], {}) in bindings
    assert ("motor", "default", ["current"], {}) in bindings
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


def test_applying_a_template_binds_its_detectors_to_its_device_types(tmp_path):
    """What a template binds is kept with its device types, as the API gives it back."""
    template = load("manufacturing")
    with ApiServer(tmp_path) as server, atoll.Client(server.url, server.boot.api_key) as client:
        apply(client, template, "line", project_name="Line 1", rules=False)
        for dtype in template.device_types:
            kept = client.device_type("line", dtype.name).detectors
            assert [(b.detector, list(b.metrics), b.decision) for b in kept] == [
                (b.detector, b.metrics, b.decision) for b in dtype.detectors
            ]
