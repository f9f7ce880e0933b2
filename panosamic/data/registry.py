"""The dataset registry: the one place a dataset plugs in (its loader, how it is prepared, its classes).

Dataset *names* are listed in :data:`panosamic.specs.DATASET_NAMES` (so the command line's flags
need not import this package); this table must name the same datasets, in the same order (checked
at import). A dataset whose classes are fixed has a :class:`DatasetInfo`; one whose classes come
with the data (``folder``) has ``info=None`` and reads them from the prepared folder.

Everything here is torch-free: loaders and preparers are named as ``"module:attribute"`` and
imported on first use.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panosamic.data.classes import MATTERPORT3D, STANFORD2D3DS, STRUCTURED3D, TOF360, DatasetInfo
from panosamic.specs import DATASET_NAMES


@dataclass(frozen=True)
class DatasetEntry:
    """How the library reads, prepares and names one dataset.

    ``loader``: the :class:`~panosamic.data.base.PanoramaDataset` subclass (``"module:Class"``);
    ``raw_layout``: the :class:`~panosamic.data.base.RawLayout` ``panosamic prepare`` reads, or
    ``preparer``: a function ``(raw, out, scale, **options) -> PrepareReport`` for datasets prepared
    otherwise; ``info``: the fixed class table, or None when the classes come with the data.
    """

    name: str
    title: str
    loader: str
    raw_layout: str | None = None
    preparer: str | None = None
    info: DatasetInfo | None = None


_M = "panosamic.data."
REGISTRY: dict[str, DatasetEntry] = {
    e.name: e
    for e in (
        DatasetEntry("stanford2d3ds", "Stanford2D3DS", _M + "stanford2d3ds:Stanford2D3DSDataset",
                     _M + "stanford2d3ds:Stanford2D3DSRaw", info=STANFORD2D3DS),
        DatasetEntry("matterport3d", "Matterport3D", _M + "matterport3d:Matterport3DDataset",
                     _M + "matterport3d:Matterport3DRaw", info=MATTERPORT3D),
        DatasetEntry("structured3d", "Structured3D", _M + "structured3d:Structured3DDataset",
                     _M + "structured3d:Structured3DRaw", info=STRUCTURED3D),
        DatasetEntry("tof360", "ToF-360", _M + "tof360:ToF360Dataset", _M + "tof360:ToF360Raw", info=TOF360),
        DatasetEntry("folder", "your own data", _M + "folder:FolderDataset", preparer=_M + "folder:prepare_folder"),
    )
}  # fmt: skip
if tuple(REGISTRY) != DATASET_NAMES:  # one list of names (specs), one entry each
    raise ImportError(
        f"dataset registry {tuple(REGISTRY)} does not match panosamic.specs.DATASET_NAMES {DATASET_NAMES}"
    )


def load_object(path: str) -> Any:
    """The attribute a ``"module:attribute"`` string names."""
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_entry(name: str) -> DatasetEntry:
    """The registry entry of a dataset name (ValueError naming the known ones)."""
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, got {type(name).__name__}")
    key = name.strip().lower()
    if key not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; expected one of {DATASET_NAMES}")
    return REGISTRY[key]


def get_dataset_info(name: str, root: str | os.PathLike | None = None) -> DatasetInfo:
    """Class names and palette of a dataset (``stanford2d3ds``, ``matterport3d``, ``structured3d``,
    ``tof360``; ``folder`` needs ``root``, its prepared folder, whose ``classes.json`` names them)."""
    entry = get_entry(name)
    if entry.info is not None:
        return entry.info
    if root is None:
        raise ValueError(
            f"{entry.name} datasets carry their own classes: give the prepared folder (--dataset-path)"
        )
    return load_object(f"{_M}folder_layout:read_prepared_info")(Path(root))


def dataset_folds(name: str, root: str | os.PathLike | None = None) -> list[int]:
    """The folds of a dataset (those of the prepared folder for ``folder``)."""
    entry = get_entry(name)
    if entry.info is not None:
        return sorted(load_object(entry.loader).folds)
    if root is None:
        raise ValueError(
            f"{entry.name} datasets have their own folds: give the prepared folder (--dataset-path)"
        )
    return sorted(load_object(f"{_M}folder_layout:read_splits")(Path(root)))
