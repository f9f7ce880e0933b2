#!/usr/bin/env python3
"""Seconds per panorama of the SAM 3 segmenter in each view mode (erp, cube, tangent).

Without the gated weights, ``--random-full`` builds SAM 3 at its published size (Sam3Config()
defaults, ~0.84 B parameters) with random weights: the timings and memory are the real
architecture's, the labels meaningless. With the licence, ``--checkpoint sam3`` times the real model
(for its quality run ``panosamic evaluate --checkpoint sam3 ... --views erp|cube|tangent``)::

    python benchmarks/sam3_views.py --random-full --device cuda --precision bf16     # a GPU, no weights
    python benchmarks/sam3_views.py --checkpoint sam3 --device cuda --classes "floor, wall, ceiling, chair"
    python benchmarks/sam3_views.py --dry-run                                        # CPU, test-sam3-tiny

Prints one row per mode: views per panorama, (view, prompt) pairs, seconds per panorama (median of
``--repeats`` after a warm-up) and the peak GPU memory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def build(args: argparse.Namespace):
    import torch

    from panosamic.openvocab import load_sam3

    classes = args.classes or "floor, wall, ceiling, chair, table, clutter"
    if not args.random_full:
        return load_sam3("test-sam3-tiny" if args.dry_run else args.checkpoint, classes=classes, device=args.device)
    from transformers import Sam3Config, Sam3Model

    from panosamic.openvocab.classes import parse_class_list
    from panosamic.openvocab.segmenter import OpenVocabConfig, Sam3Segmenter
    from panosamic.openvocab.tiny import tiny_tokenizer

    with torch.device(args.device):
        sam = Sam3Model(Sam3Config()).eval()  # the published architecture, random weights
    return Sam3Segmenter(sam, tiny_tokenizer(), OpenVocabConfig(parse_class_list(classes), source="random-full"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="sam3")
    ap.add_argument("--random-full", action="store_true", help="SAM 3 at its published size, random weights")
    ap.add_argument("--dry-run", action="store_true", help="test-sam3-tiny on the CPU, 64x128 (checks the script)")
    ap.add_argument("--classes", default=None)
    ap.add_argument("--views", nargs="+", default=["erp", "cube", "tangent"])
    ap.add_argument("--size", default="1024x2048", help="panorama HEIGHTxWIDTH")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    if args.dry_run:
        args.device, args.size, args.repeats, args.random_full = "cpu", "64x128", 1, False
    import torch

    h, w = (int(v) for v in args.size.lower().split("x"))
    model = build(args)
    image = torch.rand(3, h, w, device=args.device) * 255
    cuda = torch.device(args.device).type == "cuda"
    print(f"# {model.config.source}: {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{model.num_classes} classes, {h}x{w}, {args.device}, {args.precision}")
    print("| views | views/pano | pairs/pano | s/pano | peak GiB |")
    print("|---|---|---|---|---|")
    for mode in args.views:
        model.configure(views=mode)
        layout = model.layout()
        n = 1 if layout is None else layout.num_views
        times = []
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        with torch.no_grad(), model.inference_options_applied(precision=args.precision):
            for i in range(args.repeats + 1):
                if cuda:
                    torch.cuda.synchronize()
                t = time.perf_counter()
                model([{"image": image}])
                if cuda:
                    torch.cuda.synchronize()
                if i:  # the first run warms up (and computes the text embeddings)
                    times.append(time.perf_counter() - t)
        peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
        prompts = len(model.classes.flat_prompts()[0])
        print(f"| {mode} | {n} | {n * prompts} | {statistics.median(times):.3f} | {peak:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
