"""The ``folder`` dataset's files: ``classes.json``, the prepared ``splits.json`` / ``dataset.json`` (torch-free).

Raw folder (what a user makes)::

    DATA/classes.json     {"classes": [{"name": "floor", "color": [128, 64, 0]}, ...], "ignore_index": 255}
                          (optional "depth_scale": metres per stored depth unit, default 0.001)
    DATA/images/NAME.{jpg,png,webp}     equirectangular, 2:1, any size
    DATA/labels/NAME.png                class index per pixel (8- or 16-bit), ignore_index where unlabelled
    DATA/depth/NAME.png                 optional: 16-bit metric depth (0 = missing)
    DATA/normals/NAME.png               optional: colour-coded normals (RGB)
    DATA/splits/{train,val,test}.txt    optional lists of NAMEs

Prepared folder (what ``panosamic prepare folder`` writes and :class:`~panosamic.data.folder.FolderDataset` reads)::

    P/classes.json        the classes (normalised copy)
    P/splits.json         {"source": "lists" | "folds", "seed": N | null,
                           "folds": {"1": {"train": [...], "test": [...], "val": [...]}, ...}}
    P/dataset.json        {"format": "panosamic-folder", "modalities": [...], "depth_scale": s, "scale": x}
    P/samples/NAME/rgb.webp, labels.png (uint16 class index, 65535 = ignored), depth.png, depth_mask.webp, normals.webp
    P/cache_splits_depth_statistics.json   fold -> depth thresholds of its training split
"""

from __future__ import annotations

import functools
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

from panosamic.data.classes import DatasetInfo

NAME = "folder"
CLASSES_FILE = "classes.json"
SPLITS_FILE = "splits.json"
DATASET_FILE = "dataset.json"
SAMPLES_DIR = "samples"
LABEL_FILE = "labels.png"
FORMAT = "panosamic-folder"
#: Stored label of ignored pixels in a prepared ``labels.png``.
STORED_IGNORE = 65535
DEFAULT_IGNORE_INDEX = 255
#: Metres per stored unit of ``depth/NAME.png`` when classes.json names none (millimetres).
DEFAULT_DEPTH_SCALE = 0.001
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
SPLIT_NAMES: tuple[str, ...] = ("train", "val", "test")


def _fail(path: Path, what: str) -> ValueError:
    return ValueError(f"{path}: {what}")


def parse_classes(content: Any, path: Path) -> tuple[DatasetInfo, int, float]:
    """(class table, ignore_index, depth_scale) of a ``classes.json``; a bad field is one line naming it."""
    if (
        not isinstance(content, dict)
        or not isinstance(content.get("classes"), list)
        or not content["classes"]
    ):
        raise _fail(
            path, 'expected {"classes": [{"name": ..., "color": [r, g, b]}, ...], "ignore_index": 255}'
        )
    names: list[str] = []
    colors: list[tuple[int, int, int]] = []
    for i, c in enumerate(content["classes"]):
        name = c.get("name") if isinstance(c, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise _fail(path, f'classes[{i}] has no name; expected {{"name": "floor", "color": [r, g, b]}}')
        if name in names:
            raise _fail(path, f"classes[{i}]: duplicate class name {name!r}; expected each name once")
        color = c.get("color")
        ok = (
            isinstance(color, list)
            and len(color) == 3
            and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in color)
        )
        if not ok:
            raise _fail(
                path, f"classes[{i}] ({name}): color {color!r}; expected [r, g, b] with integers 0..255"
            )
        names.append(name)
        colors.append((color[0], color[1], color[2]))
    ignore = content.get("ignore_index", DEFAULT_IGNORE_INDEX)
    if isinstance(ignore, bool) or not isinstance(ignore, int) or not len(names) <= ignore <= STORED_IGNORE:
        raise _fail(
            path,
            f"ignore_index {ignore!r}; expected an integer in {len(names)}..{STORED_IGNORE} "
            f"(not a class index 0..{len(names) - 1})",
        )
    scale = content.get("depth_scale", DEFAULT_DEPTH_SCALE)
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < math.inf:
        raise _fail(
            path, f"depth_scale {scale!r}; expected metres per stored depth unit (e.g. 0.001 for millimetres)"
        )
    if len(set(colors)) != len(colors):
        dup = next(c for c in colors if colors.count(c) > 1)
        raise _fail(path, f"color {list(dup)} is used by two classes; expected one colour per class")
    return DatasetInfo(NAME, tuple(names), tuple(colors)), int(ignore), float(scale)


def read_json_file(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"not valid JSON ({e})") from None


def classes_json(info: DatasetInfo, ignore_index: int, depth_scale: float) -> dict[str, Any]:
    """The ``classes.json`` content of a class table."""
    return {
        "classes": [
            {"name": n, "color": list(map(int, c))} for n, c in zip(info.class_names, info.palette_rows)
        ],
        "ignore_index": ignore_index,
        "depth_scale": depth_scale,
    }


def _missing(root: Path, name: str) -> FileNotFoundError:
    return FileNotFoundError(
        f"{root / name} is missing: {root} is not a prepared folder dataset; make it with "
        f"`panosamic prepare folder --raw DATA --out {root}`"
    )


@functools.lru_cache(maxsize=16)
def _prepared_info(path: str, mtime_ns: int) -> DatasetInfo:
    p = Path(path)
    return parse_classes(read_json_file(p), p)[0]


def read_prepared_info(root: Path) -> DatasetInfo:
    """The class table of a prepared folder dataset."""
    path = Path(root) / CLASSES_FILE
    if not path.is_file():
        raise _missing(Path(root), CLASSES_FILE)
    return _prepared_info(str(path.resolve()), path.stat().st_mtime_ns)


def read_splits(root: Path) -> dict[int, dict[str, tuple[str, ...]]]:
    """fold -> split name -> sample names of a prepared folder dataset."""
    path = Path(root) / SPLITS_FILE
    if not path.is_file():
        raise _missing(Path(root), SPLITS_FILE)
    content = read_json_file(path)
    folds = content.get("folds") if isinstance(content, dict) else None
    if not isinstance(folds, dict) or not folds:
        raise _fail(
            path,
            'expected {"folds": {"1": {"train": [...], "test": [...]}, ...}}; re-run `panosamic prepare folder`',
        )
    out: dict[int, dict[str, tuple[str, ...]]] = {}
    for key, splits in folds.items():
        if not str(key).isdigit() or not isinstance(splits, dict) or not {"train", "test"} <= set(splits):
            raise _fail(path, f"fold {key!r} must map 'train' and 'test' to lists of sample names")
        out[int(key)] = {s: tuple(str(n) for n in names) for s, names in splits.items()}
    return out


def read_dataset_record(root: Path) -> dict[str, Any]:
    """``dataset.json``: the modalities present, depth scale and preparation scale."""
    path = Path(root) / DATASET_FILE
    if not path.is_file():
        raise _missing(Path(root), DATASET_FILE)
    content = read_json_file(path)
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise _fail(path, f'expected {{"format": "{FORMAT}", ...}}; re-run `panosamic prepare folder`')
    return content


def depth_units(depth_scale: float) -> tuple[int, int, int, float]:
    """(numerator, denominator, histogram bins, histogram max in metres) for a depth scale:
    metres = raw * numerator / denominator; 10 bins per metre up to the deepest 16-bit value."""
    f = Fraction(str(depth_scale)).limit_denominator(1_000_000)
    if f <= 0:
        raise ValueError(f"depth_scale {depth_scale} is too small")
    hist_max = float(max(1, math.ceil(65535 * f)))
    return f.numerator, f.denominator, int(min(10 * hist_max, 200_000)), hist_max
