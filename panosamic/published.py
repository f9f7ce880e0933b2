"""The numbers published for PanoSAMic (the model card of ``dfki-av/PanoSAMic``), stated once.

The Stanford2D3DS scores are the mean of the three folds' scores (each fold's variant was trained
and tested on its own split), so they belong to the configuration, not to one fold. The registry
(:mod:`panosamic.model.registry`), ``panosamic info``, the model cards and ``panosamic evaluate``
read them from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from panosamic.specs import MODALITY_SETS, canonical_modalities

#: Where the numbers come from.
SOURCE = "model card of dfki-av/PanoSAMic"
#: ``Reported.over`` of the Stanford2D3DS numbers.
THREE_FOLD_MEAN = "3-fold mean"


@dataclass(frozen=True)
class Reported:
    """Scores the publisher reports for a configuration (fractions 0..1) and what they are a score
    of (``over``)."""

    miou: float
    macc: float | None = None
    over: str = THREE_FOLD_MEAN
    trainable_parameters_m: float | None = None  # millions, as published

    def scores(self) -> dict[str, float]:
        """``{"miou": ..., "macc": ...}`` (only the known ones)."""
        return {k: v for k, v in (("miou", self.miou), ("macc", self.macc)) if v is not None}

    def to_dict(self) -> dict[str, float | str | None]:
        return {**self.scores(), "over": self.over, "trainable_parameters_m": self.trainable_parameters_m,
                "source": SOURCE}  # fmt: skip


#: (dataset, vit, modality set) -> what was reported.
REPORTED: dict[tuple[str, str, str], Reported] = {
    ("stanford2d3ds", "vit_h", "rgb"): Reported(0.5962, 0.7411, trainable_parameters_m=178),
    ("stanford2d3ds", "vit_h", "rgbd"): Reported(0.6090, 0.7395, trainable_parameters_m=184),
    ("stanford2d3ds", "vit_h", "rgbdn"): Reported(0.6157, 0.7404, trainable_parameters_m=191),
    ("stanford2d3ds", "vit_l", "rgbdn"): Reported(0.6090, 0.7309),
    ("stanford2d3ds", "vit_b", "rgbdn"): Reported(0.5668, 0.7049),
    ("matterport3d", "vit_h", "rgb"): Reported(0.4659, over="Matterport3D evaluation"),
    ("matterport3d", "vit_h", "rgbd"): Reported(0.4843, over="Matterport3D evaluation"),
}


def reported_for(dataset: str | None, vit: str | None, modalities: Sequence[str] | str | None) -> Reported | None:
    """The published numbers of a configuration, or ``None``."""
    if not dataset or not vit or not modalities:
        return None
    mods = canonical_modalities(modalities)
    key = next((k for k, v in MODALITY_SETS.items() if v == mods), None)
    return REPORTED.get((dataset, vit, key)) if key else None
