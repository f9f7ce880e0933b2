"""Training augmentations for equirectangular panoramas: flip, roll, RGB permutation.

Each is applied independently with its probability (0.25 each, the reference's 1 / (3 + 1)),
in the order flip -> roll -> permute, to every modality and to the labels alike, so pixels
stay aligned. Randomness comes from an explicit ``torch.Generator``; :meth:`generator_for`
derives one per (sample, epoch) from a seed, so a resumed run draws the same augmentations
whatever the DataLoader's worker layout.

Normals and the horizontal flip: a flip mirrors longitude, i.e. mirrors the scene in a
vertical plane. The normals of the mirrored scene are the mirrored normals; negating their x
component (R -> 255 - R in the 127.5-centred colour coding) gives exactly that up to a rotation
about the vertical axis, which is as arbitrary as a panorama's heading anyway, and keeps the
frame right-handed. The reference flips the pixels but keeps the colours (normals of a mirrored
scene in a left-handed frame); ``normals_flip="none"`` reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

NormalsFlip = Literal["negate_x", "none"]
_NORMALS_FLIPS = ("negate_x", "none")
#: Maximum value of the 8-bit colour coding of normals.
_NORMALS_MAX = 255.0


@dataclass(frozen=True)
class AugmentationParams:
    """What one augmentation call does: flip, then roll by ``shift`` columns, then permute RGB."""

    flip: bool = False
    shift: int = 0
    permutation: tuple[int, int, int] | None = None


@dataclass(frozen=True)
class PanoramaAugmentation:
    """Horizontal flip, circular horizontal roll and RGB channel permutation.

    ``p_*``: probability of each (a uniform draw ``u`` applies it when ``u <= p``, as the
    reference does). ``normals_flip``: what a flip does to the normals' x component (see the
    module docstring). ``seed``: base seed of :meth:`generator_for`.
    """

    p_flip: float = 0.25
    p_roll: float = 0.25
    p_permute: float = 0.25
    normals_flip: NormalsFlip = "negate_x"
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("p_flip", "p_roll", "p_permute"):
            p = getattr(self, name)
            if not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {p!r}")
        if self.normals_flip not in _NORMALS_FLIPS:
            raise ValueError(f"normals_flip must be one of {_NORMALS_FLIPS}, got {self.normals_flip!r}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")

    def generator_for(self, index: int, epoch: int = 0) -> torch.Generator:
        """A generator determined by (seed, epoch, sample index) only."""
        state = np.random.SeedSequence([self.seed, int(epoch), int(index)]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))

    def sample(self, width: int, generator: torch.Generator | None = None) -> AugmentationParams:
        """Draw the parameters for one panorama of ``width`` columns.

        Always draws the same number of random values, so the stream stays aligned whatever
        was applied. ``generator=None`` uses torch's global generator.
        """
        if width < 1:
            raise ValueError(f"width must be positive, got {width}")
        u = torch.rand(4, generator=generator, dtype=torch.float64).tolist()
        perm = tuple(int(i) for i in torch.randperm(3, generator=generator).tolist())
        return AugmentationParams(
            flip=u[0] <= self.p_flip,
            shift=min(int(u[2] * width), width - 1) if u[1] <= self.p_roll else 0,
            permutation=perm if u[3] <= self.p_permute else None,  # type: ignore[arg-type]
        )

    def apply(
        self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, params: AugmentationParams
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Apply ``params`` to every input (CxHxW) and to the labels (HxW); returns new tensors."""
        out = dict(inputs)
        if params.flip:
            out = {k: v.flip(-1) for k, v in out.items()}
            labels = labels.flip(-1)
            if self.normals_flip == "negate_x" and "normals" in out and out["normals"].numel():
                normals = out["normals"].clone()
                normals[0] = _NORMALS_MAX - normals[0]
                out["normals"] = normals
        if params.shift:
            out = {k: torch.roll(v, shifts=params.shift, dims=-1) for k, v in out.items()}
            labels = torch.roll(labels, shifts=params.shift, dims=-1)
        if params.permutation is not None and "image" in out:
            out["image"] = out["image"][list(params.permutation)]
        return out, labels

    def __call__(
        self,
        inputs: dict[str, torch.Tensor],
        labels: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        params = self.sample(int(labels.shape[-1]), generator)
        return self.apply(inputs, labels, params)

    def augment_item(
        self, inputs: dict[str, torch.Tensor], labels: torch.Tensor, index: int, epoch: int | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Augment a dataset's item ``index``: with the generator of (seed, ``epoch``, ``index``), or
        with torch's global generator while ``epoch`` is None (no ``set_epoch`` yet, like the reference)."""
        return self(inputs, labels, None if epoch is None else self.generator_for(index, epoch))
