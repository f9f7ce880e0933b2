"""Cheap checks of loaded weights: NaN/Inf values are refused with the tensor's name."""

from __future__ import annotations

from collections.abc import Mapping

import torch

__all__ = ["check_finite"]

#: Elements checked at a time (bounds the temporary boolean mask to 16 MB).
_CHUNK = 1 << 24


def _all_finite(t: torch.Tensor) -> bool:
    flat = t.detach().reshape(-1)
    return all(bool(torch.isfinite(part).all()) for part in flat.split(_CHUNK))


def _count_nonfinite(t: torch.Tensor) -> int:
    flat = t.detach().reshape(-1)
    return sum(int((~torch.isfinite(part)).sum()) for part in flat.split(_CHUNK))


def check_finite(tensors: Mapping[str, torch.Tensor], source: str) -> None:
    """Raise ``ValueError`` naming the first tensor of ``tensors`` with a NaN or Inf value.

    One pass over the floating-point (and complex) tensors; integer, boolean and meta tensors and
    non-tensor entries are skipped. ``source`` names where the weights came from (file, repo id).
    """
    for name, t in tensors.items():
        if not isinstance(t, torch.Tensor) or t.is_meta or not (t.is_floating_point() or t.is_complex()):
            continue
        if not _all_finite(t):
            bad = _count_nonfinite(t)
            raise ValueError(
                f"refusing the weights of {source}: tensor {name!r} has {bad} non-finite value"
                f"{'s' if bad != 1 else ''} (NaN/Inf) out of {t.numel()} (a diverged training run or a "
                "corrupt file?)"
            )
