from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import atoll
from atoll.testing import rul_fleet as synthetic
from tests.api.serving import ApiServer

HOUR = synthetic.HOUR

#: NASA's C-MAPSS FD001 training file, when the optional corpus is beside the repo.
FD001 = (
    Path(
        os.environ.get(
            "ATOLL_CMAPSS_DIR", Path(__file__).resolve().parents[3] / "shared/datasets/cmapss"
        )
    )
    / "train_FD001.txt"
)


@pytest.fixture
def motors(tmp_path):
    """Project ``plant``: six ``motor`` devices with two runs to failure each in the store; m0 is
    late in its run under way (90 of 100 hours), m1 early (10 of 100)."""
    with ApiServer(tmp_path, rul=True) as server:
        with atoll.Client(server.url, server.boot.api_key) as client:
            client.create_project("Plant", id="plant")
            client.create_device_type("plant", "motor", synthetic.METRICS)
            motors = synthetic.fleet(6)
            motors[0].current, motors[0].current_life = 90, 100
            motors[1].current, motors[1].current_life = 10, 100
            secrets = {
                m.device: client.register_device(
                    "plant", id=m.device, device_type="motor"
                ).credentials.secret
                for m in motors
            }
            now = time.time_ns() // 1000
            end = now // HOUR * HOUR - HOUR  # the back-filled history ends an hour ago
            csv = synthetic.history(server.store, "plant", motors, end)
            yield server, client, motors, secrets, csv
