"""What a checkpoint was trained on, and the check that an evaluation split does not overlap it.

A training checkpoint records ``training_record``: the dataset, its prepared folder, the fold and
split, and the training sample names with their digest. Evaluation compares the split it is asked
to score with that record; a checkpoint without one (a Hub export, a published variant) is judged
by the dataset and fold its ``config.json`` names: for the reference datasets the fold's training
areas (Stanford2D3DS' folds share areas: fold 1 trains on the areas fold 2 tests on), for a folder
dataset the fold's training list in ``splits.json``.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

#: The flag that scores an overlapping split anyway.
ALLOW_FLAG = "--allow-train-overlap"
_SHOWN = 5


def names_digest(names: Iterable[str]) -> str:
    """sha256 of the sorted sample names, one per line."""
    return hashlib.sha256("\n".join(sorted(names)).encode("utf-8")).hexdigest()


def training_record(
    dataset: str, root: str | os.PathLike, fold: int, split: str, names: Sequence[str]
) -> dict[str, Any]:
    """The ``training_record`` a checkpoint stores."""
    return {
        "dataset": dataset,
        "dataset_path": str(Path(root).resolve()),
        "fold": fold,
        "split": split,
        "num_samples": len(names),
        "samples_digest": names_digest(names),
        "samples": sorted(names),
    }


class TrainOverlapError(ValueError):
    """An evaluation split shares panoramas with the checkpoint's training split."""


def _recorded(record: Mapping[str, Any] | None, config: Any) -> dict[str, Any] | None:
    if isinstance(record, Mapping) and record.get("dataset"):
        return dict(record)
    dataset = getattr(config, "dataset", None)
    if dataset:
        return {"dataset": dataset, "fold": getattr(config, "fold", None), "split": "train"}
    return None


def _areas_of(dataset: str, fold: int, split: str) -> tuple[str, ...] | None:
    from panosamic.data.registry import get_entry, load_object

    entry = get_entry(dataset)
    if entry.info is None:
        return None
    folds = load_object(entry.loader).folds
    if fold not in folds:
        return None
    return folds[fold][0] if split == "train" else folds[fold][1]


def check_train_overlap(
    record: Mapping[str, Any] | None,
    config: Any,
    dataset: str,
    root: str | os.PathLike,
    fold: int,
    split: str,
    names: Sequence[str],
    *,
    allow: bool = False,
) -> str | None:
    """Raise :class:`TrainOverlapError` when the split overlaps what the checkpoint was trained on
    (``allow``: return a one-line description of the overlap instead); None when there is none."""
    overlap = _overlap(_recorded(record, config), dataset, root, fold, split, names)
    if overlap is not None and not allow:
        raise TrainOverlapError(f"refusing to evaluate: {overlap}")
    return overlap


def _overlap(
    rec: dict[str, Any] | None, dataset: str, root: str | os.PathLike, fold: int, split: str, names: Sequence[str]
) -> str | None:
    if rec is None or rec["dataset"] != dataset:
        return None
    where = f"{dataset} fold {rec.get('fold')}"
    if rec.get("samples"):
        shared = sorted(set(rec["samples"]) & set(names))
        if not shared:
            return None
        if rec.get("dataset_path") and Path(rec["dataset_path"]) != Path(root).resolve():
            where += f" in {rec['dataset_path']}"
        return _message(where, len(shared), shared, "panorama", len(names), fold, split)
    if rec.get("fold") is None:
        return None
    trained = _areas_of(dataset, int(rec["fold"]), "train")
    if trained is not None:  # a reference dataset: the recorded fold's training areas decide
        scored = {n.split("/", 1)[0] for n in names}
        shared = sorted(scored & set(trained))
        return _message(where, len(shared), shared, "area", len(scored), fold, split) if shared else None
    from panosamic.data.folder_layout import read_splits

    try:
        listed = read_splits(Path(root)).get(int(rec["fold"]), {}).get("train", ())
    except (OSError, ValueError):
        return None
    shared = sorted(set(listed) & set(names))
    return _message(where, len(shared), shared, "panorama", len(names), fold, split) if shared else None


def _message(where: str, n: int, shared: list[str], noun: str, total: int, fold: int, split: str) -> str:
    shown = ", ".join(shared[:_SHOWN]) + (f", ... ({n} in all)" if n > _SHOWN else "")
    return (
        f"the checkpoint was trained on {where}, which holds {n} of the {total} {noun}s of fold {fold}'s {split} "
        f"split ({shown}); scores on them would be inflated. Evaluate the fold it was trained for, or pass "
        f"{ALLOW_FLAG} to score anyway"
    )


def read_training_record(checkpoint_info: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``training_record`` of the training ``.pth`` a model was loaded from (None for other sources).

    The file is memory-mapped, so its tensors are not read again."""
    info = checkpoint_info or {}
    if info.get("training_record") is not None:
        return dict(info["training_record"])
    source = info.get("source")
    if info.get("kind") != "training" or not source or not Path(str(source)).is_file():
        return None
    import pickle

    import torch

    try:
        obj = torch.load(str(source), map_location="cpu", mmap=True, weights_only=True)
    except (
        OSError,
        RuntimeError,
        ValueError,
        pickle.UnpicklingError,
    ):  # older or foreign: judged by its config
        return None
    record = obj.get("training_record") if isinstance(obj, Mapping) else None
    return dict(record) if isinstance(record, Mapping) else None
