#!/usr/bin/env python3
"""Throughput of :func:`panosamic.inference.scale.predict_dataset`: panoramas per second vs number of
processes, batch size and DataLoader workers, and the overhead against the bare model forward.

Every configuration runs in fresh processes (``torch.distributed.run --standalone`` for more than one)
on random weights (nothing is downloaded) over ``--count`` random JPEG panoramas at the model's native
size, with a fresh output folder (no resume). Each process uses ``cores // procs`` torch threads and
one warm-up forward before the timed run. Columns:

- ``pano/s``: panoramas / the slowest rank's time for the whole call (hashing the checkpoint, planning,
  starting the loader, predicting, writing, merging the summary);
- ``busy``: the model's share of the ranks' time (forward incl. host <-> device copies);
- ``gpu util``: on CUDA, the mean of the GPU's utilisation (NVML, ``torch.cuda.utilization``) sampled
  every 50 ms during the run (is the GPU kept busy?; "–" on a CPU or without NVML);
- ``bare/s``: the bare forward's pano/s, timed in the same processes just before the run (each rank
  over its share, inputs decoded and resized beforehand, same batch size, nothing written), so
  that both see the same machine load; ``vs bare``: ``pano/s`` / ``bare/s``.

    uv run python benchmarks/predict_scale.py                       # tiny architecture, full grid
    uv run python benchmarks/predict_scale.py --vit vit_b --procs 1 --batch 1 2 --workers 2 --count 6
    python3 benchmarks/predict_scale.py --vit vit_b --device cuda --procs 1 --batch 4 8 --workers 4 --count 32

Prints a table and, last, one JSON line with every row (``--json-out FILE`` also writes it to a file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
#: Canvas of each architecture benchmarked (tiny: native 128x256, like the tests; others 512x1024).
CANVAS = {"vit_tiny": 256, "vit_b": 1024, "vit_l": 1024, "vit_h": 1024}


def build_model(vit: str) -> Any:
    """A randomly initialised semantic-only RGB model (seeded, so every rank builds the same one)."""
    import torch

    from panosamic.config import PanoSAMicConfig
    from panosamic.model import create_model

    torch.manual_seed(0)
    config = PanoSAMicConfig(canvas_size=CANVAS[vit]).model_config(vit=vit, modalities=("image",), num_classes=13)
    return create_model(config.replace(semantic_only=True)).eval()


def bare_seconds(model: Any, files: list[Path], batch: int, device: str) -> float:
    """Seconds of the bare forward over ``files``: decoded and resized beforehand, batched, nothing written."""
    import torch

    from panosamic.inference import load_image
    from panosamic.inference.sources import resize_inputs

    images = [resize_inputs({"image": load_image(f)}, model.native_size) for f in files]
    with torch.no_grad():
        t0 = time.perf_counter()
        for s in range(0, len(images), batch):
            outs = model([{k: v.to(device) for k, v in x.items()} for x in images[s : s + batch]])
            [o["sem_preds"].argmax(0).cpu() for o in outs]
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - t0


class GpuSampler:
    """Mean GPU utilisation (NVML, percent) sampled every ``period`` s on a thread while in the block."""

    def __init__(self, device: str, period: float = 0.05) -> None:
        import threading

        self.device, self.period, self.samples = device, period, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import torch

        while not self._stop.wait(self.period):
            try:
                self.samples.append(float(torch.cuda.utilization(self.device)))
            except Exception:  # noqa: BLE001 (no NVML: no figure)
                return

    def __enter__(self) -> GpuSampler:  # noqa: PYI034 (a plain class, never subclassed)
        if self.device.startswith("cuda"):
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def mean(self) -> float | None:
        return sum(self.samples) / len(self.samples) / 100 if self.samples else None


def child(args: argparse.Namespace) -> None:
    """One rank: warm up, time the bare forward over its share, run predict_dataset, print both as JSON."""
    import torch

    from panosamic.inference.scale import predict_dataset

    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    model = build_model(args.vit).to(args.device)
    h, w = model.native_size
    with torch.no_grad():
        model([{"image": torch.rand(3, h, w, device=args.device) * 255}])
    files = sorted(Path(args.inputs).iterdir())[rank::world]
    bare = bare_seconds(model, files, args.batch[0], args.device)
    with GpuSampler(args.device) as gpu:
        r = predict_dataset(model, [args.inputs], args.out, batch_size=args.batch[0], workers=args.workers[0],
                            outputs=args.outputs, resume=False, progress=False, device=args.device)  # fmt: skip
    print("RESULT " + json.dumps({"rank": r.rank, "seconds": r.seconds, "model_seconds": r.model_seconds,
                                  "predicted": r.predicted, "bare_seconds": bare, "bare_count": len(files),
                                  "gpu_util": gpu.mean}), flush=True)  # fmt: skip


def run_child(args: argparse.Namespace, procs: int, batch: int, workers: int, out: Path) -> list[dict]:
    cores = os.cpu_count() or 1
    env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // procs)), PYTHONUNBUFFERED="1")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        env.pop(k, None)
    tail = [__file__, "--child", "--vit", args.vit, "--inputs", str(args.inputs),
            "--out", str(out), "--batch", str(batch), "--workers", str(workers), "--outputs", args.outputs,
            "--device", args.device]  # fmt: skip
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)] if procs > 1 else []
    proc = subprocess.run([sys.executable, *launcher, *tail], env=env, capture_output=True, text=True, cwd=ROOT, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed ({procs} procs, batch {batch}, workers {workers}):\n"
                           f"{proc.stderr[-2000:]}")  # fmt: skip
    return [json.loads(line[7:]) for line in proc.stdout.splitlines() if line.startswith("RESULT ")]


def make_inputs(folder: Path, vit: str, count: int) -> None:
    import numpy as np
    from PIL import Image

    h = CANVAS[vit] // 2
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    base = np.linspace(0, 255, 2 * h, dtype=np.float32)[None, :, None]
    for i in range(count):  # smooth gradients plus noise: decodes like a photo, not like pure noise
        noise = rng.normal(0, 20, (h, 2 * h, 3)).astype(np.float32)
        img = np.clip(base + noise + 40 * i % 255, 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"pano_{i:04d}.jpg", quality=90)


def summarise(results: list[dict], count: int) -> dict[str, float]:
    """pano/s of the pipeline (slowest rank), the model's share of the ranks' time, the bare pano/s."""
    predicted = sum(r["predicted"] for r in results)
    if predicted != count or sum(r["bare_count"] for r in results) != count:
        raise RuntimeError(f"{predicted} of {count} panoramas predicted")
    pano_per_s = predicted / max(r["seconds"] for r in results)
    bare = count / max(r["bare_seconds"] for r in results)
    busy = sum(r["model_seconds"] for r in results) / sum(r["seconds"] for r in results)
    utils = [r["gpu_util"] for r in results if r.get("gpu_util") is not None]
    return {"pano_per_s": pano_per_s, "busy": busy, "bare_pano_per_s": bare, "vs_bare": pano_per_s / bare,
            "gpu_util": sum(utils) / len(utils) if utils else None}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vit", default="vit_tiny", choices=tuple(CANVAS))
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--count", type=int, default=8, help="panoramas per configuration (default: %(default)s)")
    p.add_argument("--outputs", default="labels,color", help="default: %(default)s")
    p.add_argument("--device", default="cpu")
    p.add_argument("--json-out", type=Path, default=None, metavar="FILE", help="also write the JSON line here")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        return child(args)
    with tempfile.TemporaryDirectory(prefix="panosamic-bench-") as tmp:
        args.inputs = Path(tmp) / "in"
        make_inputs(args.inputs, args.vit, args.count)
        rows = run_grid(args, Path(tmp))
    print_table(args, rows)


def run_grid(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    rows = []
    for procs in args.procs:
        for batch in args.batch:
            for workers in args.workers:
                s = summarise(run_child(args, procs, batch, workers, tmp / f"out_{procs}_{batch}_{workers}"), args.count)
                rows.append({"vit": args.vit, "device": args.device, "procs": procs, "batch": batch,
                             "workers": workers, **s})  # fmt: skip
                print(f"  procs {procs} batch {batch} workers {workers}: {s['pano_per_s']:.3f} pano/s "
                      f"(bare {s['bare_pano_per_s']:.3f})", flush=True)  # fmt: skip
    return rows


def print_table(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    load = os.getloadavg()
    print(f"\n{args.vit} at {CANVAS[args.vit] // 2}x{CANVAS[args.vit]} on {args.device}, {args.count} panoramas, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} (outputs {args.outputs})")  # fmt: skip
    print(f"{'procs':>5} {'batch':>5} {'workers':>7} {'pano/s':>8} {'busy':>6} {'gpu util':>8} {'bare/s':>8} "
          f"{'vs bare':>8}")  # fmt: skip
    for r in rows:
        util = "–" if r.get("gpu_util") is None else f"{r['gpu_util']:.1%}"
        print(f"{r['procs']:>5} {r['batch']:>5} {r['workers']:>7} {r['pano_per_s']:>8.3f} {r['busy']:>6.1%} "
              f"{util:>8} {r['bare_pano_per_s']:>8.3f} {r['vs_bare']:>8.1%}")  # fmt: skip
    line = json.dumps({"benchmark": "predict_scale", "vit": args.vit, "device": args.device, "count": args.count,
                       "cores": os.cpu_count(), "loadavg": load, "rows": rows})  # fmt: skip
    print(line)
    if args.json_out is not None:
        from panosamic.io import atomic_write_text

        atomic_write_text(args.json_out, line + "\n")


if __name__ == "__main__":
    main()
