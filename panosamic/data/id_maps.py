"""Single-channel label id maps: the checks every dataset's label decoder runs first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

#: PIL modes of a single-channel (grey, palette, 16- or 32-bit) id image.
ID_IMAGE_MODES: tuple[str, ...] = ("L", "P", "I", "I;16")


def checked_id_image(image: Image.Image, path: Path, what: str) -> Image.Image:
    """``image`` unchanged when it is a single-channel id image, else a ValueError naming ``path``
    and what was expected (``what``: e.g. ``"mpcat40"``)."""
    if image.mode not in ID_IMAGE_MODES:
        raise ValueError(f"{path}: expected a single-channel {what} id map, got mode {image.mode}")
    return image


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
