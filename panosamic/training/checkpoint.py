"""Training checkpoints (spec §7 format plus what exact resume needs) and run directories.

A checkpoint is a ``torch.save`` dict loadable with ``weights_only=True``:
``epoch``, ``model`` (full semantic-only state dict, DDP prefix stripped), ``best_miou``,
``miou``, ``macc``, ``optimizer``, ``lr_scheduler`` (``None`` for Ranger21) — the reference's
keys — plus ``format_version``, ``global_step``, ``step_in_epoch``, ``epoch_complete``,
``loss_state``, ``rng``, ``config`` (reference-style dict), ``vit_model``, ``modalities``,
``num_classes``, ``class_names``, ``fold``, ``dataset``, ``batch_size``, ``world_size``,
``epochs``, ``seed``, ``metrics`` (per-class IoU/acc of the validation) and ``versions``.
It is written atomically (a temp file renamed over the target).
"""

from __future__ import annotations

import os
import random
import re
from datetime import datetime
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from panosamic.io import atomic_torch_save, safe_torch_load

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "capture_rng_state",
    "experiment_id",
    "find_run_dir",
    "load_checkpoint",
    "new_run_dir",
    "restore_rng_state",
    "save_checkpoint",
    "strip_ddp_prefix",
]

CHECKPOINT_FORMAT_VERSION = 1
BEST_NAME = "model_best.pth"
LAST_NAME = "model_last.pth"
_RUN_TIME_FORMAT = "%Y%m%d_%H%M%S"


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
    raise FileNotFoundError(
        f"no {name} in the run(s) of '{exp_id}' under {root} (newest: {runs[0].name}); "
        + ("a finished run deletes model_last.pth: resume 'best' or start a new run" if which == "last" else "")
    )


def strip_ddp_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}


def capture_rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), numpy and python RNG states, as weights_only-loadable values."""
    np_state = np.random.get_state()
    py_state = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": {"version": py_state[0], "state": list(py_state[1]), "gauss": py_state[2]},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    if not state:
        return
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike, checkpoint: Mapping[str, Any]) -> Path:
    """``torch.save`` to a temp file beside ``path``, then rename (never a half-written file)."""
    atomic_torch_save(dict(checkpoint), path)  # a full disk is reported as ENOSPC, not "unexpected pos"
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a training checkpoint with ``weights_only=True`` (clear errors for missing/foreign files)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    ckpt = safe_torch_load(path, map_location)
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise ValueError(f"{path} is not a PanoSAMic training checkpoint (a dict with a 'model' state dict)")
    return ckpt


def timestamp() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")
