"""Fine-tuning to new classes: start a model from another checkpoint's fusion and decoder weights.

``init_from(model, checkpoint)`` takes anything :func:`panosamic.load_model` accepts (a published
variant name, a Hub id, a local folder, a training ``.pth`` or run). Its architecture must be the
model's (ViT, modalities, fusion, views, canvas); only the class count may differ. Every fusion and
decoder tensor is copied, except those sized by the class count (the class head), which keep their
fresh initialisation when the counts differ; the run says so in one line. The encoder stays frozen;
a checkpoint that carries encoder weights (the test architecture's random encoder) gives those too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch

from panosamic.config.model import ARCHITECTURE_FIELDS
from panosamic.specs import TRAINABLE_PREFIXES

#: Architecture fields that must agree (everything but the class count).
_MUST_MATCH = tuple(f for f in ARCHITECTURE_FIELDS if f != "num_classes")


@dataclass
class InitReport:
    """What :func:`init_from` copied."""

    source: str
    source_classes: int
    num_classes: int
    copied: int = 0
    reinitialised: list[str] = field(default_factory=list)

    def line(self) -> str:
        """The one line a run prints."""
        head = f"initialised from {self.source}: {self.copied} fusion/decoder tensors copied"
        if not self.reinitialised:
            return head + f" ({self.num_classes} classes, as the checkpoint)"
        layers = sorted({k.rsplit(".", 1)[0] for k in self.reinitialised})
        return (
            head
            + f"; class head re-initialised ({self.source_classes} classes -> {self.num_classes}: "
            + ", ".join(layers)
            + ")"
        )


def init_from(
    model: torch.nn.Module, checkpoint: str | os.PathLike, *, subfolder: str | None = None, **hub: Any
) -> InitReport:
    """Copy ``checkpoint``'s fusion and decoder weights into ``model`` (see the module doc)."""
    from panosamic.model import find_checkpoint

    ck = find_checkpoint(checkpoint, subfolder=subfolder, **hub)
    if ck.kind == "student" or ck.config is None:
        raise ValueError(
            f"--init-from {checkpoint}: expected a PanoSAMic checkpoint with a known architecture "
            f"(a variant name, Hub folder with config.json, training .pth or run), got {ck.source}"
        )
    cfg = model.config  # type: ignore[attr-defined]
    wrong = [
        f"{k} {getattr(ck.config, k)!r} (this run: {getattr(cfg, k)!r})"
        for k in _MUST_MATCH
        if getattr(ck.config, k) != getattr(cfg, k)
    ]
    if wrong:
        raise ValueError(
            f"--init-from {checkpoint} has another architecture: "
            + "; ".join(wrong)
            + "; expected the same ViT, modalities and fusion (only the classes may differ)"
        )
    own = model.state_dict()
    report = InitReport(ck.source, ck.config.num_classes, cfg.num_classes)
    take: dict[str, torch.Tensor] = {}
    missing = []
    for key, value in own.items():
        trainable = key.startswith(TRAINABLE_PREFIXES)
        if not trainable and not key.startswith("image_encoder."):
            continue
        src = ck.tensors.get(key)
        if src is None:
            if trainable:
                missing.append(key)
            continue
        if tuple(src.shape) == tuple(value.shape):
            take[key] = src
            report.copied += trainable
        elif trainable and ck.config.num_classes != cfg.num_classes:
            report.reinitialised.append(key)
        else:
            raise ValueError(
                f"--init-from {checkpoint}: {key} has shape {tuple(src.shape)}, expected {tuple(value.shape)}"
            )
    if missing:
        raise ValueError(
            f"--init-from {checkpoint} lacks {len(missing)} fusion/decoder tensor(s), e.g. {missing[0]}"
        )
    model.load_state_dict(take, strict=False)
    return report
