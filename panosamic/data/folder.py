"""The ``folder`` dataset: your own panoramas and classes (layouts: :mod:`panosamic.data.folder_layout`).

:func:`prepare_folder` checks the whole raw folder before it writes anything (each problem is one
line naming the file, the value and what was expected), then writes the prepared layout, the
per-fold depth thresholds and the splits: the given ``splits/*.txt`` (one fold), or ``folds``
folds made by a seeded shuffle (fold k tests on the k-th part and trains on the rest).
:class:`FolderDataset` reads it like the other datasets (``build_dataset("folder", P, fold, split)``).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
from PIL import Image

from panosamic.constants import IGNORE_INDEX
from panosamic.data.base import (
    CLASS_WEIGHTS_CACHE,
    SPLIT_DEPTH_CACHE,
    PanoramaDataset,
    read_array,
)
from panosamic.data.classes import DatasetInfo
from panosamic.data.depth import (
    DepthEncoding,
    resize_depth,
    resize_mask,
    sum_histograms,
    thresholds_from_histogram,
)
from panosamic.data.folder_layout import (
    CLASSES_FILE,
    DATASET_FILE,
    FORMAT,
    IMAGE_SUFFIXES,
    LABEL_FILE,
    NAME,
    SAMPLES_DIR,
    SPLIT_NAMES,
    SPLITS_FILE,
    STORED_IGNORE,
    classes_json,
    depth_units,
    parse_classes,
    read_dataset_record,
    read_json_file,
    read_prepared_info,
    read_splits,
)
from panosamic.data.pinhole_layout import is_pinhole_folder
from panosamic.data.prepare import PrepareReport
from panosamic.data.prepare_output import (
    SETTINGS_FILE,
    check_settings,
    folder_paths,
    record_settings,
    write_sample,
)
from panosamic.errors import PanosamicError
from panosamic.io import atomic_write_text
from panosamic.progress import Progress
from panosamic.specs import canonical_modalities

#: Folds made when no splits/ lists are given and no --folds is asked for.
DEFAULT_FOLDS = 5
#: Per-sample depth histograms of a prepared folder (the thresholds of any split can be re-derived).
SAMPLE_DEPTH_CACHE = "cache_sample_depth_statistics.json"
T = TypeVar("T")


class FolderDataError(PanosamicError, ValueError):
    """A raw folder dataset breaks a rule (the message names the file, the value and what was expected)."""


def depth_encoding(depth_scale: float) -> DepthEncoding:
    """How ``depth/NAME.png`` stores depth: ``raw * depth_scale`` metres, 0 = missing."""
    num, den, bins, hist_max = depth_units(depth_scale)
    return DepthEncoding(numerator=num, denominator=den, invalid_value=0, hist_bins=bins, hist_max=hist_max)


# --------------------------------------------------------------------------- the loader
class FolderDataset(PanoramaDataset):
    """A prepared folder dataset (classes, folds and modalities come from the folder itself).

    ``split``: ``train``, ``test``, or ``val`` where ``splits/val.txt`` was given. Black pixels are
    not masked by default (your labels say what is unlabelled).
    """

    cross_validation = True
    label_file = LABEL_FILE
    splits = SPLIT_NAMES
    areas: tuple[str, ...] = ()
    #: Whether this class reads prepared pinhole folders (``dataset.json``'s ``"projection": "pinhole"``).
    reads_pinhole: bool = False

    def __init__(
        self, root, fold: int = 1, split: str = "train", modalities=("image",), *args, **kwargs
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(
                f"folder dataset {root} does not exist; make it with `panosamic prepare folder --raw DATA --out {root}`"
            )
        if is_pinhole_folder(root) and not self.reads_pinhole:
            raise ValueError(
                f'{root} is a pinhole folder (its dataset.json has "projection": "pinhole"), not panoramas; '
                f"train on its photos with `--source pinhole={root}`"
            )
        self.info: DatasetInfo = read_prepared_info(root)  # type: ignore[misc]
        record = read_dataset_record(root)
        self.available = tuple(record.get("modalities") or ("image",))
        self.has_normals = "normals" in self.available  # type: ignore[misc]
        self.depth_encoding = depth_encoding(float(record.get("depth_scale") or 0.001))  # type: ignore[misc]
        self.fold_splits = read_splits(root)
        self.folds = {k: (v["train"], v["test"]) for k, v in self.fold_splits.items()}  # type: ignore[misc]
        if "depth" in canonical_modalities(modalities) and "depth" not in self.available:
            raise ValueError(
                f"{root} has no depth (its raw folder had no depth/); choose modalities among "
                f"{self.available}"
            )
        super().__init__(root, fold, split, modalities, *args, **kwargs)
        self.sample_names = [p.name for p in self.sample_dirs]

    @classmethod
    def default_mask_black(cls, modalities: tuple[str, ...]) -> bool:
        return False

    def areas_of(self, fold: int, split: str) -> tuple[str, ...]:  # type: ignore[override]
        """Sample names of a fold's split (each sample is its own "area")."""
        if fold not in self.fold_splits:
            raise ValueError(f"{self.root}: fold must be one of {sorted(self.fold_splits)}, got {fold!r}")
        if split not in self.fold_splits[fold]:
            raise ValueError(
                f"{self.root} fold {fold} has splits {sorted(self.fold_splits[fold])}, not {split!r}"
            )
        return self.fold_splits[fold][split]

    def _list_samples(self) -> list[Path]:
        dirs = [self.root / SAMPLES_DIR / n for n in self.split_areas]
        if not dirs:
            raise ValueError(f"{self.root} fold {self.fold} {self.split} has no samples")
        absent = [d for d in dirs if not d.is_dir()]
        if absent:
            raise FileNotFoundError(
                f"{len(absent)} sample folder(s) listed in {SPLITS_FILE} do not exist, e.g. "
                f"{absent[0]}; re-run `panosamic prepare folder`"
            )
        return dirs

    def decode_labels(self, sample_dir: Path) -> np.ndarray:
        stored = read_array(sample_dir / LABEL_FILE).astype(np.int64)
        stored[stored == STORED_IGNORE] = IGNORE_INDEX
        return stored


# --------------------------------------------------------------------------- checking the raw folder
@dataclass(frozen=True)
class RawFolderSample:
    name: str
    image: Path
    label: Path
    depth: Path | None = None
    normals: Path | None = None


def _err(path: Path, what: str) -> FolderDataError:
    return FolderDataError(f"{path}: {what}")


def _size(path: Path) -> tuple[tuple[int, int], str]:
    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (OSError, ValueError, SyntaxError) as e:
        raise _err(path, f"unreadable ({type(e).__name__}: {e}); expected an image file") from None


def _names(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[str, Path]:
    """NAME -> file of a folder (a name with two files is an error)."""
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.name.startswith("."):
            continue
        if p.suffix.lower() not in suffixes:
            raise _err(p, f"unexpected file; expected {what} ({', '.join(suffixes)})")
        if p.stem in out:
            raise _err(p, f"duplicate name {p.stem!r} (also {out[p.stem].name}); expected one file per name")
        out[p.stem] = p
    return out


def _check_label(path: Path, size: tuple[int, int], num_classes: int, ignore: int) -> None:
    lsize, mode = _size(path)
    if mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I"):
        raise _err(path, f"mode {mode}; expected a single-channel 8- or 16-bit class-index PNG")
    if lsize != size:
        raise _err(path, f"size {lsize[0]}x{lsize[1]}; expected the image's {size[0]}x{size[1]}")
    values = np.asarray(Image.open(path)).astype(np.int64)
    found = np.unique(values)
    bad = found[((found < 0) | (found >= num_classes)) & (found != ignore)]
    if bad.size:
        v = int(bad[0])
        y, x = (int(i[0]) for i in np.nonzero(values == v))
        raise _err(
            path,
            f"value {v} ({int((values == v).sum())} pixels, first at x={x} y={y}); expected a class "
            f"index 0..{num_classes - 1} or the ignore_index {ignore}",
        )


def _check_aux(
    path: Path | None, name: str, kind: str, size: tuple[int, int], modes: tuple[str, ...]
) -> None:
    if path is None:
        raise FileNotFoundError(
            f"{kind}/{name}.png is missing; expected one {kind} file for every image (or no {kind}/ folder)"
        )
    asize, mode = _size(path)
    if mode not in modes:
        raise _err(
            path, f"mode {mode}; expected {'a 16-bit depth PNG' if kind == 'depth' else 'an RGB image'}"
        )
    if asize != size:
        raise _err(path, f"size {asize[0]}x{asize[1]}; expected the image's {size[0]}x{size[1]}")


def _raw_classes(raw: Path) -> tuple[dict[str, Any], tuple[DatasetInfo, int, float]]:
    """A raw folder's ``classes.json``: (its content, (classes, ignore_index, depth_scale))."""
    if not raw.is_dir():
        raise FileNotFoundError(f"raw folder dataset {raw} does not exist")
    content = read_json_file(raw / CLASSES_FILE)
    return content, parse_classes(content, raw / CLASSES_FILE)


def _raw_files(
    raw: Path, what: str, aux: tuple[str, ...] = ()
) -> tuple[dict[str, Path], dict[str, Path], dict[str, dict[str, Path]]]:
    """NAME -> file of a raw folder's ``images/`` (``what``), ``labels/`` and those of the ``aux``
    folders it has; there is an image, and every label has one."""
    for sub in ("images", "labels"):
        if not (raw / sub).is_dir():
            raise FileNotFoundError(
                f"{raw / sub} is missing; expected images/NAME.jpg|png|webp and labels/NAME.png"
            )
    images = _names(raw / "images", IMAGE_SUFFIXES, what)
    labels = _names(raw / "labels", (".png",), "class-index PNGs")
    found = {k: _names(raw / k, (".png",), f"{k} PNGs") for k in aux if (raw / k).is_dir()}
    if not images:
        raise FileNotFoundError(f"{raw / 'images'} holds no image")
    for name in labels:
        if name not in images:
            raise _err(labels[name], f"label without an image; expected images/{name}.jpg|png|webp")
    return images, labels, found


def _image_label(
    image: Path, labels: dict[str, Path], size: tuple[int, int], info: DatasetInfo, ignore: int
) -> Path:
    """The checked label file of ``image`` (``RAW/images/NAME.*``, ``size``) among ``labels``."""
    if image.stem not in labels:
        expected = image.parent.parent / "labels" / f"{image.stem}.png"
        raise FileNotFoundError(f"{expected} is missing; expected a label for {image.name}")
    _check_label(labels[image.stem], size, info.num_classes, ignore)
    return labels[image.stem]


def scan_raw_folder(raw: Path) -> tuple[DatasetInfo, int, float, list[RawFolderSample], dict[str, list[str]]]:
    """Check a raw folder dataset completely; (classes, ignore_index, depth_scale, samples, given split lists)."""
    raw = Path(raw)
    _, (info, ignore, depth_scale) = _raw_classes(raw)
    images, labels, aux = _raw_files(raw, "equirectangular images", ("depth", "normals"))
    samples = []
    for name, image in images.items():
        size, _ = _size(image)
        if size[0] != 2 * size[1]:
            raise _err(
                image,
                f"size {size[0]}x{size[1]} is not 2:1; expected an equirectangular panorama "
                "(width = 2 x height)",
            )
        label = _image_label(image, labels, size, info, ignore)
        if "depth" in aux:
            _check_aux(aux["depth"].get(name), name, "depth", size, ("I;16", "I;16B", "I;16L", "I"))
        if "normals" in aux:
            _check_aux(aux["normals"].get(name), name, "normals", size, ("RGB",))
        samples.append(
            RawFolderSample(
                name, image, label, aux.get("depth", {}).get(name), aux.get("normals", {}).get(name)
            )
        )
    for kind, files in aux.items():
        for name, path in files.items():
            if name not in images:
                raise _err(path, f"{kind} without an image; expected images/{name}.jpg|png|webp")
    return info, ignore, depth_scale, samples, _read_split_lists(raw, set(images))


def _read_split_lists(raw: Path, names: set[str]) -> dict[str, list[str]]:
    folder = raw / "splits"
    if not folder.is_dir():
        return {}
    lists: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.stem not in SPLIT_NAMES:
            raise _err(p, f"unexpected file; expected {', '.join(s + '.txt' for s in SPLIT_NAMES)}")
    for split in SPLIT_NAMES:
        path = folder / f"{split}.txt"
        if not path.is_file():
            continue
        entries: list[str] = []
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            name = line.strip()
            if not name or name.startswith("#"):
                continue
            name = Path(name).stem if Path(name).suffix.lower() in IMAGE_SUFFIXES else name
            if name not in names:
                raise _err(path, f"line {i}: {name!r} is not in images/; expected names of images/ files")
            if name in owner:
                raise _err(
                    path,
                    f"line {i}: {name!r} is already in {owner[name]}.txt; expected each name in one split",
                )
            owner[name] = split
            entries.append(name)
        lists[split] = entries
    if lists and (not lists.get("train") or not (lists.get("test") or lists.get("val"))):
        raise _err(folder, f"lists {sorted(lists)}; expected a non-empty train.txt and a test.txt or val.txt")
    return lists


def make_splits(
    names: list[str], lists: dict[str, list[str]], folds: int | None, seed: int
) -> dict[str, Any]:
    """The content of ``splits.json``: the given lists as fold 1, or ``folds`` seeded folds."""
    if lists:
        if folds is not None:
            raise FolderDataError(
                f"--folds {folds}: the raw folder has splits/ lists; expected one or the other"
            )
        fold = {"train": lists["train"], "test": lists.get("test") or lists["val"]}
        if lists.get("val"):
            fold["val"] = lists["val"]
        return {"source": "lists", "seed": None, "folds": {"1": fold}}
    k = DEFAULT_FOLDS if folds is None else folds
    if k < 2 or k > len(names):
        raise FolderDataError(
            f"--folds {k}: expected 2..{len(names)} for {len(names)} panoramas"
            + (" (or give splits/train.txt and splits/test.txt)" if folds is None else "")
        )
    order = sorted(names)
    random.Random(seed).shuffle(order)
    parts = [sorted(order[i::k]) for i in range(k)]
    return {"source": "folds", "seed": seed, "folds": {
        str(i + 1): {"train": sorted(n for j, p in enumerate(parts) if j != i for n in p), "test": parts[i]}
        for i in range(k)}}  # fmt: skip


# --------------------------------------------------------------------------- writing
@dataclass
class FolderPrepareReport(PrepareReport):
    """What :func:`prepare_folder` did: a :class:`~panosamic.data.prepare.PrepareReport` and the folds written."""

    folds: int = 0


def take_over_folder(out: Path, settings: dict[str, Any], overwrite: bool, derived: tuple[str, ...]) -> None:
    """Check an earlier prepared folder in ``out`` against this run's ``settings`` (with ``overwrite``:
    delete its samples, its ``derived`` files, the class counts and the settings record instead),
    then record the settings."""
    out.mkdir(parents=True, exist_ok=True)
    if overwrite:
        shutil.rmtree(out / SAMPLES_DIR, ignore_errors=True)
        for name in (*derived, CLASS_WEIGHTS_CACHE, SETTINGS_FILE):
            (out / name).unlink(missing_ok=True)
    else:
        check_settings(out, settings)
    record_settings(out, settings)


def write_folder_records(out: Path, classes: dict[str, Any], splits: dict[str, Any], record: dict[str, Any]) -> None:
    """After the samples: ``classes.json``, ``splits.json`` and ``dataset.json`` (the class counts of an
    older state would be stale: they are deleted)."""
    (out / CLASS_WEIGHTS_CACHE).unlink(missing_ok=True)
    atomic_write_text(out / CLASSES_FILE, json.dumps(classes, indent=1))
    atomic_write_text(out / SPLITS_FILE, json.dumps(splits, indent=1))
    atomic_write_text(out / DATASET_FILE, json.dumps(record, indent=1))


def _write_sample(s: RawFolderSample, out: Path, scale: float, ignore: int, enc: DepthEncoding):
    sample_dir = out / SAMPLES_DIR / s.name
    with Image.open(s.image) as im:
        rgb = im.convert("RGB")
    labels = np.asarray(Image.open(s.label)).astype(np.int64)
    stored = np.where(labels == ignore, STORED_IGNORE, labels).astype(np.uint16)
    w, h = rgb.size
    size = (max(2, round(w * scale) // 2 * 2), max(1, round(w * scale) // 2)) if scale < 1.0 else (w, h)
    label_image = Image.fromarray(stored)
    depth = valid = None
    if s.depth is not None:
        depth = np.asarray(Image.open(s.depth)).astype(np.int64).clip(0, 65535).astype(np.uint16)
        valid = enc.valid(depth)
    normals = Image.open(s.normals).convert("RGB") if s.normals is not None else None
    if size != (w, h):
        rgb = rgb.resize(size, resample=Image.Resampling.LANCZOS)
        label_image = label_image.resize(size, resample=Image.Resampling.NEAREST)
        if depth is not None:
            depth = resize_depth(depth, size, enc, "hole-aware")
            valid = resize_mask(valid, size)
        if normals is not None:
            normals = normals.resize(size, resample=Image.Resampling.NEAREST)
    write_sample(sample_dir, rgb, LABEL_FILE, label_image, normals, depth, valid)
    return None if depth is None else enc.histogram(depth, valid)


class FolderPreparer(ABC, Generic[T]):
    """One kind of folder prepare; :func:`run_folder_prepare` runs every kind in one order.

    The constructor checks the raw folder completely (it writes nothing) and sets the attributes;
    then the driver takes ``out`` over (:func:`take_over_folder`), calls :meth:`start`, :meth:`write`
    for each item under a progress bar and :meth:`finish`, and writes the records
    (:func:`write_folder_records`).
    """

    #: The report's dataset name (the progress bar says ``prepare NAME``) and what one item is called.
    name: str
    unit: str
    #: The kind's own files that ``overwrite`` deletes (with the samples, class counts and settings record).
    derived: tuple[str, ...] = ()
    #: Recorded before the first item is written; a rerun must ask for the same.
    settings: dict[str, Any]
    items: Sequence[T]
    #: The content of ``classes.json`` and ``splits.json``.
    classes: dict[str, Any]
    splits: dict[str, Any]
    #: (name, why) of what the check passed over.
    skipped: list[tuple[str, str]]

    def __init__(self, out: Path, scale: float) -> None:
        self.out, self.scale = out, scale
        self.skipped = []

    def start(self) -> None:
        """After the take-over, before the first item (what an earlier run left may be read here)."""

    @abstractmethod
    def write(self, item: T) -> bool:
        """Write one item; False where an earlier run's copy is kept instead."""

    @abstractmethod
    def finish(self) -> dict[str, Any]:
        """After the items: write the kind's own files; return the record for ``dataset.json``."""


def run_folder_prepare(
    kind: Callable[[Path, Path, float], FolderPreparer],
    raw: str | Path,
    out: str | Path,
    scale: float | None,
    *,
    overwrite: bool,
    progress: bool,
    default_scale: float = 1.0,
) -> FolderPrepareReport:
    """Prepare ``raw`` into ``out`` with ``kind(raw, out, scale)`` (paths and scale checked first)."""
    started = time.perf_counter()
    raw, out, scale = folder_paths(raw, out, scale, default_scale)
    job = kind(raw, out, scale)
    take_over_folder(out, job.settings, overwrite, job.derived)
    job.start()
    kept = 0
    with Progress(len(job.items), f"prepare {job.name}", job.unit, bar=progress) as bar:
        for item in job.items:
            kept += not job.write(item)
            bar.update(1)
    write_folder_records(out, job.classes, job.splits, job.finish())
    n = len(job.items)
    return FolderPrepareReport(
        job.name, out, n, n - kept, kept, job.skipped, time.perf_counter() - started, len(job.splits["folds"])
    )


class _Panoramas(FolderPreparer[RawFolderSample]):
    """``prepare folder``: panoramas, with depth thresholds per fold where the raw folder has depth."""

    name, unit = NAME, "pano"
    derived = (SPLIT_DEPTH_CACHE, SAMPLE_DEPTH_CACHE)

    def __init__(self, raw: Path, out: Path, scale: float, folds: int | None, seed: int) -> None:
        super().__init__(out, scale)
        info, self.ignore, depth_scale, self.items, lists = scan_raw_folder(raw)
        self.splits = make_splits([s.name for s in self.items], lists, folds, seed)
        first = self.items[0]
        self.modalities = ["image"] + [m for m in ("depth", "normals") if getattr(first, m) is not None]
        self.settings = {"dataset": NAME, "scale": scale, "folds": folds, "seed": seed}
        self.classes = classes_json(info, self.ignore, depth_scale)
        self.depth_scale, self.enc = depth_scale, depth_encoding(depth_scale)
        self.hist: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def write(self, item: RawFolderSample) -> bool:
        h = _write_sample(item, self.out, self.scale, self.ignore, self.enc)
        if h is not None:
            self.hist[item.name] = h
        return True

    def finish(self) -> dict[str, Any]:
        thresholds = {}
        if self.hist:
            for k, fold in self.splits["folds"].items():
                train = {n: self.hist[n] for n in fold["train"] if n in self.hist}
                thresholds[k] = thresholds_from_histogram(*sum_histograms(train, "depth histograms"))
            atomic_write_text(
                self.out / SAMPLE_DEPTH_CACHE,
                json.dumps({n: [c.tolist(), e.tolist()] for n, (c, e) in self.hist.items()}),
            )
        atomic_write_text(self.out / SPLIT_DEPTH_CACHE, json.dumps(thresholds))
        return {
            "format": FORMAT,
            "modalities": self.modalities,
            "depth_scale": self.depth_scale,
            "scale": self.scale,
            "num_samples": len(self.items),
        }


def prepare_folder(
    raw: str | Path,
    out: str | Path,
    scale: float | None = None,
    *,
    folds: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
    kind: Callable[..., FolderPreparer] = _Panoramas,
    **_: Any,
) -> FolderPrepareReport:
    """Check the raw folder dataset ``raw`` completely, then write the prepared layout into ``out``.

    ``kind``: what the folder holds (made with ``folds`` and ``seed``): panoramas, or the photos of
    :func:`~panosamic.data.pinhole_prepare.prepare_pinhole_folder`.
    """
    kind = partial(kind, folds=folds, seed=seed)
    return run_folder_prepare(kind, raw, out, scale, overwrite=overwrite, progress=progress)
