from __future__ import annotations

import os
from pathlib import Path

#: NASA's C-MAPSS FD001 training file, when the optional corpus is beside the repo.
FD001 = (
    Path(
        os.environ.get(
            "ATOLL_CMAPSS_DIR", Path(__file__).resolve().parents[3] / "shared/datasets/cmapss"
        )
    )
    / "train_FD001.txt"
)
