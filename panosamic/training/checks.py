"""Flag checks shared by the training jobs' ``check(args)`` (train, adapt, distill, later ones).

Each refuses one flag with one line naming the flag, its value and what is expected, before any
model is loaded. Nothing here imports torch (``timm`` is imported only to check a backbone name).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

__all__ = ["check_backbone", "check_backbone_weights_cached", "check_number", "check_out_folder", "check_size"]


def check_number(flag: str, value: Any, *, minimum: float | None = None, above: float | None = None,
                 maximum: float | None = None, below: float | None = None, integer: bool = False,
                 optional: bool = True) -> None:
    """``value`` finite (an integer with ``integer``) and within the bounds, else one line naming ``flag``;
    ``None`` passes where ``optional`` (a flag that was not given)."""
    if value is None and optional:
        return
    bounds = [f">= {minimum:g}" if minimum is not None else "", f"> {above:g}" if above is not None else "",
              f"<= {maximum:g}" if maximum is not None else "", f"< {below:g}" if below is not None else ""]
    expected = " ".join([("an integer" if integer else "a finite number"), " and ".join(b for b in bounds if b)]).strip()
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and (not integer or isinstance(value, int))
    ok = ok and math.isfinite(value)
    ok = ok and (minimum is None or value >= minimum) and (above is None or value > above)
    ok = ok and (maximum is None or value <= maximum) and (below is None or value < below)
    if not ok:
        raise ValueError(f"{flag} {value}: expected {expected}")


def check_out_folder(flag: str, path: str | os.PathLike) -> None:
    """An output folder: refused when the path (or a parent) is an existing file."""
    p = Path(path)
    for q in (p, *p.parents):
        if q.exists() and not q.is_dir():
            where = "is" if q == p else f"is under {q}, which is"
            raise ValueError(f"{flag} {p} {where} a file: expected a folder (created when missing)")
        if q.exists():
            return


def check_size(flag: str, size: tuple[int, int] | None, multiple: int = 1) -> None:
    """``HEIGHTxWIDTH``: positive, 2:1, the width a multiple of ``multiple``."""
    if size is None:
        return
    h, w = size
    if h < 1 or w != 2 * h or w % multiple:
        raise ValueError(f"{flag} {h}x{w}: expected HEIGHTxWIDTH with WIDTH = 2 x HEIGHT > 0, the width a multiple "
                         f"of {multiple} (e.g. 256x512)")


def check_backbone(flag: str, name: str) -> None:
    """A timm model name (checked against timm's registry; nothing is built)."""
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:3] if name else []
        hint = f" (close: {', '.join(close)})" if close else " (timm.list_models() lists them)"
        raise ValueError(f"{flag} {name!r}: not a timm model{hint}")


def check_backbone_weights_cached(flag: str, name: str, local_files_only: bool = False) -> None:
    """Offline (``HF_HUB_OFFLINE`` or ``local_files_only``): the backbone's pretrained weights are cached."""
    from huggingface_hub import constants

    if not (local_files_only or constants.HF_HUB_OFFLINE):
        return
    import timm
    from huggingface_hub import try_to_load_from_cache

    cfg = timm.models.get_pretrained_cfg(name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        return  # weights from a plain URL: timm's own cache, reported by timm
    if not any(isinstance(try_to_load_from_cache(repo, f), str)
               for f in ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin")):
        raise ValueError(f"{flag}: the ImageNet weights of backbone {name!r} (Hugging Face repo {repo}) are not in "
                         "the local Hugging Face cache and the Hub is offline: download them once online, or leave "
                         f"out {flag}")
