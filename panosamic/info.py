"""``panosamic info``: versions, devices, SAM weights found, and the model variants with their sizes."""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import json
import platform
from pathlib import Path
from typing import Any

import torch

from panosamic import __version__


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
    from panosamic.model import list_models

    variants = {name: _count_parameters(name) for name in list_models(include_test=True)}
    return {"versions": versions, "devices": devices, "sam_weights": sam, "models": variants}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sam-dir", help="folder to look for SAM checkpoints in (default: ./sam_weights)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")


def run(args: argparse.Namespace) -> int:
    info = collect_info(args.sam_dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("panosamic " + info["versions"]["panosamic"])
    print("  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "panosamic"))
    d = info["devices"]
    print(f"devices: {d['cpu_threads']} CPU threads; CUDA: " + (", ".join(d["cuda_devices"]) if d["cuda"] else "none"))
    print("SAM checkpoints (panosamic download-sam VIT fetches one, MD5-verified):")
    for vit, s in info["sam_weights"].items():
        print(f"  {vit}: {s['file']}  " + (f"found at {s['found']}" if s["found"] else "not found"))
    print("models (panosamic.list_models(); --checkpoint NAME loads one): encoder / trainable parameters")
    for name, counts in info["models"].items():
        print(f"  {name:<32} {counts['encoder'] / 1e6:8.1f} M / {counts['trainable'] / 1e6:8.1f} M")
    return 0
