"""``panosamic info`` flags: versions, devices, SAM weights found, and the model variants with their sizes."""

from __future__ import annotations

import argparse
import json

from panosamic import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sam-dir", metavar="DIR", help="folder to look for SAM checkpoints in (default: ./sam_weights)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    flags.add_debug(parser)


def check(args: argparse.Namespace) -> None:
    """--sam-dir must be a folder (a missing one is reported as SAM checkpoints not found)."""
    from pathlib import Path

    if args.sam_dir is not None and Path(args.sam_dir).exists() and not Path(args.sam_dir).is_dir():
        raise ValueError(f"--sam-dir {args.sam_dir} is a file, not a folder: give the folder holding "
                         "the SAM checkpoints (sam_vit_*.pth)")


def run(args: argparse.Namespace) -> int:
    from panosamic.info import collect_info

    info = collect_info(args.sam_dir)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print("panosamic " + info["versions"]["panosamic"])
    print("  " + ", ".join(f"{k} {v}" for k, v in info["versions"].items() if k != "panosamic"))
    d = info["devices"]
    print(
        f"devices: {d['cpu_threads']} CPU threads; CUDA: "
        + (", ".join(d["cuda_devices"]) if d["cuda"] else "none")
    )
    print("SAM checkpoints (panosamic download-sam VIT fetches one, MD5-verified):")
    for vit, s in info["sam_weights"].items():
        print(f"  {vit}: {s['file']}  " + (f"found at {s['found']}" if s["found"] else "not found"))
    print("models (panosamic.list_models(); --checkpoint NAME loads one): encoder / trainable parameters; "
          "published mIoU / mAcc (model card of dfki-av/PanoSAMic)")
    for name, counts in info["models"].items():
        r = counts.get("reported")
        published = "" if not r else (f"   published {100 * r['miou']:.2f} / "
                                      + ("-" if r.get("macc") is None else f"{100 * r['macc']:.2f}") + f" % ({r['over']}"
                                      + ("" if r.get("trainable_parameters_m") is None
                                         else f"; {r['trainable_parameters_m']:g} M trainable") + ")")
        print(f"  {name:<32} {counts['encoder'] / 1e6:8.1f} M / {counts['trainable'] / 1e6:8.1f} M{published}")
    return 0
