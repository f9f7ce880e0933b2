"""Single-channel label id maps: the checks every dataset's label decoder runs first."""

from __future__ import annotations

import numpy as np


def checked_ids(raw: np.ndarray, high: int, source: str = "labels", what: str = "label ids") -> np.ndarray:
    """``raw`` as int64 ids, after checking that it is a 2-D map whose ids lie in ``0..high``
    (``RuntimeError`` naming ``source`` otherwise)."""
    raw = np.asarray(raw)
    if raw.ndim != 2:
        raise RuntimeError(f"{source}: expected a single-channel id map, got shape {raw.shape}")
    ids = raw.astype(np.int64)
    if ids.size and (ids.min() < 0 or ids.max() > high):
        raise RuntimeError(f"{source}: {what} must be in 0..{high}, found {ids.min()}..{ids.max()}")
    return ids
