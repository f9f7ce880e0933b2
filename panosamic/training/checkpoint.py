"""Training checkpoints (spec §7 format plus what exact resume needs); run folders: :mod:`panosamic.runs`.

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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from panosamic.io import atomic_torch_save, safe_torch_load
from panosamic.runs import BEST_NAME

__all__ = [
    "CHECKPOINT_FORMAT_VERSION",
    "capture_rng_state",
    "load_checkpoint",
    "restore_rng_state",
    "save_checkpoint",
    "strip_ddp_prefix",
]

CHECKPOINT_FORMAT_VERSION = 1
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
