"""Remaining useful life (RUL) from run-to-failure history.

``read_cmapss`` reads NASA's C-MAPSS format into ``Trajectories``; ``RulModel.fit`` learns from
engines run to failure and predicts each engine's RUL at its last cycle with an interval;
``RulModel.save``/``load`` keep it in a directory (a model card and LightGBM text files).
``atoll rul train|predict`` and ``atoll bench cmapss`` are the commands.
"""

from atoll.rul.cmapss import Trajectories, read_cmapss
from atoll.rul.model import Prediction, RulModel, phm08_score

__all__ = ["Prediction", "RulModel", "Trajectories", "phm08_score", "read_cmapss"]
