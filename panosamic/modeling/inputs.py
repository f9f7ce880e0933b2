"""The input format every panorama network of this library takes: a dict modality -> float (3, H, W)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def check_sample(index: int, sample: Mapping[str, torch.Tensor], modalities: Sequence[str]) -> tuple[int, int]:
    """(H, W) of one input sample, after checking it holds float (3, H, W) 2:1 tensors on the 0-255
    scale for exactly ``modalities`` (one error naming the sample, the modality and what was wrong)."""
    if not isinstance(sample, Mapping):
        raise TypeError(f"sample {index}: expected a dict of modality -> tensor, got {type(sample).__name__}")
    missing = [m for m in modalities if m not in sample]
    if missing:
        raise ValueError(
            f"sample {index}: missing modality {missing}; the model was built for {list(modalities)}"
        )
    extra = [k for k, v in sample.items() if k not in modalities and (torch.is_tensor(v) and v.numel())]
    if extra:
        raise ValueError(
            f"sample {index}: modality {extra} given, but the model was built for {list(modalities)} only"
        )
    size = None
    for m in modalities:
        t = sample[m]
        if not torch.is_tensor(t):
            raise TypeError(f"sample {index}, {m}: expected a torch.Tensor, got {type(t).__name__}")
        if not t.is_floating_point():
            raise TypeError(f"sample {index}, {m}: expected a float tensor on the 0-255 scale, got {t.dtype}")
        if t.ndim != 3 or t.shape[0] != 3:
            raise ValueError(f"sample {index}, {m}: expected shape (3, H, W), got {tuple(t.shape)}")
        h, w = int(t.shape[1]), int(t.shape[2])
        if w != 2 * h:
            raise ValueError(
                f"sample {index}, {m}: a {h}x{w} (HxW) image is not an equirectangular panorama; "
                "expected width = 2 x height"
            )
        if size is not None and (h, w) != size:
            raise ValueError(f"sample {index}: modalities differ in size ({size} vs {(h, w)})")
        size = (h, w)
    assert size is not None
    return size
