"""Saving, loading and pushing students: a folder with ``model.safetensors``, ``config.json`` and a card.

The layout is the PanoSAMic variants' (one folder, or one subfolder of a Hub repo); the
``"architecture": "panosamic-student"`` key of config.json tells a student's folder from a
PanoSAMic one (:func:`~panosamic.student.config.is_student_config`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from panosamic.student.config import StudentConfig
from panosamic.student.model import PanoStudent

__all__ = ["load_student", "push_student", "save_student", "student_card"]

WEIGHTS_NAME, CONFIG_NAME, CARD_NAME = "model.safetensors", "config.json", "README.md"


def student_card(model: PanoStudent, metrics: Mapping[str, Any] | None = None) -> str:
    """A short model card (YAML header + usage) for a student folder."""
    c = model.config
    summary = (f"A compact panoramic segmentation student ({c.backbone} backbone, FPN-lite decoder, wrap-around "
               f"padding), {model.num_parameters() / 1e6:.2f} M parameters, inputs {', '.join(c.modalities)}, "
               f"{c.num_classes} classes, native size {c.native_size[0]}x{c.native_size[1]}.")
    lines = ["---", "library_name: panosamic", "license: apache-2.0", "pipeline_tag: image-segmentation",
             "tags: [panorama, equirectangular, semantic-segmentation, distillation]", "---", "",
             f"# {c.variant_name}", "", summary, ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in metrics.items()], ""]
    lines += ["```python", "from panosamic.student.hub import load_student", "model = load_student('FOLDER_OR_REPO')",
              "from panosamic.inference import predict", "result = predict(model, 'pano.jpg')", "```", ""]
    return "\n".join(lines)


def save_student(model: PanoStudent, folder: str | os.PathLike, *, metrics: Mapping[str, Any] | None = None) -> Path:
    """Write the student's weights, config and card into ``folder`` (each file atomically)."""
    from safetensors.torch import save_file

    from panosamic.io import atomic_path, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS_NAME) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt", "library": "panosamic"})
    model.config.to_json(folder / CONFIG_NAME)
    atomic_write_text(folder / CARD_NAME, student_card(model, metrics))
    return folder


def _files(source: str | os.PathLike, subfolder: str | None, revision: str | None,
           local_files_only: bool) -> tuple[Path, Path]:
    path = Path(source)
    if subfolder:
        path = path / subfolder
    if path.is_dir() and not (path / CONFIG_NAME).exists() and (path / "student").is_dir():
        path = path / "student"  # a distillation run directory
    if path.is_dir():
        files = path / CONFIG_NAME, path / WEIGHTS_NAME
        missing = [str(f) for f in files if not f.is_file()]
        if missing:
            raise FileNotFoundError(f"student folder {path} lacks {', '.join(missing)}")
        return files
    if Path(source).exists() or str(source).count("/") != 1:
        raise FileNotFoundError(f"student folder not found: {path} (expected a folder or a Hub repo id)")
    from huggingface_hub import hf_hub_download

    got = [Path(hf_hub_download(str(source), name, subfolder=subfolder, revision=revision,
                                local_files_only=local_files_only)) for name in (CONFIG_NAME, WEIGHTS_NAME)]
    return got[0], got[1]


def load_student(source: str | os.PathLike, *, subfolder: str | None = None, revision: str | None = None,
                 device: str | torch.device = "cpu", local_files_only: bool = False) -> PanoStudent:
    """A student in eval mode, checked strictly, from: a student folder (model.safetensors +
    config.json), a distillation run directory (its ``student/``), a distillation checkpoint
    (``model_best.pth`` / ``model_last.pth``) or a Hub repo (+ subfolder)."""
    from safetensors.torch import load_file

    if str(source).endswith(".pth"):
        model, state, weights_path, config_path = _from_checkpoint(Path(source))
    else:
        config_path, weights_path = _files(source, subfolder, revision, local_files_only)
        data = json.loads(Path(config_path).read_text())
        model = PanoStudent(StudentConfig.from_dict(data, where=str(config_path)))
        state = load_file(str(weights_path), device="cpu")
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ValueError(f"{weights_path} does not fit the student of {config_path}: missing "
                         f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}")
    return model.to(device).eval()


def _from_checkpoint(path: Path) -> tuple[PanoStudent, dict[str, torch.Tensor], Path, str]:
    from panosamic.io import safe_torch_load

    ck = safe_torch_load(path)
    if not isinstance(ck, Mapping) or ck.get("kind") != "panosamic-student" or "student_config" not in ck:
        raise ValueError(f"{path} is not a distillation checkpoint (a PanoSAMic training checkpoint? "
                         "load it with panosamic.load_model)")
    model = PanoStudent(StudentConfig.from_dict(ck["student_config"], where=f"{path} student_config"))
    return model, ck["model"], path, f"{path} student_config"


def push_student(model: PanoStudent, repo_id: str, *, subfolder: str | None = None,
                 metrics: Mapping[str, Any] | None = None, private: bool = False) -> str:
    """Upload the student's folder to ``repo_id`` (optionally into ``subfolder``) in one commit."""
    import tempfile

    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=private)
    with tempfile.TemporaryDirectory() as tmp:
        save_student(model, tmp, metrics=metrics)
        info = api.upload_folder(repo_id=repo_id, folder_path=tmp, path_in_repo=subfolder or "",
                                 commit_message=f"Upload {model.config.variant_name}")
    return str(getattr(info, "commit_url", info))
