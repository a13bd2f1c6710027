"""The demo's summary lines on predictive maintenance (``atoll.cli.demo.maintenance_lines``)."""

from atoll.cli.demo import maintenance_lines
from atoll.demo import DemoSummary


def test_the_summary_says_how_long_before_each_failure_the_alarm_came():
    s = DemoSummary()
    s.rul_note = "no RUL model for motor: 3 run-to-failure trajectories …"
    assert maintenance_lines(s) == ["maintenance: " + s.rul_note]
    s.rul_model = {
        "device_type": "motor",
        "version": 1,
        "model_id": "mdl-1",
        "fit_seconds": 1.42,
        "trajectories": 18,
    }
    s.maintenance = [
        {"device": "acme~motor-3", "failed_at": 0.0, "life_s": 1300.0, "alarmed_before_s": 468.0},
        {"device": "acme~motor-4", "failed_at": 0.0, "life_s": 1300.0, "alarmed_before_s": None},
    ]
    lines = maintenance_lines(s)
    assert lines[0] == (
        "maintenance: motor RUL model v1 (mdl-1), fitted in the background at start in 1.4 s on "
        "18 runs to failure"
    )
    assert lines[1] == "maintenance: motor-3 alarmed 7.8 min before its failure"
    assert lines[2] == "maintenance: motor-4 failed with no maintenance alarm before it"
    s.maintenance = []
    assert maintenance_lines(s)[1] == "maintenance: no motor wore out to failure while live"
