"""What ``panosamic prepare`` owns in its output folder, and how a run takes it over.

A run records its settings (``cache_prepare_settings.json``) before it writes any sample, so a
rerun knows what the samples already there were made with: the same settings resume, other
settings are refused (one line naming each differing setting), and ``overwrite`` first removes
everything prepare wrote before (sample files, caches, the record; nothing else) and starts clean.
Temp files a killed run left behind are removed by ``panosamic.io`` on the next write into their
folder (every sample a rerun redoes is such a folder).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from panosamic.data.base import (
    AREA_DEPTH_CACHE,
    ASSETS_DIR,
    CLASS_WEIGHTS_CACHE,
    DEPTH_FILE,
    DEPTH_MASK_FILE,
    NORMALS_FILE,
    RGB_FILE,
    SAMPLES_CACHE,
    SPLIT_DEPTH_CACHE,
    read_json,
)
from panosamic.io import atomic_path, atomic_write_text, remove_stale_temp_files

#: Our record of how a folder was prepared (the reference ignores it).
SETTINGS_FILE = "cache_prepare_settings.json"
#: Dataset-wide files prepare writes (derived caches included: the loaders rebuild them).
CACHE_FILES: tuple[str, ...] = (SAMPLES_CACHE, AREA_DEPTH_CACHE, SPLIT_DEPTH_CACHE, CLASS_WEIGHTS_CACHE, SETTINGS_FILE)
#: Per-sample files every dataset writes (the label file's name is the dataset's).
SAMPLE_FILES: tuple[str, ...] = (RGB_FILE, DEPTH_FILE, DEPTH_MASK_FILE, NORMALS_FILE)
_UNSET = "<unset>"


def _differences(previous: dict[str, Any], settings: dict[str, Any]) -> tuple[list[str], list[str]]:
    keys = [k for k in settings if previous.get(k, _UNSET) != settings[k]]
    keys += [k for k in previous if k not in settings]
    was = [f"{k}={previous.get(k, _UNSET)!r}" for k in keys]
    now = [f"{k}={settings.get(k, _UNSET)!r}" for k in keys]
    return was, now


def check_settings(out: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume ``out`` when it was prepared with other settings (no record: resume)."""
    path = out / SETTINGS_FILE
    if not path.is_file():
        return
    previous = read_json(path)
    if not isinstance(previous, dict):
        raise ValueError(f"{path} is not a settings record (a JSON object); delete it or pass --overwrite")
    was, now = _differences(previous, settings)
    if was:
        raise ValueError(
            f"{out} was prepared with {', '.join(was)} but this run asks for {', '.join(now)}; "
            "rerun with the same options to resume, or pass --overwrite to delete the prepared samples and start again"
        )


def record_settings(out: Path, settings: dict[str, Any]) -> None:
    """Write the settings record atomically (before any sample is written)."""
    atomic_write_text(out / SETTINGS_FILE, json.dumps(settings, sort_keys=True))


def _listed_areas(out: Path) -> set[str]:
    """Areas named by an earlier run's caches (unreadable caches name none)."""
    names: set[str] = set()
    for cache in (SAMPLES_CACHE, AREA_DEPTH_CACHE):
        try:
            content = read_json(out / cache) if (out / cache).is_file() else None
        except ValueError:
            content = None
        if isinstance(content, dict):
            names.update(str(k) for k in content)
    return names


def _remove_sample_dir(sample_dir: Path, names: tuple[str, ...]) -> None:
    remove_stale_temp_files(sample_dir)
    for name in names:
        (sample_dir / name).unlink(missing_ok=True)
    if not any(sample_dir.iterdir()):
        sample_dir.rmdir()


def remove_prepared_output(out: Path, areas: Iterable[str], label_files: Iterable[str]) -> None:
    """Delete what prepare wrote in ``out``: the sample files of ``areas`` and of the areas the
    earlier caches name (folders left empty go too), the caches and the settings record.
    Anything else (other files, the assets) stays."""
    names = tuple(dict.fromkeys((*SAMPLE_FILES, *label_files)))
    for area in sorted(set(areas) | _listed_areas(out)):
        area_dir = out / area
        if area == ASSETS_DIR or Path(area).name != area or not area_dir.is_dir() or area_dir.is_symlink():
            continue
        for sample_dir in area_dir.iterdir():
            if sample_dir.is_dir() and not sample_dir.is_symlink():
                _remove_sample_dir(sample_dir, names)
        if not any(area_dir.iterdir()):
            area_dir.rmdir()
    remove_stale_temp_files(out)
    for name in CACHE_FILES:
        (out / name).unlink(missing_ok=True)


def save_image(path: Path, image: Image.Image, fmt: str) -> None:
    """Write ``image`` to ``path`` atomically as ``fmt`` (WEBP: lossless)."""
    with atomic_path(path) as tmp:
        image.save(tmp, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))


def sample_outputs(sample_dir: Path, label_file: str, has_normals: bool) -> list[Path]:
    """The files a prepared sample of a dataset with depth consists of."""
    names = [RGB_FILE, DEPTH_FILE, DEPTH_MASK_FILE, label_file] + ([NORMALS_FILE] if has_normals else [])
    return [sample_dir / n for n in names]


def write_sample(
    sample_dir: Path,
    rgb: Image.Image,
    label_file: str,
    labels: Image.Image,
    normals: Image.Image | None = None,
    depth: np.ndarray | None = None,
    valid: np.ndarray | None = None,
) -> None:
    """Write one processed sample, each file atomically: ``rgb.webp``, ``depth.png`` (16-bit) and
    ``depth_mask.webp`` (``valid`` as 0 / 255 in every channel) when there is depth, ``normals.webp``
    when there are normals, and the label file (WEBP or PNG, by its name); all lossless."""
    sample_dir.mkdir(parents=True, exist_ok=True)
    save_image(sample_dir / RGB_FILE, rgb, "WEBP")
    if depth is not None:
        assert valid is not None
        save_image(sample_dir / DEPTH_FILE, Image.fromarray(depth.astype(np.uint16)), "PNG")
        mask_rgb = np.repeat((valid.astype(np.uint8) * 255)[..., None], 3, axis=-1)
        save_image(sample_dir / DEPTH_MASK_FILE, Image.fromarray(mask_rgb), "WEBP")
    if normals is not None:
        save_image(sample_dir / NORMALS_FILE, normals, "WEBP")
    save_image(sample_dir / label_file, labels, "WEBP" if label_file.endswith(".webp") else "PNG")


def folder_paths(
    raw: str | Path, out: str | Path, scale: float | None, default_scale: float = 1.0
) -> tuple[Path, Path, float]:
    """``raw`` and ``out`` as paths and ``scale`` as a number (None: ``default_scale``) of a folder
    dataset's prepare, after checking that the scale is in (0, 1] and that ``out`` is not ``raw``."""
    raw, out = Path(raw), Path(out)
    scale = default_scale if scale is None else float(scale)
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"--scale must be in (0, 1], got {scale}")
    if out.exists() and out.resolve() == raw.resolve():
        raise ValueError("--out must differ from --raw")
    return raw, out, scale
