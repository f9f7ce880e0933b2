"""The public model class, :class:`PanoSAMic` (the network plus the Hub mixin), and its loader.

:func:`load_panosamic` is the ``"panosamic"`` kind of :func:`panosamic.load_model`: every check
runs before any weights are loaded (the tensors against a meta-device skeleton), so a refused
checkpoint never leaves a half-loaded model and never downloads SAM's file first.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from panosamic.config import ModelConfig, PanoSAMicConfig
from panosamic.hub.files import saved_prefixes
from panosamic.hub.mixin import PanoSAMicHubMixin
from panosamic.model.checkpoints import Checkpoint, find_checkpoint, reference_model_config, settle_config
from panosamic.modeling.network import PanoSAMicNet
from panosamic.modeling.state_dict import check_state_dict
from panosamic.specs import FROZEN_PREFIXES, TRAINABLE_PREFIXES

logger = logging.getLogger(__name__)


class PanoSAMic(PanoSAMicNet, PanoSAMicHubMixin):
    """A PanoSAMic model; ``PanoSAMic(config)`` with a :class:`~panosamic.config.ModelConfig`.

    Build with :func:`panosamic.create_model`, load any checkpoint with
    :func:`panosamic.load_model`; ``save_pretrained`` / ``push_to_hub`` come from the Hub mixin.
    """

    #: Where :func:`panosamic.load_model` loaded the weights from (source, kind, epoch, ...);
    #: None for a model built from a config.
    checkpoint_info: dict[str, Any] | None = None

    def load_sam_weights(self, checkpoint: str | os.PathLike | Mapping[str, torch.Tensor]) -> None:  # type: ignore[override]
        """Fill the frozen SAM parts from one of Meta's checkpoints (a ``.pth`` path or a state dict)."""
        from panosamic.weights.sam import load_sam_state_dict

        sd = checkpoint if isinstance(checkpoint, Mapping) else load_sam_state_dict(checkpoint)
        super().load_sam_weights(sd)

    @classmethod
    def from_pretrained_panosamic(
        cls,
        repo_or_path: str | os.PathLike,
        *,
        config_path: PanoSAMicConfig | Mapping[str, Any] | str | os.PathLike | None = None,
        vit_model: str | None = None,
        modalities: Sequence[str] | str | None = None,
        num_classes: int | None = None,
        sam_weights_path: Any = None,
        semantic_only: bool = False,
        map_location: str | torch.device = "cpu",
        **load_kwargs: Any,
    ) -> PanoSAMic:
        """The ``dfki-av/PanoSAMic`` model card's loader, a thin layer over :func:`panosamic.load_model`.

        The architecture comes from the folder's ``config.json`` (ours) or, for published
        subfolders, from the registry; ``config_path`` + ``vit_model`` + ``modalities`` +
        ``num_classes`` (the card's call) describe it explicitly and must agree with what is
        known. ``semantic_only=False`` (the card's default) keeps SAM's instance branch.
        ``load_kwargs``: ``subfolder``, ``revision``, ``cache_dir``, ``local_files_only``,
        ``token``, ``force_download``, ``strict``.
        """
        config = reference_model_config(config_path, vit_model, modalities, num_classes)
        return load_panosamic(
            repo_or_path, config=config, sam_weights=sam_weights_path, semantic_only=semantic_only,
            device=map_location, model_class=cls, **load_kwargs,
        )  # fmt: skip

    @classmethod
    def _from_pretrained(cls, *, model_id: str, **kwargs: Any) -> PanoSAMic:  # type: ignore[override]
        """The base mixin's ``from_pretrained`` lands here; config.json is read by the loader."""
        kwargs.pop("config", None)
        return cls.from_pretrained_panosamic(model_id, **kwargs)


# ---------------------------------------------------------------------------- loading
_PROMPT, _CACHED = "prompt_encoder.", "_cached_prompt_encoder."


def _holds_instance_branch(tensors: Mapping[str, torch.Tensor]) -> bool:
    """A full state dict (the reference's trainer saves SAM's prompt encoder and mask decoder too)."""
    return any(k.startswith("mask_decoder.") for k in tensors) and any(k.startswith((_PROMPT, _CACHED)) for k in tensors)


def _with_prompt_encoder_copies(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The prompt encoder under both of its names (the newer reference saves a ``_cached_`` copy, the older not)."""
    out = dict(tensors)
    for a, b in ((_PROMPT, _CACHED), (_CACHED, _PROMPT)):
        for k, v in tensors.items():
            if k.startswith(a):
                out.setdefault(b + k[len(a):], v)
    return out


def _prefixes(ck: Checkpoint, cfg: ModelConfig) -> tuple[str, ...]:
    """The state-dict prefixes taken from the checkpoint (the rest comes from Meta's SAM file)."""
    if not any(k.startswith("image_encoder.") for k in ck.tensors):
        return TRAINABLE_PREFIXES  # a Hub folder of a SAM ViT, or a test-architecture folder in the published layout
    if ck.kind == "hub":
        return saved_prefixes(cfg)
    if not cfg.semantic_only and _holds_instance_branch(ck.tensors):
        return (*FROZEN_PREFIXES, *TRAINABLE_PREFIXES)  # a full state dict: SAM's file is not needed
    return ("image_encoder.", *TRAINABLE_PREFIXES)


def resolve_sam(sam_weights: Any, config: ModelConfig, progress: bool = True) -> Any:
    """Meta's SAM weights for a config: a state dict as given, else a path (found or downloaded)."""
    if isinstance(sam_weights, Mapping):
        return sam_weights
    from panosamic.weights.sam import resolve_sam_weights

    return resolve_sam_weights(sam_weights, config.vit, progress=progress)


def load_panosamic(
    checkpoint: str | os.PathLike,
    *,
    subfolder: str | None = None,
    config: ModelConfig | None = None,
    sam_weights: Any = None,
    device: str | torch.device = "cpu",
    semantic_only: bool = True,
    strict: bool = True,
    progress: bool = True,
    model_class: type[PanoSAMic] | None = None,
    **hub: Any,
) -> PanoSAMic:
    """A PanoSAMic from any of its checkpoints (see :func:`panosamic.load_model`), in ``eval()`` mode."""
    cls = model_class or PanoSAMic
    ck = find_checkpoint(checkpoint, subfolder=subfolder, **hub)
    cfg = settle_config(ck.config, config, ck.source, ck.recorded).replace(semantic_only=bool(semantic_only))
    ours = FROZEN_PREFIXES + TRAINABLE_PREFIXES
    if ck.tensors and not any(k.startswith(ours) for k in ck.tensors):
        theirs = ", ".join(sorted({k.split(".", 1)[0] + ".*" for k in ck.tensors})[:4])
        raise ValueError(f"{ck.source} does not fit the model: its config describes a PanoSAMic but none of its "
                         f"{len(ck.tensors)} tensors is one (it holds {theirs}): weights of another kind of model, "
                         "such as a compact student?")
    prefixes = _prefixes(ck, cfg)
    tensors = _with_prompt_encoder_copies(ck.tensors) if _CACHED in prefixes else dict(ck.tensors)
    ignored = [k for k in tensors if not k.startswith(prefixes)]
    if ignored:  # frozen SAM tensors in a Hub folder, SAM's instance branch in a training checkpoint
        logger.info("%s: %d tensor(s) outside %s ignored (they come from Meta's file)", ck.source, len(ignored), prefixes)
    with torch.device("meta"):
        skeleton = cls(cfg)
    tensors = check_state_dict(skeleton, {k: v for k, v in tensors.items() if k.startswith(prefixes)}, strict=strict,
                               only_prefixes=prefixes, source=ck.source)
    needs_sam = "image_encoder." not in prefixes or (not cfg.semantic_only and "mask_decoder." not in prefixes)
    sam = resolve_sam(sam_weights, cfg, progress) if needs_sam else None  # after the checks; fails fast offline
    model = cls(cfg)
    if sam is not None:
        model.load_sam_weights(sam)
    model.load_state_dict(tensors, strict=False)  # checked above; cast to the model's dtype
    model.checkpoint_info = {"source": ck.source, "kind": ck.kind,
                             **{k: v for k, v in ck.meta.items() if k != "training"}}
    logger.info("loaded %d tensors from %s", len(tensors), ck.source)
    return model.to(device).eval()
