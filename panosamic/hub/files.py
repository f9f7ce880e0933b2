"""Reading and writing the files of a Hub folder (weights, config.json, model card).

A Hub folder holds the trainable tensors (``feature_fuser.*``, ``semantic_decoder.*``) and, for
the test architecture only (no Meta checkpoint exists for it), its ``image_encoder.*`` too, so
that its exports are self-contained. Weights are read from safetensors (or, for local files only,
from ``.pth`` with ``weights_only=True``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from panosamic.config import ModelConfig
from panosamic.hub.metadata import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME
from panosamic.io import atomic_path, atomic_write_text, read_safetensors, safe_torch_load
from panosamic.specs import FROZEN_PREFIXES, SAM_VITS, TRAINABLE_PREFIXES

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def saved_prefixes(config: ModelConfig) -> tuple[str, ...]:
    """The state-dict prefixes a Hub folder of this model holds."""
    return TRAINABLE_PREFIXES if config.vit in SAM_VITS else (*TRAINABLE_PREFIXES, "image_encoder.")


def check_no_frozen(keys: Any, where: str, config: ModelConfig | None = None) -> None:
    """Refuse a set of keys that would put Meta's frozen SAM tensors into a Hub folder."""
    allowed = saved_prefixes(config) if config is not None else TRAINABLE_PREFIXES
    frozen = sorted(k for k in keys if k.startswith(FROZEN_PREFIXES) and not k.startswith(allowed))
    if frozen:
        raise ValueError(
            f"{where} would contain {len(frozen)} frozen SAM tensor(s) (e.g. {frozen[:3]}); Hub folders hold "
            "only feature_fuser.* and semantic_decoder.*"
        )


def write_hub_folder(
    out_dir: str | os.PathLike,
    tensors: Mapping[str, torch.Tensor],
    config: Any,
    *,
    card: Any = None,
    dtype: str | torch.dtype | None = None,
) -> Path:
    """Write ``model.safetensors``, ``config.json`` (``config.to_json``: a ModelConfig, a
    StudentConfig, ...) and (if given) ``README.md``, each atomically. A PanoSAMic folder holds
    only the tensors :func:`saved_prefixes` names (never Meta's frozen SAM tensors)."""
    from safetensors.torch import save_file

    if isinstance(config, ModelConfig):
        check_no_frozen(tensors, f"the folder {out_dir}", config)
        unknown = sorted(k for k in tensors if not k.startswith(saved_prefixes(config)))
        if unknown:
            raise ValueError(f"not a tensor of a PanoSAMic Hub folder: {unknown[:5]}")
    if not tensors:
        raise ValueError("no tensors to write")
    target = parse_dtype(dtype)
    out = {}
    for k, v in tensors.items():
        v = v.detach().to("cpu")
        if target is not None and v.is_floating_point():
            v = v.to(target)
        out[k] = v.contiguous().clone()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / WEIGHTS_NAME) as tmp:
        save_file(out, str(tmp), metadata={"format": "pt", "library": "panosamic"})
    config.to_json(out_dir / CONFIG_NAME)
    if card is not None:
        atomic_write_text(out_dir / CARD_NAME, str(card))
    return out_dir


def read_weights(path: str | os.PathLike, *, local: bool = True) -> dict[str, torch.Tensor]:
    """Read a weights file on CPU: safetensors, or (local files only) a ``weights_only`` ``.pth``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        return read_safetensors(path)
    if not local:
        raise ValueError(f"refusing {path}: weights from the Hub are read only as .safetensors")
    if path.suffix not in (".pth", ".pt", ".bin"):
        raise ValueError(f"unsupported weights file {path}: expected .safetensors (or a local .pth/.pt)")
    obj = safe_torch_load(path)  # weights_only=True, clear errors for pickled code / truncation
    if not isinstance(obj, Mapping) or not all(isinstance(k, str) and torch.is_tensor(v) for k, v in obj.items()):
        raise ValueError(f"{path}: not a state dict (name -> tensor)")
    return dict(obj)
