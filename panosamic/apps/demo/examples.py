"""The demo's examples: the real unlabelled panorama of the test fixtures (in a source checkout) and a
synthetic office rendered at start-up with its depth and normals (no files shipped in the package)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from panosamic.io import atomic_path

#: The real panorama (research-only picture, so it stays in the repository's test fixtures).
REAL_PANORAMA = (
    Path(__file__).resolve().parents[3] / "tests" / "fixtures" / "real" / "panocontext_unlabelled"
    / "pano_asmasuxybohhcj.png"
)
#: The synthetic room: an office with bookcases, windows, tables and chairs.
SYNTHETIC_SEED = 5
SYNTHETIC_SIZE = (512, 1024)
#: Depth quantile mapped to black when the model has no depth threshold of its own (training's rule).
DEPTH_QUANTILE = 0.995


def _save_png(array: np.ndarray, path: Path) -> Path:
    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")
    return path


def write_synthetic_example(
    folder: str | Path, depth_threshold: float | None = None, size: tuple[int, int] = SYNTHETIC_SIZE
) -> dict[str, Path]:
    """Render the synthetic room into ``folder``: RGB, pseudo-disparity depth (0..255, as the model
    takes it) and colour-coded normals, ``size = (H, W)``. Returns the paths by modality."""
    from panosamic.apps.demo.backend import depth_to_disparity
    from panosamic.synth import encode_normals, render_room

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    room = render_room(SYNTHETIC_SEED, size)
    if depth_threshold is None:
        depth_threshold = float(np.nanquantile(room.depth_m, DEPTH_QUANTILE))
    disparity = np.clip(np.rint(depth_to_disparity(room.depth_m, depth_threshold)), 0, 255).astype(np.uint8)
    stem = f"synthetic_{room.room_name}"
    return {
        "image": _save_png(room.rgb, out / f"{stem}_rgb.png"),
        "depth": _save_png(disparity, out / f"{stem}_depth.png"),
        "normals": _save_png(encode_normals(room.normals), out / f"{stem}_normals.png"),
    }


def example_rows(
    modalities: Sequence[str],
    folder: str | Path,
    depth_threshold: float | None = None,
    size: tuple[int, int] = SYNTHETIC_SIZE,
) -> list[list[str | None]]:
    """Rows of ``[image, depth, normals]`` for ``gr.Examples``: the real panorama only for models that
    take RGB alone (it has no depth or normals), the synthetic room always."""
    rows: list[list[str | None]] = []
    if tuple(modalities) == ("image",) and REAL_PANORAMA.is_file():
        rows.append([str(REAL_PANORAMA), None, None])
    files = write_synthetic_example(folder, depth_threshold, size)
    rows.append([str(files["image"])] + [str(files[m]) if m in modalities else None for m in ("depth", "normals")])
    return rows
