"""Hugging Face Hub integration of :class:`~panosamic.model.PanoSAMic`.

``PanoSAMic`` derives from :class:`PanoSAMicHubMixin` (a ``PyTorchModelHubMixin``), which gives it

* ``save_pretrained(dir, metrics=...)``: ``model.safetensors`` (trainable tensors only),
  ``config.json`` (the architecture) and ``README.md`` (a model card with a ``model-index``);
* ``push_to_hub(repo_id, subfolder=...)``: the same folder, uploaded into a subfolder in one commit;
* ``from_pretrained_panosamic(repo_or_path, subfolder=..., ...)``: the loader the model card of
  ``dfki-av/PanoSAMic`` shows, for published subfolders (weights only) and ours (with config.json);
* ``from_pretrained(repo_or_path, ...)``: the mixin's loader, for repos without subfolders.

The SAM backbone is never saved or uploaded: it comes from Meta's checkpoint at load time.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch
from huggingface_hub import ModelCard, PyTorchModelHubMixin

from panosamic.hub.card import DEFAULT_LICENSE, LIBRARY_NAME, PAPER_URL, PIPELINE_TAG, TAGS, generate_model_card
from panosamic.hub.files import check_no_frozen, parse_dtype, write_hub_folder
from panosamic.hub.metadata import HubModelInfo


class PanoSAMicHubMixin(
    PyTorchModelHubMixin,
    library_name=LIBRARY_NAME,
    license=DEFAULT_LICENSE,
    pipeline_tag=PIPELINE_TAG,
    tags=list(TAGS),
    paper_url=PAPER_URL,
):
    """Hub saving / loading for PanoSAMic; see the module docstring."""

    # ------------------------------------------------------------------ saving
    def hub_info(self, **overrides: Any) -> HubModelInfo:
        """The metadata written to ``config.json`` (overrides: dataset, fold, depth_threshold, ...)."""
        return HubModelInfo.from_model(self, **overrides)

    def _save_pretrained(self, save_directory: Path) -> None:
        """Weights and config.json (the mixin writes the card afterwards if none exists)."""
        tensors = self.trainable_state_dict()  # type: ignore[attr-defined]
        write_hub_folder(save_directory, tensors, self.hub_info())

    def generate_model_card(  # type: ignore[override]
        self,
        *args: Any,
        metrics: Any = None,
        repo_id: str | None = None,
        subfolder: str | None = None,
        license: str | None = None,
        dtype: str | torch.dtype | None = None,
        info: HubModelInfo | None = None,
        **kwargs: Any,
    ) -> ModelCard:
        tensors = self.trainable_state_dict()  # type: ignore[attr-defined]
        target = parse_dtype(dtype)
        some = next(iter(tensors.values()))
        return generate_model_card(
            info or self.hub_info(),
            metrics=metrics,
            repo_id=repo_id,
            subfolder=subfolder,
            license=license,
            card_data=self._hub_mixin_info.model_card_data,
            num_tensors=len(tensors),
            num_params=sum(int(v.numel()) for v in tensors.values()),
            dtype=str(target or some.dtype).removeprefix("torch."),
        )

    def save_pretrained(  # type: ignore[override]
        self,
        save_directory: str | os.PathLike,
        *,
        metrics: Any = None,
        dtype: str | torch.dtype | None = None,
        license: str | None = None,
        repo_id: str | None = None,
        subfolder: str | None = None,
        push_to_hub: bool = False,
        config: Any = None,
        model_card_kwargs: dict[str, Any] | None = None,
        **push_to_hub_kwargs: Any,
    ) -> str | None:
        """Write ``model.safetensors`` (trainable tensors, optionally cast to ``dtype``),
        ``config.json`` and ``README.md`` into ``save_directory``, each file atomically.

        ``metrics``: ``{"miou": 0.52, "macc": 0.63}`` (fractions; optional ``dataset``, ``fold``,
        ``split``) or a list of such dicts, written to the card's ``model-index``. ``repo_id`` /
        ``subfolder`` only fill the card's usage snippet (unless ``push_to_hub``).
        """
        if config is not None:
            raise TypeError("config.json is written from the model itself; do not pass config=")
        kw = dict(model_card_kwargs or {})
        info = self.hub_info(**{k: kw.pop(k) for k in ("dataset", "fold", "depth_threshold") if k in kw})
        tensors = self.trainable_state_dict()  # type: ignore[attr-defined]
        check_no_frozen(tensors, f"the folder {save_directory}")
        card = self.generate_model_card(
            metrics=metrics, repo_id=repo_id, subfolder=subfolder, license=license, dtype=dtype, info=info
        )
        write_hub_folder(save_directory, tensors, info, card=card, dtype=dtype)
        if push_to_hub:
            if repo_id is None:
                repo_id = Path(save_directory).name
            return self.push_to_hub(
                repo_id, subfolder=subfolder, metrics=metrics, dtype=dtype, license=license, **push_to_hub_kwargs
            )
        return None

    def push_to_hub(  # type: ignore[override]
        self,
        repo_id: str,
        *,
        subfolder: str | None = None,
        commit_message: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        metrics: Any = None,
        dtype: str | torch.dtype | None = None,
        license: str | None = None,
        branch: str | None = None,
        config: Any = None,
        model_card_kwargs: dict[str, Any] | None = None,
    ) -> str:
        """Upload the :meth:`save_pretrained` folder into ``subfolder`` of ``repo_id`` in one commit.

        Creates the repo (and the ``revision`` branch) if needed. Returns the commit URL.
        """
        from panosamic.hub.push import push_folder

        if branch is not None and revision is not None and branch != revision:
            raise ValueError(f"branch={branch!r} and revision={revision!r} disagree; give one")
        revision = revision or branch
        with tempfile.TemporaryDirectory(prefix="panosamic-push-") as tmp:
            self.save_pretrained(
                tmp,
                metrics=metrics,
                dtype=dtype,
                license=license,
                repo_id=repo_id,
                subfolder=subfolder,
                config=config,
                model_card_kwargs=model_card_kwargs,
            )
            return push_folder(
                tmp,
                repo_id,
                subfolder=subfolder,
                commit_message=commit_message,
                private=private,
                token=token,
                revision=revision,
                create_pr=create_pr,
            )

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained_panosamic(
        cls,
        repo_or_path: str | os.PathLike,
        *,
        subfolder: str | None = None,
        config_path: Any = None,
        vit_model: str | None = None,
        modalities: Sequence[str] | str | None = None,
        num_classes: int | None = None,
        sam_weights_path: Any = None,
        semantic_only: bool = False,
        revision: str | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        token: str | bool | None = None,
        map_location: str | torch.device = "cpu",
        strict: bool = True,
        force_download: bool = False,
    ) -> Any:
        """Load a PanoSAMic variant exactly as the ``dfki-av/PanoSAMic`` model card shows.

        ``repo_or_path``: a Hub repo id, a local folder laid out like the repo, or a
        ``.safetensors`` file. With our ``config.json`` in the (sub)folder the architecture comes
        from it and ``config_path`` / ``vit_model`` / ``modalities`` / ``num_classes`` may be
        omitted (given and different: ValueError naming the field); published subfolders have
        none, so then they are required. Only the trainable tensors come from the checkpoint
        (cast to the model's dtype; bf16 files are fine); the frozen SAM parts come from
        ``sam_weights_path`` (a ``.pth``, a folder holding one, or ``None`` to download Meta's
        file into ``$PANOSAMIC_CACHE/sam``). ``semantic_only=False`` (the card's default) keeps
        the SAM instance branch. Returns the model in ``eval()`` mode on ``map_location``.
        """
        from panosamic.hub.loading import load_panosamic

        return load_panosamic(
            cls,
            repo_or_path,
            subfolder=subfolder,
            config_path=config_path,
            vit_model=vit_model,
            modalities=modalities,
            num_classes=num_classes,
            sam_weights_path=sam_weights_path,
            semantic_only=semantic_only,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
            strict=strict,
            force_download=force_download,
        )

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        map_location: str = "cpu",
        strict: bool = True,
        sam_weights_path: Any = None,
        semantic_only: bool = False,
        subfolder: str | None = None,
        config_path: Any = None,
        vit_model: str | None = None,
        modalities: Sequence[str] | str | None = None,
        num_classes: int | None = None,
        **config_values: Any,
    ) -> Any:
        """The mixin's ``from_pretrained`` lands here: same loader as :meth:`from_pretrained_panosamic`.

        ``config_values`` are the entries of config.json the mixin read (``config``,
        ``class_names``, ...); config.json is read again by the loader, so they are not used.
        """
        if config_path is None and isinstance(config_values.get("config"), (dict, os.PathLike, str)):
            config_path = config_values["config"]
        return cls.from_pretrained_panosamic(
            model_id,
            subfolder=subfolder,
            config_path=config_path,
            vit_model=vit_model,
            modalities=modalities,
            num_classes=num_classes,
            sam_weights_path=sam_weights_path,
            semantic_only=semantic_only,
            revision=revision,
            cache_dir=cache_dir,
            local_files_only=local_files_only,
            token=token,
            map_location=map_location,
            strict=strict,
            force_download=force_download,
        )
