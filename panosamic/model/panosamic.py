"""The public model class: the PanoSAMic network plus the Hub mixin."""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import torch

from panosamic.config import PanoSAMicConfig  # noqa: F401 (annotations)
from panosamic.hub.mixin import PanoSAMicHubMixin
from panosamic.modeling.panosamic import PanoSAMicNet


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
        from panosamic.model.factory import reference_model_config
        from panosamic.model.loading import load_model

        config = reference_model_config(config_path, vit_model, modalities, num_classes)
        return load_model(
            repo_or_path, config=config, sam_weights=sam_weights_path, semantic_only=semantic_only,
            device=map_location, model_class=cls, **load_kwargs,
        )  # fmt: skip
