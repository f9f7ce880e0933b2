"""Turn a training checkpoint into a Hub folder: trainable tensors, config.json, model card.

    panosamic export experiments/stanford2d3ds/RUN/model_best.pth OUT [--dtype bfloat16]

The checkpoint (``torch.load(weights_only=True)``, or the run folder holding it) is a dict whose
``model`` entry is the full state dict. Its ``model_config`` (or, for older runs, ``config``,
``vit_model``, ``modalities``, ``num_classes``, ...) is config.json; ``miou`` / ``macc`` go to the
card; ``--dataset``, ``--fold``, ``--depth-threshold`` override what it records. The test
architecture's export keeps its encoder, so it is self-contained. The trainable tensors are checked against the
architecture (built on the meta device: no memory, no SAM weights needed) before anything is
written; frozen SAM tensors are dropped and the result is refused if any would remain.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from panosamic.config import ModelConfig
from panosamic.hub.card import generate_model_card
from panosamic.hub.files import saved_prefixes, write_hub_folder
from panosamic.hub.metadata import EvaluationResult
from panosamic.modeling.state_dict import check_state_dict
from panosamic.specs import FROZEN_PREFIXES, TRAINABLE_PREFIXES
from panosamic.version import __version__


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_checkpoint` wrote."""

    out_dir: Path
    config: ModelConfig
    num_tensors: int
    num_params: int
    dropped_frozen: int


def export_checkpoint(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    dataset: str | None = None,
    fold: int | None = None,
    depth_threshold: float | None = None,
    dtype: str | None = None,
    metrics: Any = None,
    license: str | None = None,
    repo_id: str | None = None,
    subfolder: str | None = None,
    config: ModelConfig | None = None,
) -> ExportResult:
    """Write the Hub folder of a training checkpoint (a ``.pth`` or a run folder); see the module docstring.
    ``config``: the architecture, for checkpoints that do not record it (the reference's own)."""
    from panosamic.model import PanoSAMic
    from panosamic.model.checkpoints import (
        expand_run_pattern,
        find_run_checkpoint,
        read_training_checkpoint,
        settle_config,
    )

    path = Path(checkpoint).expanduser()
    if not path.exists() and any(c in str(checkpoint) for c in "*?["):
        path = expand_run_pattern(str(checkpoint)) or path
    path = find_run_checkpoint(path) if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {path}")
    ck = read_training_checkpoint(path)  # a distillation checkpoint is refused, named
    use = {k: v for k, v in (("dataset", dataset), ("fold", fold), ("depth_threshold", depth_threshold)) if v is not None}
    config = settle_config(ck.config, config, ck.source, ck.recorded).replace(**use)
    other = sorted(k for k in ck.tensors if not k.startswith(FROZEN_PREFIXES + TRAINABLE_PREFIXES))
    if other:
        raise ValueError(f"{path}: {len(other)} key(s) that are neither SAM nor PanoSAMic: {other[:5]}")
    prefixes = saved_prefixes(config)
    tensors = {k: v for k, v in ck.tensors.items() if k.startswith(prefixes)}
    dropped = sum(1 for k in ck.tensors if k not in tensors)
    with torch.device("meta"):
        skeleton = PanoSAMic(config)
    tensors = check_state_dict(skeleton, tensors, strict=True, only_prefixes=prefixes, source=str(path))
    if metrics is None and ck.meta.get("miou") is not None:
        macc = ck.meta.get("macc")
        metrics = {"miou": float(ck.meta["miou"]), "macc": None if macc is None else float(macc)}
    n_params = sum(int(v.numel()) for v in tensors.values())
    card = generate_model_card(
        config,
        metrics=EvaluationResult.coerce_all(metrics, config),
        training=ck.meta.get("training"),
        repo_id=repo_id,
        subfolder=subfolder or config.variant_name,
        license=license,
        num_tensors=len(tensors),
        num_params=n_params,
        dtype=dtype or str(next(iter(tensors.values())).dtype).removeprefix("torch."),
        library_version=__version__,
    )
    write_hub_folder(out_dir, tensors, config, card=card, dtype=dtype)
    return ExportResult(Path(out_dir), config, len(tensors), n_params, dropped)
