"""Upload a PanoSAMic Hub folder into a repository subfolder, in one commit.

    panosamic push CHECKPOINT_DIR REPO_ID [--subfolder NAME] [--private] [--revision BRANCH]

``CHECKPOINT_DIR`` is a folder written by ``panosamic export`` or ``model.save_pretrained``. It
is checked before anything is sent: it must hold ``model.safetensors`` without frozen SAM
tensors, a readable ``config.json`` and a model card whose front matter parses. The token
comes from ``HF_TOKEN`` or ``hf auth login`` (or ``--token-file``); it is never printed.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

from panosamic.config import ModelConfig
from panosamic.hub.files import check_no_frozen
from panosamic.hub.metadata import CARD_NAME, CONFIG_NAME, WEIGHTS_NAME, read_config_file

#: Files a Hub folder may hold (anything else is not uploaded).
HUB_FILES: tuple[str, ...] = (WEIGHTS_NAME, CONFIG_NAME, CARD_NAME)


def check_hub_folder(folder: str | os.PathLike) -> Any:
    """Validate a folder before upload (any kind of model); returns its config (see :func:`read_config`)."""
    from huggingface_hub import ModelCard
    from safetensors import SafetensorError, safe_open

    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_NAME} in {folder}; make one with `panosamic export`")
    try:
        with safe_open(str(weights), framework="pt") as f:
            keys = list(f.keys())
    except (SafetensorError, OSError) as e:
        raise ValueError(f"{weights} is truncated or corrupt (not a readable safetensors file: {e})") from e
    has_config = (folder / CONFIG_NAME).is_file()
    info = read_config_file(folder / CONFIG_NAME) if has_config else None
    if info is None or isinstance(info, ModelConfig):
        check_no_frozen(keys, str(weights), info)
    if info is None:
        raise FileNotFoundError(f"no {CONFIG_NAME} in {folder}; make the folder with `panosamic export`")
    card = folder / CARD_NAME
    if card.is_file():
        try:
            data = ModelCard.load(card).data
        except Exception as e:  # the Hub rejects cards whose YAML does not parse
            raise ValueError(f"{card}: the model card's front matter does not parse: {e}") from e
        if data.library_name != "panosamic":
            raise ValueError(f"{card}: library_name is {data.library_name!r}, expected 'panosamic'")
    return info


def check_upload(repo_id: str, **upload: Any) -> None:
    """``upload`` (``subfolder``, ``commit_message``, ``token``, ...) as :func:`push_folder` takes it,
    else a TypeError naming the keyword: called before a model is saved for the upload."""
    inspect.signature(push_folder).bind(".", repo_id, **upload)


def push_folder(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    subfolder: str | None = None,
    commit_message: str | None = None,
    private: bool | None = None,
    token: str | bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
) -> str:
    """Upload ``folder``'s Hub files into ``subfolder`` of ``repo_id`` (created if needed); the commit URL."""
    from huggingface_hub import HfApi

    info = check_hub_folder(folder)
    if subfolder is not None:
        subfolder = subfolder.strip("/")
        if not subfolder or ".." in subfolder.split("/"):
            raise ValueError(f"invalid subfolder {subfolder!r}")
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    if revision is not None and revision != "main" and not create_pr:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    where = f"{repo_id}/{subfolder}" if subfolder else repo_id
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=str(folder),
        path_in_repo=subfolder or None,
        commit_message=commit_message or f"Upload {getattr(info, 'variant_name', 'model')} to {where}",
        revision=revision,
        create_pr=create_pr,
        allow_patterns=list(HUB_FILES),
    )
    return str(getattr(commit, "pr_url", None) or commit)
