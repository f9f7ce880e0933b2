"""``panosamic prepare``: turn a raw dataset download into the processed layout.

Writes, per sample, ``rgb.webp`` (Lanczos), ``depth.png`` (16-bit; Lanczos including the holes
like the reference, or ``--depth-resize hole-aware``), ``depth_mask.webp`` (validity, nearest),
``normals.webp`` (nearest) and ``instances.webp`` / ``semantics.png`` (nearest), all lossless;
then the sample list, the per-area depth histograms (of the processed depth, valid pixels
only; ``[]`` for an area without samples, whose folder is left empty) and the assets.
Every file is written atomically; the run's settings (dataset, scale, depth resizing) are
recorded before any sample is written. A sample whose files all exist is skipped (its
histogram is read back from them), so an interrupted run can simply be re-run with the same
settings; other settings are refused unless ``--overwrite``, which starts clean (see
:mod:`panosamic.data.prepare_output`). A missing or unreadable raw file stops the run with
its name, or with ``--skip-bad`` is skipped and counted (skipped samples are left out of the
sample list).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from panosamic.data.base import (
    AREA_DEPTH_CACHE,
    ASSETS_DIR,
    CLASS_WEIGHTS_CACHE,
    SAMPLES_CACHE,
    SPLIT_DEPTH_CACHE,
    RawLayout,
    RawSampleFiles,
    read_depth,
)
from panosamic.data.depth import DEPTH_RESIZE_MODES, resize_depth, resize_mask
from panosamic.data.prepare_output import (
    SETTINGS_FILE,  # noqa: F401 (re-exported: where prepare records its settings)
    check_settings,
    record_settings,
    remove_prepared_output,
    sample_outputs,
    write_sample,
)
from panosamic.data.registry import REGISTRY, get_entry, load_object
from panosamic.errors import PanosamicError
from panosamic.io import atomic_write_bytes, atomic_write_text
from panosamic.progress import Progress
from panosamic.specs import DATASET_NAMES

#: Datasets read through a :class:`RawLayout` (from :mod:`panosamic.data.registry`, where datasets plug in;
#: the others, e.g. ``folder``, name their own ``preparer`` there).
RAW_LAYOUTS: dict[str, type[RawLayout]] = {n: load_object(e.raw_layout) for n, e in REGISTRY.items() if e.raw_layout}
#: Label file names of all datasets (what ``overwrite`` may delete in a sample folder).
LABEL_FILES: tuple[str, ...] = tuple(dict.fromkeys(layout.dataset.label_file for layout in RAW_LAYOUTS.values()))
_MAX_LISTED = 10


class RawFileError(PanosamicError, RuntimeError):
    """A raw file is missing or cannot be read; ``path`` names it."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"raw file {path}: {reason}")
        self.path = Path(path)
        self.reason = reason


@dataclass
class PrepareReport:
    """What a :func:`prepare_dataset` run did."""

    dataset: str
    out: Path
    num_samples: int = 0
    num_written: int = 0
    num_existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (area/sample, reason)
    seconds: float = 0.0


def _load(path: Path) -> Image.Image:
    """Open and fully decode an image; any failure is a :class:`RawFileError`."""
    if not path.is_file():
        raise RawFileError(path, "missing")
    try:
        with Image.open(path) as im:
            im.load()
            return im.copy()
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for broken files
        raise RawFileError(path, f"unreadable ({type(e).__name__}: {e})") from None


def _depth_array(image: Image.Image, path: Path) -> np.ndarray:
    if image.mode not in ("I;16", "I;16B", "I"):
        raise RawFileError(path, f"expected a 16-bit depth image, got mode {image.mode}")
    array = np.asarray(image)
    if array.min() < 0 or array.max() > 65535:
        raise RawFileError(path, "depth values outside 0..65535")
    return array.astype(np.uint16)


def process_sample(
    layout: RawLayout, files: RawSampleFiles, sample_dir: Path, scale: float, depth_resize: str
) -> tuple[np.ndarray, np.ndarray]:
    """Read, resize and write one sample; returns its processed (depth, valid) arrays."""
    rgb = _load(files.rgb).convert("RGB")
    depth_image = _load(files.depth)
    depth = _depth_array(depth_image, files.depth)
    try:
        opened = layout.open_labels(files.labels)
    except (OSError, ValueError) as e:
        raise RawFileError(files.labels, f"unreadable ({type(e).__name__}: {e})") from None
    labels = opened if opened is not None else _load(files.labels)
    try:
        labels = layout.convert_labels(labels, files.labels)
    except ValueError as e:
        raise RawFileError(files.labels, str(e)) from None
    normals = _load(files.normals).convert("RGB") if layout.dataset.has_normals and files.normals else None
    sizes = {"rgb": rgb.size, "depth": depth_image.size, "labels": labels.size}
    if normals is not None:
        sizes["normals"] = normals.size
    if len(set(sizes.values())) != 1:
        raise RawFileError(files.rgb, f"the sample's files differ in size (width, height): {sizes}")
    valid = layout.dataset.depth_encoding.valid(depth)
    width, height = rgb.size
    if scale < 1.0:
        size = (int(width * scale), int(height * scale))
        if min(size) < 1:
            raise ValueError(f"--scale {scale} makes {width}x{height} panoramas empty")
        rgb = rgb.resize(size, resample=Image.Resampling.LANCZOS)
        depth = resize_depth(depth, size, layout.dataset.depth_encoding, depth_resize)  # type: ignore[arg-type]
        valid = resize_mask(valid, size)
        labels = labels.resize(size, resample=Image.Resampling.NEAREST)
        if normals is not None:
            normals = normals.resize(size, resample=Image.Resampling.NEAREST)
    write_sample(sample_dir, rgb, layout.dataset.label_file, labels, normals, depth, valid)
    return depth, valid


def _copy_assets(raw: Path, out: Path) -> None:
    src = raw / ASSETS_DIR
    if not src.is_dir():
        return
    for path in sorted(src.rglob("*")):
        if path.is_file():
            target = out / ASSETS_DIR / path.relative_to(src)
            if not target.is_file() or target.read_bytes() != path.read_bytes():
                atomic_write_bytes(target, path.read_bytes())


def _check_inputs(
    dataset: str, raw: Path, out: Path, scale: float | None, depth_resize: str
) -> tuple[RawLayout, float]:
    if dataset not in RAW_LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {tuple(RAW_LAYOUTS)}")
    layout = RAW_LAYOUTS[dataset]()
    if not raw.is_dir():
        raise FileNotFoundError(f"raw {dataset} folder {raw} does not exist")
    if out.resolve() == raw.resolve():
        raise ValueError("--out must differ from --raw")
    scale = layout.default_scale if scale is None else float(scale)
    if not 0.0 < scale <= 1.0:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    if depth_resize not in DEPTH_RESIZE_MODES:
        raise ValueError(f"depth_resize must be one of {DEPTH_RESIZE_MODES}, got {depth_resize!r}")
    return layout, scale


def _find_work(
    layout: RawLayout, raw: Path, skip_bad: bool
) -> tuple[dict[str, list[str]], dict[tuple[str, str], str]]:
    """area -> sample names of the raw folder, and the samples with missing raw files."""
    layout.check(raw)
    areas = layout.find_areas(raw)
    samples = {area: layout.find_samples(raw, area) for area in areas}
    if not any(samples.values()):
        raise FileNotFoundError(f"no {layout.dataset.info.name} samples found in {raw} (areas: {areas[:8]})")
    bad: dict[tuple[str, str], str] = {}
    for area, names in samples.items():
        for name in names:
            missing = [str(p) for p in layout.sample_files(raw, area, name).paths().values() if not p.is_file()]
            if missing:
                bad[(area, name)] = f"missing raw file {missing[0]}"
    if bad and not skip_bad:
        listed = "\n  ".join(bad[k] for k in list(bad)[:_MAX_LISTED])
        more = f"\n  ... {len(bad)} samples in all" if len(bad) > _MAX_LISTED else ""
        raise FileNotFoundError(f"{len(bad)} sample(s) have missing raw files:\n  {listed}{more}\n(--skip-bad skips them)")
    return samples, bad


def _take_over(out: Path, areas: list[str], settings: dict, overwrite: bool) -> None:
    """Check (or, with ``overwrite``, clear) earlier output and record this run's settings."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        remove_prepared_output(out, areas, LABEL_FILES)
    else:
        check_settings(out, settings)
    record_settings(out, settings)


def _prepare_one(
    layout: RawLayout, raw: Path, out: Path, area: str, name: str, scale: float, depth_resize: str
) -> tuple[tuple[np.ndarray, np.ndarray], bool]:
    """(processed depth, valid) of one sample and whether it was written (False: already done)."""
    sample_dir = out / area / name
    if all(p.is_file() for p in sample_outputs(sample_dir, layout.dataset.label_file, layout.dataset.has_normals)):
        try:
            return read_depth(sample_dir), False
        except OSError:
            pass
    files = layout.sample_files(raw, area, name)
    return process_sample(layout, files, sample_dir, scale, depth_resize), True


def _write_area_caches(out: Path, done: dict[str, list[str]], hist: dict[str, list]) -> None:
    """Sample lists and per-area histograms; an area without samples gets [] (as the reference)."""
    atomic_write_text(out / SAMPLES_CACHE, json.dumps({a: sorted(names) for a, names in done.items()}))
    stats = {a: [h[0].tolist(), np.asarray(h[1]).tolist()] if done[a] else [] for a, h in hist.items()}
    atomic_write_text(out / AREA_DEPTH_CACHE, json.dumps(stats))


def prepare_dataset(
    dataset: str,
    raw: str | Path,
    out: str | Path,
    scale: float | None = None,
    *,
    overwrite: bool = False,
    skip_bad: bool = False,
    depth_resize: str = "reference",
    progress: bool = True,
    **options: Any,
) -> PrepareReport:
    """Prepare ``raw`` (a download in the dataset's raw layout) into ``out``; see the module doc.

    ``overwrite``: delete what an earlier run wrote in ``out`` and start clean; otherwise a run
    resumes an earlier one with the same settings and refuses one with other settings.
    """
    preparer = get_entry(dataset).preparer if dataset in DATASET_NAMES else None
    if preparer is not None:  # a dataset prepared its own way (``folder``); ``options``: its extra flags
        return load_object(preparer)(raw, out, scale, overwrite=overwrite, progress=progress, **options)
    started = time.perf_counter()
    raw, out = Path(raw), Path(out)
    layout, scale = _check_inputs(dataset, raw, out, scale, depth_resize)
    samples, bad = _find_work(layout, raw, skip_bad)  # everything checkable is checked before writing
    areas = list(samples)
    _take_over(out, areas, {"dataset": dataset, "scale": scale, "depth_resize": depth_resize}, overwrite)
    _copy_assets(raw, out)
    for area in areas:
        (out / area).mkdir(exist_ok=True)  # areas without samples stay as empty folders

    report = PrepareReport(dataset=dataset, out=out)
    hist = {area: [np.zeros(layout.dataset.depth_encoding.hist_bins, np.int64), None] for area in areas}
    done: dict[str, list[str]] = {area: [] for area in areas}
    total = sum(len(v) for v in samples.values())
    with Progress(total, f"prepare {dataset}", "pano", bar=progress) as bar:  # no bar: a line every few seconds
        for area in areas:
            for name in samples[area]:
                bar.set_postfix(area=area)
                bar.update(1)
                if (area, name) in bad:
                    continue
                try:
                    arrays, written = _prepare_one(layout, raw, out, area, name, scale, depth_resize)
                except RawFileError as e:
                    if not skip_bad:
                        raise RawFileError(e.path, f"{e.reason}; fix or re-download it, or pass --skip-bad") from None
                    bad[(area, name)] = str(e)
                    continue
                report.num_written += written
                report.num_existing += not written
                counts, hist[area][1] = layout.dataset.depth_encoding.histogram(*arrays)
                hist[area][0] += counts
                done[area].append(name)

    _write_area_caches(out, done, hist)
    if report.num_written:  # derived caches of an older state would be stale (the reference trusts them)
        for stale in (SPLIT_DEPTH_CACHE, CLASS_WEIGHTS_CACHE):
            (out / stale).unlink(missing_ok=True)
    report.num_samples = sum(len(v) for v in done.values())
    report.skipped = [(f"{a}/{n}", reason) for (a, n), reason in bad.items()]
    report.seconds = time.perf_counter() - started
    return report
