"""Hugging Face Hub integration of :class:`panosamic.model.PanoSAMic`.

:class:`PanoSAMicHubMixin` is a ``PyTorchModelHubMixin`` whose ``config.json`` is the model's
:class:`~panosamic.config.ModelConfig` and whose ``model.safetensors`` holds the trainable tensors
only (the SAM backbone comes from Meta's checkpoint at load time). Beyond the base mixin it writes
into and uploads to a repository *subfolder* (the layout of ``dfki-av/PanoSAMic``, one variant per
subfolder, which the base ``push_to_hub`` cannot do) and writes a model card with a ``model-index``.
Loading goes through :func:`panosamic.load_model` (the model class routes the base ``from_pretrained`` there).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin

from panosamic.config import TrainingConfig
from panosamic.hub.card import (
    DEFAULT_LICENSE,
    LIBRARY_NAME,
    PAPER_URL,
    PIPELINE_TAG,
    TAGS,
    generate_model_card,
)
from panosamic.hub.files import parse_dtype, saved_prefixes, write_hub_folder


class PanoSAMicHubMixin(
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    license=DEFAULT_LICENSE,
    pipeline_tag=PIPELINE_TAG,
    tags=list(TAGS),
    paper_url=PAPER_URL,
):
    """Hub saving and uploading; see the module docstring. Needs ``self.config`` (a ModelConfig)."""

    def hub_tensors(self) -> dict[str, torch.Tensor]:
        """The tensors a Hub folder of this model holds (the trainable ones; plus the encoder
        for the test architecture, which has no Meta checkpoint)."""
        prefixes = saved_prefixes(self.config)  # type: ignore[attr-defined]
        return {k: v for k, v in self.state_dict().items() if k.startswith(prefixes)}  # type: ignore[attr-defined]

    def _save_pretrained(self, save_directory: Path) -> None:
        write_hub_folder(save_directory, self.hub_tensors(), self.config)  # type: ignore[attr-defined]

    def generate_model_card(  # type: ignore[override]
        self,
        *args: Any,
        metrics: Any = None,
        training: TrainingConfig | None = None,
        repo_id: str | None = None,
        subfolder: str | None = None,
        license: str | None = None,
        dtype: str | torch.dtype | None = None,
        **kwargs: Any,
    ) -> ModelCard:
        from panosamic.version import __version__

        tensors = self.hub_tensors()
        some = next(iter(tensors.values()))
        return generate_model_card(
            self.config,  # type: ignore[attr-defined]
            metrics=metrics,
            training=training,
            repo_id=repo_id,
            subfolder=subfolder,
            license=license,
            card_data=self._hub_mixin_info.model_card_data,
            num_tensors=len(tensors),
            num_params=sum(int(v.numel()) for v in tensors.values()),
            dtype=str(parse_dtype(dtype) or some.dtype).removeprefix("torch."),
            library_version=__version__,
        )

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        *,
        metrics: Any = None,
        training: TrainingConfig | None = None,
        dtype: str | torch.dtype | None = None,
        license: str | None = None,
        repo_id: str | None = None,
        subfolder: str | None = None,
        push_to_hub: bool = False,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write ``model.safetensors`` (optionally cast to ``dtype``), ``config.json`` and
        ``README.md`` into ``save_directory``, each file atomically.

        ``metrics``: ``{"miou": 0.52, "macc": 0.63}`` (fractions; optional ``dataset``, ``fold``,
        ``split``) or a list of such dicts, written to the card's ``model-index``; ``training``:
        the settings shown in the card. ``repo_id`` / ``subfolder`` fill the card's usage snippet
        (and are the upload target with ``push_to_hub=True``).
        """
        card = self.generate_model_card(
            metrics=metrics, training=training, repo_id=repo_id, subfolder=subfolder, license=license, dtype=dtype
        )
        write_hub_folder(save_directory, self.hub_tensors(), self.config, card=card, dtype=dtype)  # type: ignore[attr-defined]
        if push_to_hub:
            return self.push_to_hub(
                repo_id or Path(save_directory).name, subfolder=subfolder, metrics=metrics, training=training,
                dtype=dtype, license=license, **push_to_hub_kwargs,
            )  # fmt: skip
        return None

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        subfolder: str | None = None,
        metrics: Any = None,
        training: TrainingConfig | None = None,
        dtype: str | torch.dtype | None = None,
        license: str | None = None,
        **upload: Any,
    ) -> str:
        """Upload the :meth:`save_pretrained` folder into ``subfolder`` of ``repo_id`` in one commit.

        ``upload``: :func:`~panosamic.hub.push.push_folder`'s keywords (``commit_message``,
        ``private``, ``token``, ``revision``, ``create_pr``). Creates the repo (and the ``revision``
        branch) if needed. Returns the commit URL.
        """
        from panosamic.hub.push import check_upload, push_folder

        check_upload(repo_id, subfolder=subfolder, **upload)  # a wrong keyword: before any work
        with tempfile.TemporaryDirectory(prefix="panosamic-push-") as tmp:
            self.save_pretrained(
                tmp, metrics=metrics, training=training, dtype=dtype, license=license, repo_id=repo_id,
                subfolder=subfolder,
            )  # fmt: skip
            return push_folder(tmp, repo_id, subfolder=subfolder, **upload)
