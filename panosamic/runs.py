"""Training run folders: ``{experiments}/{dataset}/{YYYYmmdd_HHMMSS}_{experiment id}``, each with
``model_best.pth`` and (while running, or with ``--keep-last``) ``model_last.pth``."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

BEST_NAME = "model_best.pth"
LAST_NAME = "model_last.pth"
_RUN_TIME_FORMAT = "%Y%m%d_%H%M%S"
#: A run folder's checkpoints, best first.
RUN_CHECKPOINTS = (BEST_NAME, LAST_NAME)


def experiment_id(config_path: str | os.PathLike, fold: int, vit_model: str, modalities: Sequence[str]) -> str:
    """``{config stem}_F{fold}_V{last char of vit}_M{#modalities}`` (the reference's run id)."""
    return f"{Path(config_path).stem}_F{fold}_V{vit_model[-1]}_M{len(modalities)}"


def _dataset_root(experiments_path: str | os.PathLike, dataset: str) -> Path:
    p = Path(experiments_path)
    return p if p.name == dataset else p / dataset


def new_run_dir(experiments_path: str | os.PathLike, dataset: str, exp_id: str, now: datetime | None = None) -> Path:
    """Create ``{experiments_path}/{dataset}/{YYYYmmdd_HHMMSS}_{id}`` (a suffix if it already exists)."""
    root = _dataset_root(experiments_path, dataset)
    stamp = (now or datetime.now()).strftime(_RUN_TIME_FORMAT)
    path = root / f"{stamp}_{exp_id}"
    n = 1
    while path.exists():
        n += 1
        path = root / f"{stamp}_{exp_id}.{n}"
    path.mkdir(parents=True)
    return path


def list_runs(experiments_path: str | os.PathLike, dataset: str, exp_id: str) -> list[Path]:
    """Run directories of ``exp_id``, newest first."""
    root = _dataset_root(experiments_path, dataset)
    if not root.is_dir():
        return []
    pattern = re.compile(r"^\d{8}_\d{6}_" + re.escape(exp_id) + r"(\.\d+)?$")
    runs = [p for p in root.iterdir() if p.is_dir() and pattern.match(p.name)]
    return sorted(runs, key=lambda p: (p.name[:15], int(p.suffix[1:]) if p.suffix[1:].isdigit() else 1), reverse=True)


def find_run_dir(experiments_path: str | os.PathLike, dataset: str, exp_id: str, which: str) -> Path:
    """Newest run of ``exp_id`` that holds ``model_{which}.pth`` (FileNotFoundError if none)."""
    if which not in ("last", "best"):
        raise ValueError(f"checkpoint must be 'last' or 'best', got {which!r}")
    runs = list_runs(experiments_path, dataset, exp_id)
    name = f"model_{which}.pth"
    for run in runs:
        if (run / name).is_file():
            return run
    root = _dataset_root(experiments_path, dataset)
    if not runs:
        raise FileNotFoundError(f"no previous run '*_{exp_id}' under {root}")
    newest = runs[0]
    if not any((newest / f"model_{w}.pth").is_file() for w in ("last", "best")):
        hint = ("it holds no checkpoint (it stopped before its first checkpoint was written: killed, out of "
                "memory or disk full?); start a new run")
    elif which == "last":
        hint = "a finished run deletes model_last.pth (--keep-last keeps it): resume 'best' or start a new run"
    else:
        hint = "resume 'last' or start a new run"
    raise FileNotFoundError(f"no {name} in the run(s) of '{exp_id}' under {root} (newest: {newest.name}); {hint}")


def timestamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
