"""Compact students on the Hub: saved, pushed and loaded through the same stack as PanoSAMic.

A student folder is a PanoSAMic folder's layout (``model.safetensors``, ``config.json``,
``README.md``; one folder, or one subfolder of a Hub repo) whose config.json says
``"architecture": "panosamic-student"``. Writing goes through :func:`~panosamic.hub.files.write_hub_folder`
and :func:`~panosamic.hub.push.push_folder`; reading through
:func:`~panosamic.hub.loading.resolve_checkpoint` (cache, token, revision), the one weights reader
and the strict state-dict check (NaN/inf scan included) every kind of model gets.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import ModelCard, ModelCardData

from panosamic.hub.card import DEFAULT_LICENSE, LIBRARY_NAME, PIPELINE_TAG
from panosamic.hub.checkpoint import read_model_entries
from panosamic.hub.files import read_weights, write_hub_folder
from panosamic.hub.loading import resolve_checkpoint
from panosamic.hub.metadata import CONFIG_NAME, read_config_file
from panosamic.io import safe_torch_load
from panosamic.modeling.state_dict import check_state_dict
from panosamic.student.config import ARCHITECTURE, StudentConfig
from panosamic.student.model import PanoStudent

__all__ = ["load_student", "load_student_model", "push_student", "save_student", "student_card"]

#: The folder of a distillation run that holds its best student.
RUN_STUDENT_DIR = "student"
_TAGS = ["panoramic", "equirectangular", "semantic-segmentation", "distillation"]


def student_card(model: PanoStudent, metrics: Mapping[str, Any] | None = None, *, repo_id: str | None = None,
                 subfolder: str | None = None) -> ModelCard:
    """The model card of a student folder: the Hub's front matter and how to load it."""
    c = model.config
    where = repo_id or "FOLDER_OR_REPO"
    sub = f", subfolder={subfolder!r}" if subfolder else ""
    lines = [f"# {c.variant_name}", "",
             f"A compact panoramic segmentation student ({c.backbone} backbone, FPN-lite decoder, wrap-around padding), "
             f"{model.num_parameters() / 1e6:.2f} M parameters, inputs {', '.join(c.modalities)}, {c.num_classes} "
             f"classes, native size {c.native_size[0]}x{c.native_size[1]}.", ""]
    if metrics:
        lines += ["| metric | value |", "|---|---|", *[f"| {k} | {v} |" for k, v in metrics.items()], ""]
    lines += ["```python", "import panosamic", "from panosamic.inference import predict", "",
              f"model = panosamic.load_model({where!r}{sub})", "result = predict(model, 'pano.jpg')", "```", ""]
    data = ModelCardData(library_name=LIBRARY_NAME, license=DEFAULT_LICENSE, pipeline_tag=PIPELINE_TAG, tags=_TAGS,
                         datasets=[c.dataset] if c.dataset else None)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def save_student(model: PanoStudent, folder: str | os.PathLike, *, metrics: Mapping[str, Any] | None = None,
                 repo_id: str | None = None, subfolder: str | None = None, dtype: Any = None) -> Path:
    """Write the student's weights, config and card into ``folder`` (each file atomically)."""
    card = student_card(model, metrics, repo_id=repo_id, subfolder=subfolder)
    return write_hub_folder(folder, model.state_dict(), model.config, card=card, dtype=dtype)


def push_student(model: PanoStudent, repo_id: str, *, subfolder: str | None = None,
                 metrics: Mapping[str, Any] | None = None, **upload: Any) -> str:
    """Upload the student's folder into ``subfolder`` of ``repo_id`` in one commit; the commit URL.
    ``upload``: :func:`~panosamic.hub.push.push_folder`'s keywords (``token``, ``revision``, ...)."""
    from panosamic.hub.push import check_upload, push_folder

    check_upload(repo_id, subfolder=subfolder, **upload)  # a wrong keyword: before any work
    message = upload.pop("commit_message", None) or f"Upload {model.config.variant_name}"
    with tempfile.TemporaryDirectory(prefix="panosamic-push-") as tmp:
        save_student(model, tmp, metrics=metrics, repo_id=repo_id, subfolder=subfolder)
        return push_folder(tmp, repo_id, subfolder=subfolder, commit_message=message, **upload)


def _read(source: str | os.PathLike, subfolder: str | None, hub: Mapping[str, Any]) -> tuple[Any, dict, str]:
    """(config, tensors, where the weights came from) of a student checkpoint."""
    p = Path(str(source)).expanduser()
    if p.is_file() and p.suffix in (".pth", ".pt"):  # a distillation checkpoint
        entries = read_model_entries(safe_torch_load(p), str(p))  # type: ignore[arg-type]
        return entries.config, entries.state, str(p)
    if p.is_dir():
        base = p / subfolder if subfolder else p
        if not (base / CONFIG_NAME).is_file() and (base / RUN_STUDENT_DIR / CONFIG_NAME).is_file():
            base = base / RUN_STUDENT_DIR  # a distillation run folder
        source, subfolder = base, None
    resolved = resolve_checkpoint(source, subfolder=subfolder, **hub)
    if resolved.config is None:
        raise FileNotFoundError(f"no {CONFIG_NAME} beside {resolved.weights}: a student folder holds its config")
    config = read_config_file(resolved.config)
    return config, read_weights(resolved.weights, local=resolved.local), str(resolved.weights)


def load_student(source: str | os.PathLike, *, subfolder: str | None = None, device: str | torch.device = "cpu",
                 strict: bool = True, **hub: Any) -> PanoStudent:
    """A student in eval mode from a student folder, a distillation run folder (its ``student/``), a
    distillation checkpoint (``model_best.pth`` / ``model_last.pth``) or a Hub repo (+ ``subfolder``);
    ``hub``: ``revision``, ``cache_dir``, ``token``, ``local_files_only``, ``force_download``.
    Every tensor is checked (shape, NaN/inf, missing or unexpected keys) before any is loaded."""
    config, state, where = _read(source, subfolder, hub)
    if not isinstance(config, StudentConfig):
        kind = "a PanoSAMic" if config is None or hasattr(config, "vit") else f"a {type(config).__name__}"
        if where.endswith((".pth", ".pt")):
            raise ValueError(f"{where} is not a distillation checkpoint (it holds {kind}): load it with panosamic.load_model")
        raise ValueError(f"{where}: its config.json describes {kind}, not a compact student: "
                         "load it with panosamic.load_model")
    model = PanoStudent(config)
    tensors = check_state_dict(model, state, strict=strict, source=where)
    model.load_state_dict(tensors, strict=False)
    return model.to(device).eval()


def load_student_model(checkpoint: str | os.PathLike, *, subfolder: str | None = None,
                       device: str | torch.device = "cpu", config: Any = None, sam_weights: Any = None,
                       semantic_only: bool = True, strict: bool = True, progress: bool = True, **hub: Any) -> Any:
    """The ``"panosamic-student"`` kind of :func:`panosamic.load_model`: a student (or its ``.onnx``
    export, run by onnxruntime); PanoSAMic-only options are refused by name."""
    given = [n for n, v in (("config", config), ("sam_weights", sam_weights)) if v is not None]
    if not semantic_only:
        given.append("semantic_only=False (SAM's instance masks)")
    if given:
        raise ValueError(f"{checkpoint} is a compact student: {', '.join(given)} apply to PanoSAMic checkpoints only "
                         "(a student has no SAM parts; command line: leave out --config/--vit/--modalities/"
                         "--num-classes, --sam-weights, --refine, --boundary-weight)")
    p = Path(str(checkpoint)).expanduser()
    if p.suffix == ".onnx":
        from panosamic.student.onnx import OnnxStudent

        if not p.is_file():
            raise FileNotFoundError(f"ONNX model not found: {p}")
        model: Any = OnnxStudent(p)
        source = str(p)
    else:
        model = load_student(checkpoint, subfolder=subfolder, device=device, strict=strict, **hub)
        source = str(checkpoint) + (f"/{subfolder}" if subfolder else "")
    model.checkpoint_info = {"source": source, "kind": ARCHITECTURE}
    return model
