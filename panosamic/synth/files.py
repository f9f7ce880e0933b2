"""What the raw-layout writers share: their argument checks, the output-folder rule and PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from panosamic.io import atomic_path


def check_count(name: str, value: Any, low: int) -> None:
    """Raise unless ``value`` is an int (not a bool) >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")


def check_output_dir(out: Path, overwrite: bool) -> bool:
    """Refuse an output path that is a file, or a non-empty folder unless ``overwrite``; True when
    ``out`` is a non-empty folder (that ``overwrite`` allows)."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"output path {str(out)!r} exists and is not a directory")
    used = out.is_dir() and any(out.iterdir())
    if used and not overwrite:
        raise ValueError(f"output directory {str(out)!r} is not empty; pass overwrite=True (--overwrite)")
    return used


def save_png(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a PNG atomically (the same array gives the same bytes)."""
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG", compress_level=4)
