"""The throwaway Mosquitto: starts on a free port even if its first pick was taken."""

from __future__ import annotations

import socket

from atoll.sim.mosquitto import Mosquitto


def test_a_taken_port_is_replaced_on_first_start(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        broker = Mosquitto(tmp_path, {"d1": "s1"})
        broker.port = taken.getsockname()[1]
        with broker:
            assert broker.port != taken.getsockname()[1]
            assert broker.url.endswith(f":{broker.port}")
            with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
                pass
