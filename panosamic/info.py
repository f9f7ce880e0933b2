"""What ``panosamic info`` reports: versions, devices, SAM weights found, and the model variants with
their sizes (the command: :mod:`panosamic.cli.info`)."""

from __future__ import annotations

import importlib.metadata as metadata
import platform
from pathlib import Path
from typing import Any

import torch

from panosamic.version import __version__


def _count_parameters(name: str) -> dict[str, int]:
    from panosamic.model import create_model

    with torch.device("meta"):  # sizes without allocating anything
        model = create_model(name)
    return {
        "encoder": sum(p.numel() for p in model.image_encoder.parameters()),
        "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
    }


def collect_info(sam_dir: str | None = None) -> dict[str, Any]:
    """Everything ``panosamic info`` prints, as a dict."""
    from panosamic.weights.sam import SAM_CHECKPOINTS, sam_cache_dir

    versions = {"panosamic": __version__, "python": platform.python_version()}
    for dist in ("torch", "segment-anything", "huggingface-hub", "safetensors", "pytorch-optimizer", "numpy"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    devices = {"cpu_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        devices["cuda_devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    folders = [Path(sam_dir)] if sam_dir else [Path("sam_weights")]
    folders.append(sam_cache_dir())
    sam = {}
    for vit, entry in SAM_CHECKPOINTS.items():
        found = next((str(f / entry.filename) for f in folders if (f / entry.filename).is_file()), None)
        sam[vit] = {"file": entry.filename, "md5": entry.md5, "found": found}
    from panosamic.model import get_reported, list_models

    variants = {}
    for name in list_models(include_test=True):
        published = get_reported(name)
        variants[name] = {**_count_parameters(name), "reported": published.to_dict() if published else None}
    return {"versions": versions, "devices": devices, "sam_weights": sam, "models": variants}
