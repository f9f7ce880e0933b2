"""What a scaled prediction run reads: panoramas from files and folders, a text/CSV list of paths, or
a prepared dataset split, as a sorted list of :class:`Item` s, and a ``Dataset`` that decodes them.

List files: ``.txt`` (one panorama path per line; blank lines and ``#`` comments ignored) or
``.csv`` with a header naming an ``image`` (or ``path`` / ``rgb``) column and optionally ``depth``
and ``normals`` columns. Relative paths are relative to the list file's folder.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from panosamic.inference.inputs import _unique_names, describe_ignored, image_array, match_aux, scan_inputs
from panosamic.inference.pipeline import PANORAMA_ERRORS, Prepared, prepare, resize_inputs

_IMAGE_COLUMNS = ("image", "path", "rgb")
_AUX_KINDS = ("depth", "normals")


@dataclass(frozen=True)
class Item:
    """One panorama: ``key`` identifies it in the resume log, ``name`` is its output stem (relative to
    the output folder, may contain ``/``), ``files`` are fingerprinted to detect changes."""

    key: str
    name: str
    files: dict[str, Path] = field(default_factory=dict)
    index: int = -1  # sample index, for dataset items


def _path_items(images: Sequence[Path], depths: Sequence[Path | None], normals: Sequence[Path | None]) -> list[Item]:
    rows = sorted(zip(images, depths, normals), key=lambda r: str(r[0].resolve()))
    names = _unique_names([r[0] for r in rows])
    items = []
    for (image, depth, normal), name in zip(rows, names):
        files = {"image": image, "depth": depth, "normals": normal}
        items.append(Item(str(image.resolve()), name, {k: v for k, v in files.items() if v is not None}))
    return items


def items_from_paths(
    inputs: Sequence[str | os.PathLike], depth: str | os.PathLike | None = None, normals: str | os.PathLike | None = None,
    *, recursive: bool = False, exclude: str | os.PathLike | None = None,
) -> list[Item]:
    """Files and folders (their jpg/png/webp files), with depth / normals matched by name, sorted; what
    the folders hold besides is named in one line on stderr (see :func:`scan_inputs`)."""
    images, ignored = scan_inputs(inputs, recursive=recursive, exclude=exclude)
    line = describe_ignored(ignored)
    if line and int(os.environ.get("RANK", "0")) == 0:
        print(f"panosamic predict: {line}", file=sys.stderr, flush=True)
    return _path_items(images, match_aux(images, depth, "depth"), match_aux(images, normals, "normals"))


def _resolve(base: Path, raw: str) -> Path:
    p = Path(raw.strip()).expanduser()
    return p if p.is_absolute() else base / p


def read_list_text(path: Path) -> str:
    """A list file's text; a binary (not UTF-8, or NUL bytes) file is refused in one line naming it."""
    data = path.read_bytes()
    try:
        if b"\0" in data:
            raise UnicodeDecodeError("utf-8", data, data.index(b"\0"), data.index(b"\0") + 1, "NUL byte")
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(
            f"--manifest {path} is not a text list of panoramas (binary content at byte {e.start}); expected a .txt "
            "with one path per line or a .csv with an image column"
        ) from None


def items_from_list(path: str | os.PathLike) -> list[Item]:
    """The panoramas named in a ``.txt`` or ``.csv`` list file (see the module docstring), sorted."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"manifest file not found: {p}")
    base = p.parent
    rows: list[tuple[Path, Path | None, Path | None]] = []
    if p.suffix.lower() == ".csv":
        read_list_text(p)  # refuses binary files in one line
        with open(p, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            columns = [c.strip().lower() for c in reader.fieldnames or []]
            image_col = next((c for c in _IMAGE_COLUMNS if c in columns), None)
            if image_col is None:
                raise ValueError(f"{p}: the CSV header {columns} has none of the columns {list(_IMAGE_COLUMNS)}")
            for row in reader:
                row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
                if row.get(image_col):
                    aux = [_resolve(base, row[k]) if row.get(k) else None for k in _AUX_KINDS]
                    rows.append((_resolve(base, row[image_col]), aux[0], aux[1]))
    else:
        for line in read_list_text(p).splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                rows.append((_resolve(base, line), None, None))
    if not rows:
        raise ValueError(f"manifest file {p} lists no panoramas")
    seen: dict[str, tuple[Path, Path | None, Path | None]] = {}
    for r in rows:
        seen.setdefault(str(r[0].resolve()), r)
    images, depths, normals = zip(*seen.values())
    return _path_items(list(images), list(depths), list(normals))


def items_from_dataset(
    name: str, root: str | os.PathLike, split: str, fold: int, modalities: Sequence[str]
) -> tuple[list[Item], Any]:
    """A prepared dataset's split as items named ``area/sample``, and the dataset that reads them."""
    from panosamic.data import build_dataset
    from panosamic.data.base import DEPTH_FILE, DEPTH_MASK_FILE, NORMALS_FILE, RGB_FILE

    ds = build_dataset(name, root, fold=fold, split=split, modalities=tuple(modalities), augment=False)
    per_kind = {"image": (RGB_FILE,), "depth": (DEPTH_FILE, DEPTH_MASK_FILE), "normals": (NORMALS_FILE,)}
    items = []
    for i, (sample_dir, sample_name) in enumerate(zip(ds.sample_dirs, ds.sample_names)):
        files = {f: sample_dir / f for m in ds.modalities for f in per_kind[m]}
        items.append(Item(str(sample_dir.resolve()), sample_name, files, index=i))
    return items, ds


def shard(items: Sequence[Item], rank: int, world_size: int) -> list[Item]:
    """Rank ``rank``'s share: items ``rank, rank + world_size, ...`` (each item on exactly one rank)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
    return list(items[rank::world_size])


@dataclass(frozen=True)
class InputSpec:
    """What decoding needs of a model: its modalities and native (h, w) size."""

    modalities: tuple[str, ...]
    native_size: tuple[int, int]


class PanoramaSource(Dataset):
    """Decodes item ``i`` (in a DataLoader worker) with :func:`panosamic.inference.pipeline.prepare`,
    resized to the model's native size.

    ``ds[i]`` is a dict: ``pos``, ``prepared`` (a :class:`~panosamic.inference.pipeline.Prepared`),
    ``inputs`` (modality -> float32 (3, h, w)), ``size`` (the input's (H, W)), ``rgb`` (uint8
    (H, W, 3) when ``keep_rgb``), ``error`` (a message, or None).
    """

    def __init__(
        self,
        items: Sequence[Item],
        modalities: Sequence[str],
        native_size: tuple[int, int],
        *,
        depth_scale: float | None = None,
        depth_threshold: float | None = None,
        keep_rgb: bool = False,
        dataset: Any = None,
        max_pixels: int | None = None,
    ) -> None:
        self.items = list(items)
        self.spec = InputSpec(tuple(modalities), (int(native_size[0]), int(native_size[1])))
        self.depth_scale = depth_scale
        self.depth_threshold = depth_threshold
        self.keep_rgb = keep_rgb
        self.dataset = dataset
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    def _prepare(self, item: Item) -> Prepared:
        kw: dict[str, Any] = {"name": item.name, "max_pixels": self.max_pixels, "to_native": True,
                              "keep_rgb": self.keep_rgb}  # fmt: skip
        if self.dataset is not None:  # already decoded (depth as pseudo-disparity)
            x = self.dataset.load_inputs(item.index)
            return prepare(self.spec, x["image"], x.get("depth"), x.get("normals"), **kw)
        for kind in self.spec.modalities:
            if kind != "image" and kind not in item.files:
                image_array(item.files["image"], max_pixels=self.max_pixels)  # an unreadable image is named first
                raise FileNotFoundError(
                    f"no {kind} file for {item.files['image']} (the model uses {list(self.spec.modalities)})"
                )
        aux = {k: item.files.get(k) if k in self.spec.modalities else None for k in ("depth", "normals")}
        return prepare(self.spec, item.files["image"], aux["depth"], aux["normals"], depth_scale=self.depth_scale,
                       depth_threshold=self.depth_threshold, **kw)  # fmt: skip

    def __getitem__(self, pos: int) -> dict[str, Any]:
        item = self.items[pos]
        sample: dict[str, Any] = {"pos": pos, "prepared": None, "inputs": None, "size": None, "rgb": None,
                                  "error": None}  # fmt: skip
        try:
            p = self._prepare(item)
        except PANORAMA_ERRORS as e:
            from panosamic.errors import describe_error

            sample["error"] = describe_error(e, context=f"reading {item.key}" if isinstance(e, MemoryError) else "")
            return sample
        image = p.inputs["image"]
        sample.update(prepared=p, inputs=p.inputs, rgb=p.rgb,
                      size=p.size or (int(image.shape[-2]), int(image.shape[-1])))  # fmt: skip
        return sample


def collate_samples(samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Batches stay lists of samples (sizes may differ; failed samples carry their error)."""
    return samples


__all__ = [
    "Item",
    "PanoramaSource",
    "collate_samples",
    "items_from_dataset",
    "items_from_list",
    "items_from_paths",
    "resize_inputs",
    "shard",
]
