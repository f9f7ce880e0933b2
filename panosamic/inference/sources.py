"""What a scaled prediction run reads: panoramas from files and folders, a text/CSV list of paths, or
a prepared dataset split, as a sorted list of :class:`Item` s, and a ``Dataset`` that decodes them.

List files: ``.txt`` (one panorama path per line; blank lines and ``#`` comments ignored) or
``.csv`` with a header naming an ``image`` (or ``path`` / ``rgb``) column and optionally ``depth``
and ``normals`` columns. Relative paths are relative to the list file's folder.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from panosamic.inference.inputs import (
    _unique_names,
    collect_inputs,
    load_depth,
    load_image,
    load_normals,
    match_aux,
)
from panosamic.modeling.panosamic import _NEAREST_MODALITIES as NEAREST_MODALITIES

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
    inputs: Sequence[str | os.PathLike], depth: str | os.PathLike | None = None, normals: str | os.PathLike | None = None
) -> list[Item]:
    """Files and folders (their jpg/png/webp files), with depth / normals matched by name, sorted."""
    images = collect_inputs(inputs)
    return _path_items(images, match_aux(images, depth, "depth"), match_aux(images, normals, "normals"))


def _resolve(base: Path, raw: str) -> Path:
    p = Path(raw.strip()).expanduser()
    return p if p.is_absolute() else base / p


def items_from_list(path: str | os.PathLike) -> list[Item]:
    """The panoramas named in a ``.txt`` or ``.csv`` list file (see the module docstring), sorted."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"manifest file not found: {p}")
    base = p.parent
    rows: list[tuple[Path, Path | None, Path | None]] = []
    if p.suffix.lower() == ".csv":
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
        for line in p.read_text(encoding="utf-8").splitlines():
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


def resize_inputs(inputs: dict[str, torch.Tensor], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    """Resize (3, H, W) inputs to ``size`` exactly as the model does (so it skips its own resize)."""
    h, w = size
    out = {}
    for m, x in inputs.items():
        if tuple(x.shape[-2:]) != (h, w):
            mode = "nearest" if m in NEAREST_MODALITIES else "bilinear"
            kw = {} if mode == "nearest" else {"align_corners": False, "antialias": x.shape[-1] > w}
            x = F.interpolate(x[None], size=(h, w), mode=mode, **kw)[0]
        out[m] = x.contiguous()
    return out


class PanoramaSource(Dataset):
    """Decodes item ``i`` (in a DataLoader worker) into the model's inputs at its native size.

    ``ds[i]`` is a dict: ``pos``, ``inputs`` (modality -> float32 (3, h, w)), ``size`` (the
    input's (H, W)), ``rgb`` (uint8 (H, W, 3) when ``keep_rgb``), ``error`` (a message, or None).
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
    ) -> None:
        self.items = list(items)
        self.modalities = tuple(modalities)
        self.native_size = tuple(native_size)
        self.depth_scale = depth_scale
        self.depth_threshold = depth_threshold
        self.keep_rgb = keep_rgb
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.items)

    def _read(self, item: Item) -> dict[str, torch.Tensor]:
        if self.dataset is not None:
            return self.dataset.load_inputs(item.index)
        inputs = {"image": load_image(item.files["image"])}
        for kind in self.modalities:
            if kind == "image":
                continue
            if kind not in item.files:
                raise FileNotFoundError(f"no {kind} file for {item.files['image']} (the model uses {list(self.modalities)})")
            if kind == "depth":
                t = load_depth(item.files[kind], depth_scale=self.depth_scale, depth_threshold=self.depth_threshold)
            else:
                t = load_normals(item.files[kind])
            if t.shape[-2:] != inputs["image"].shape[-2:]:
                raise ValueError(f"{kind} {item.files[kind]} is {t.shape[-1]}x{t.shape[-2]} but the image is "
                                 f"{inputs['image'].shape[-1]}x{inputs['image'].shape[-2]} (WxH); expected the same size")
            inputs[kind] = t
        return inputs

    def __getitem__(self, pos: int) -> dict[str, Any]:
        item = self.items[pos]
        sample: dict[str, Any] = {"pos": pos, "inputs": None, "size": None, "rgb": None, "error": None}
        try:
            inputs = {m: t.float() for m, t in self._read(item).items() if m in self.modalities}
            image = inputs["image"]
            sample["size"] = (int(image.shape[1]), int(image.shape[2]))
            if self.keep_rgb:
                sample["rgb"] = image.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
            sample["inputs"] = resize_inputs(inputs, self.native_size)
        except (ValueError, TypeError, OSError, RuntimeError) as e:
            sample["error"] = str(e) or type(e).__name__
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
