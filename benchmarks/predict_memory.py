"""Peak memory of ``predict`` on a huge panorama (8192 x 16384 by default), above the model's own.

Writes a synthetic JPEG once into a temp folder, then measures each case in a fresh subprocess:
the tiny test architecture (``create_model("test-vittiny-rgb")``, random weights) is built and
warmed up on a small panorama, ``/proc/self/clear_refs`` resets the peak RSS (``VmHWM``) to the
current RSS, and the figure is ``VmHWM`` after the call minus ``VmRSS`` before it.

Cases: ``predict`` (the banded path), ``predict+save`` (label, colour and overlay files too),
``refused`` (the same file with ``max_pixels`` lowered: refused from the header) and, for
contrast, ``full path`` (the full-size-logits path at the largest size it still takes,
``FULL_LOGITS_MAX_PIXELS`` pixels).

    uv run python benchmarks/predict_memory.py            # 8192 x 16384
    uv run python benchmarks/predict_memory.py --height 4096
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

GIB = 1024**3


def _kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def write_panorama(path: Path, height: int) -> None:
    """A smooth synthetic 2:1 panorama with some noise, built row band by row band."""
    from PIL import Image

    width = 2 * height
    img = np.empty((height, width, 3), dtype=np.uint8)
    x = np.linspace(0, 6 * np.pi, width, dtype=np.float32)
    rng = np.random.default_rng(0)
    for start in range(0, height, 512):
        y = np.linspace(0, 3 * np.pi, height, dtype=np.float32)[start : start + 512, None]
        for c in range(3):
            band = 127 + 100 * np.sin(x[None] * (c + 1) + y * (3 - c))
            band += rng.normal(0, 12, band.shape).astype(np.float32)
            img[start : start + 512, :, c] = np.clip(band, 0, 255).astype(np.uint8)
    Image.fromarray(img).save(path, quality=90)


def child(args: argparse.Namespace) -> None:
    """One measurement in this (fresh) process; prints one JSON line."""
    import gc

    import torch

    import panosamic
    from panosamic.inference import inputs, predict

    model = panosamic.create_model("test-vittiny-rgb").eval()
    predict(model, np.zeros((64, 128, 3), np.uint8))  # warm-up: lazy allocations count as the model's own
    if args.case == "full path":
        side = int((inputs.FULL_LOGITS_MAX_PIXELS // 2) ** 0.5)
        image = np.random.default_rng(0).integers(0, 256, (side, 2 * side, 3), dtype=np.uint8)
        source: object = image
    else:
        source = args.image
    gc.collect()
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    base = _kib("VmRSS") * 1024
    start, line = time.perf_counter(), ""
    try:
        res = predict(model, source, max_pixels=args.max_pixels)
        line = f"labels {res.labels.shape} {res.labels.dtype}, logits {tuple(res.logits.shape)}"
        if args.case == "predict+save":
            res.save(Path(args.image).parent / "out", legend=False)
    except ValueError as e:
        line = f"refused: {e}"
    seconds = time.perf_counter() - start
    peak = _kib("VmHWM") * 1024
    print(json.dumps({"case": args.case, "peak_above_model_gib": (peak - base) / GIB,
                      "model_process_rss_gib": base / GIB, "seconds": seconds, "threads": torch.get_num_threads(),
                      "result": line}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=8192, help="panorama height (width = 2 x height)")
    parser.add_argument("--child", dest="case", help=argparse.SUPPRESS)
    parser.add_argument("--image", help=argparse.SUPPRESS)
    parser.add_argument("--max-pixels", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        child(args)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "huge.jpg"
        t = time.perf_counter()
        write_panorama(path, args.height)
        pixels = args.height * 2 * args.height
        print(f"synthetic {2 * args.height}x{args.height} JPEG ({path.stat().st_size / 1e6:.0f} MB, "
              f"{pixels:,} pixels) written in {time.perf_counter() - t:.0f} s")  # fmt: skip
        cases = [("predict", None), ("predict+save", None), ("refused", pixels // 2), ("full path", None)]
        print(f"{'case':<14} {'peak above model':>17} {'process RSS':>12} {'seconds':>8}  result")
        for case, limit in cases:
            cmd = [sys.executable, __file__, "--child", case, "--image", str(path)]
            cmd += [] if limit is None else ["--max-pixels", str(limit)]
            out = subprocess.run(cmd, check=False, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{case:<14} failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{case:<14} {r['peak_above_model_gib']:>13.3f} GiB {r['model_process_rss_gib']:>8.3f} GiB "
                  f"{r['seconds']:>8.1f}  {r['result']}")  # fmt: skip


if __name__ == "__main__":
    main()
