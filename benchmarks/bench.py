#!/usr/bin/env python3
"""Speed and memory of PanoSAMic's forward pass (per stage) and of a training step.

Every configuration runs in its own subprocess (so CPU peak memory is that configuration's), on
random weights from ``tests/fixtures/compat/make_weights.py`` (nothing is downloaded), on 512x1024
inputs, dual view (``config/config_stanford2d3ds_dv.json``). Times: warm-up runs, then
``--repeats`` timed runs (median and min..max); CUDA is synchronised around every stage.
Peak memory: CUDA ``max_memory_allocated``; CPU the process's peak RSS (``VmHWM``, reset just
before the first forward through ``/proc/self/clear_refs``) minus its RSS at that point.

    uv run python benchmarks/bench.py --vit vit_b --modalities rgb --device cpu \\
        --path exact fast --precision fp32 bf16 --repeats 3
    uv run python benchmarks/bench.py --train-step --vit vit_b --modalities rgb --batch 1 4 \\
        --precision fp32 bf16 --repeats 2

On a GPU (``benchmarks/gpu_suite.py`` runs the whole sweep): ``--device cuda --in-process`` runs every
configuration in one process (CUDA peak memory is per configuration all the same) and
``--weights-cache DIR`` keeps the generated random weights (ViT-H RGB-D-N: 1.0 G parameters) on disk
for the next invocation. ``--size HxW`` changes the input (default 512x1024; smoke tests use less).

Results: one JSON per invocation in ``benchmarks/results/`` and ``benchmarks/RESULTS.md``
rebuilt from all of them.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from panosamic.specs import MODALITY_SETS, VIT_SPECS

ROOT = Path(__file__).resolve().parents[1]
COMPAT = ROOT / "tests" / "fixtures" / "compat"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
RESULTS_MD = Path(__file__).resolve().parent / "RESULTS.md"
CONFIG = ROOT / "config" / "config_stanford2d3ds_dv.json"

VITS = tuple(VIT_SPECS)
STAGES = ("preprocess", "encoder", "fusion", "decoder", "postprocess", "instance")
INPUT_HW = (512, 1024)
GIB = 2**30


@dataclass
class BenchSpec:
    """One configuration, run in one worker process."""

    mode: str  # "forward" | "train"
    vit: str
    modalities: str
    device: str
    path: str  # "exact" | "fast"
    precision: str  # "fp32" | "bf16"
    batch: int = 1
    repeats: int = 3
    warmup: int = 1
    semantic_only: bool = True
    compile: bool = False
    channels_last: bool = False
    checkpointing: bool = False  # train mode: activation checkpointing of the fusion blocks
    threads: int | None = None
    logits_out: str | None = None  # forward: where to save a logit subsample for cross-path checks
    input_hw: tuple[int, int] = INPUT_HW
    weights_cache: str | None = None  # folder keeping the generated weights between processes

    @property
    def key(self) -> str:
        parts = [self.mode, self.vit, self.modalities, self.device, self.path, self.precision, f"b{self.batch}"]
        parts += [f for f, on in (("instance", not self.semantic_only), ("compile", self.compile),
                                  ("cl", self.channels_last), ("ckpt", self.checkpointing)) if on]
        return "_".join(parts)


@dataclass
class BenchResult:
    spec: BenchSpec
    stages: dict[str, list[float]] = field(default_factory=dict)  # seconds per repeat
    total: list[float] = field(default_factory=list)
    peak_bytes: int | None = None  # above the state before the first timed forward
    peak_abs_bytes: int | None = None  # whole process (CPU) / all allocations (CUDA)
    error: str | None = None
    parity: dict[str, float] | None = None  # vs the exact fp32 run of the same variant

    def median(self, name: str | None = None) -> float | None:
        xs = self.total if name is None else self.stages.get(name, [])
        return statistics.median(xs) if xs else None


# ---------------------------------------------------------------------------- measurement helpers
def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _rss_kib(field_name: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field_name} not in /proc/self/status")


class PeakMemory:
    """Peak memory above the state at :meth:`reset` (CUDA allocator or process RSS)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.base = 0

    def reset(self) -> None:
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
            return
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        self.base = _rss_kib("VmRSS") * 1024

    def peak(self) -> tuple[int, int]:
        """(above the reset state, absolute) in bytes."""
        import torch

        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            top = torch.cuda.max_memory_allocated()
        else:
            top = _rss_kib("VmHWM") * 1024
        return max(0, top - self.base), top


class StageTimer:
    """``model.stage_hook``: wall time per stage, CUDA-synchronised."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.times: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        _sync(self.device)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _sync(self.device)
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0


# ---------------------------------------------------------------------------- the worker
_WEIGHTS: dict[tuple[str, str, bool], dict[str, Any]] = {}  # in-process runs reuse the weights


def bench_weights(spec: BenchSpec) -> dict[str, Any]:
    """``make_weights`` of the variant (seed 0) as torch tensors: from memory, the weights cache, or drawn
    (tensor by tensor on a thread pool; each tensor has its own random stream, so the values are the same)."""
    import concurrent.futures

    import torch

    key = (spec.vit, spec.modalities, spec.semantic_only)
    if key in _WEIGHTS:
        return _WEIGHTS[key]
    cache = (Path(spec.weights_cache) / f"{spec.vit}_{spec.modalities}_{'sem' if spec.semantic_only else 'all'}"
             ".safetensors") if spec.weights_cache else None
    if cache is not None and cache.is_file():
        from safetensors.torch import load_file

        weights = load_file(cache)
    else:
        sys.path.insert(0, str(COMPAT))
        from make_weights import FROZEN_INSTANCE_PREFIXES, read_table, tensor_for

        rows = [(n, shape) for n, shape in read_table(str(COMPAT / f"state_dict_{spec.vit}_{spec.modalities}.tsv"))
                if not (spec.semantic_only and n.startswith(FROZEN_INSTANCE_PREFIXES))]
        with concurrent.futures.ThreadPoolExecutor(min(16, os.cpu_count() or 1)) as pool:
            arrays = pool.map(lambda row: tensor_for(row[0], row[1], 0), rows)
            weights = {n: torch.from_numpy(a) for (n, _), a in zip(rows, arrays)}
        if cache is not None:
            from safetensors.torch import save_file

            from panosamic.io import atomic_path

            with atomic_path(cache) as tmp:
                save_file(weights, str(tmp))
    _WEIGHTS.clear()  # one variant in memory at a time (ViT-H RGB-D-N: 4 GB)
    _WEIGHTS[key] = weights
    return weights


def build_model(spec: BenchSpec):
    """A dual-view PanoSAMic with deterministic random weights, on ``spec.device``."""
    import torch

    from panosamic.config import PanoSAMicConfig
    from panosamic.model import create_model
    from panosamic.modeling import load_state_dict_checked

    mods = MODALITY_SETS[spec.modalities]
    canvas = 256 if spec.vit == "vit_tiny" else 1024  # smoke tests: no table, a 256 canvas
    cfg = PanoSAMicConfig.from_json(CONFIG).replace(canvas_size=canvas).model_config(
        vit=spec.vit, modalities=mods, num_classes=13).replace(semantic_only=spec.semantic_only)
    torch.manual_seed(0)
    # on a GPU the parameters are made (and initialised) there: 1 G parameters take seconds on a CPU
    try:
        with torch.device(spec.device) if spec.device.startswith("cuda") else contextlib.nullcontext():
            model = create_model(cfg)
    except (RuntimeError, TypeError):  # some module insists on CPU tensors: build there, then move
        if not spec.device.startswith("cuda"):
            raise
        torch.manual_seed(0)
        model = create_model(cfg)
    if spec.vit != "vit_tiny":
        load_state_dict_checked(model, bench_weights(spec))
    model.to(spec.device)
    model.set_inference_path(spec.path, precision=spec.precision, compile=spec.compile,
                             channels_last=spec.channels_last)
    return model


def make_batch(spec: BenchSpec, device: str) -> list[dict[str, Any]]:
    import torch

    sys.path.insert(0, str(COMPAT))
    from make_weights import make_inputs

    mods = MODALITY_SETS[spec.modalities]
    return [
        {m: torch.from_numpy(a).to(device) for m, a in make_inputs(list(mods), *spec.input_hw, seed=i).items()}
        for i in range(spec.batch)
    ]


def run_forward(spec: BenchSpec) -> BenchResult:
    import numpy as np
    import torch

    model = build_model(spec).eval()
    batch = make_batch(spec, spec.device)
    res = BenchResult(spec)
    timer = StageTimer(spec.device)
    model.stage_hook = timer
    mem = PeakMemory(spec.device)
    mem.reset()
    outs = None
    with torch.no_grad():
        for i in range(spec.warmup + spec.repeats):
            timer.times = {}
            _sync(spec.device)
            t0 = time.perf_counter()
            outs = model(batch)
            _sync(spec.device)
            dt = time.perf_counter() - t0
            if i >= spec.warmup:
                res.total.append(dt)
                for name, t in timer.times.items():
                    res.stages.setdefault(name, []).append(t)
    res.peak_bytes, res.peak_abs_bytes = mem.peak()
    if spec.logits_out and outs is not None:
        logits = outs[0]["sem_preds"].float().cpu()
        np.savez(spec.logits_out, sub4=logits[:, ::4, ::4].numpy(), argmax=logits.argmax(0).numpy().astype(np.uint8))
    return res


def run_train_step(spec: BenchSpec) -> BenchResult:
    """forward + Jaccard loss + backward + AdamW step on the trainable parameters."""
    import torch

    from panosamic.training.losses import MultilabelJaccardLoss

    model = build_model(spec).train()
    model.configure_inference(precision=spec.precision)  # one meaning of bf16: the encoder blocks, as in training
    model.set_gradient_checkpointing(spec.checkpointing)
    batch = make_batch(spec, spec.device)
    g = torch.Generator().manual_seed(0)
    labels = torch.randint(-1, 13, (spec.batch, *spec.input_hw), generator=g).to(spec.device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    loss_fn = MultilabelJaccardLoss()
    res = BenchResult(spec)
    mem = PeakMemory(spec.device)
    mem.reset()
    for i in range(spec.warmup + spec.repeats):
        times: dict[str, float] = {}
        _sync(spec.device)
        t0 = time.perf_counter()
        logits = torch.stack([o["sem_preds"] for o in model(batch)])
        loss = loss_fn(logits.float(), labels)
        _sync(spec.device)
        t1 = time.perf_counter()
        loss.backward()
        _sync(spec.device)
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        _sync(spec.device)
        t3 = time.perf_counter()
        times = {"forward+loss": t1 - t0, "backward": t2 - t1, "optimizer": t3 - t2}
        del logits, loss
        if i >= spec.warmup:
            res.total.append(t3 - t0)
            for name, t in times.items():
                res.stages.setdefault(name, []).append(t)
    res.peak_bytes, res.peak_abs_bytes = mem.peak()
    return res


def worker(spec: BenchSpec) -> BenchResult:
    import torch

    if spec.threads:
        torch.set_num_threads(spec.threads)
    try:
        return run_train_step(spec) if spec.mode == "train" else run_forward(spec)
    except Exception as e:  # noqa: BLE001 - reported in the results, the sweep goes on
        return BenchResult(spec, error=f"{type(e).__name__}: {e}"[:500])


def run_in_subprocess(spec: BenchSpec, timeout: float | None) -> BenchResult:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(asdict(spec))]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return BenchResult(spec, error=f"timed out after {timeout:.0f} s")
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            d = json.loads(line[len("RESULT "):])
            d["spec"] = spec
            return BenchResult(**d)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return BenchResult(spec, error=f"worker exited with {proc.returncode}: {' | '.join(tail)}"[:500])


# ---------------------------------------------------------------------------- reporting
def machine_info(device: str) -> dict[str, Any]:
    import torch

    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        flags = next((ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "avx512_bf16": "avx512_bf16" in flags,
        "amx_bf16": "amx_bf16" in flags,
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "gpu": torch.cuda.get_device_name(0) if device.startswith("cuda") and torch.cuda.is_available() else None,
    }
    with contextlib.suppress(OSError):
        info["loadavg_1min"] = float(Path("/proc/loadavg").read_text().split()[0])
    return info


def _fmt_s(xs: list[float]) -> str:
    if not xs:
        return "–"
    m = statistics.median(xs)
    return f"{m:.2f}" if len(xs) == 1 else f"{m:.2f} ({min(xs):.2f}–{max(xs):.2f})"


def _fmt_gib(b: int | None) -> str:
    return "–" if b is None else f"{b / GIB:.2f}"


def attach_parity(results: list[BenchResult], logit_files: dict[str, str]) -> None:
    """Max |logit diff| and argmax agreement of every forward run against exact fp32 of its variant."""
    import numpy as np

    def variant(s: BenchSpec) -> tuple:
        return (s.vit, s.modalities, s.device, s.batch, s.semantic_only)

    ref = {variant(r.spec): logit_files.get(r.spec.key) for r in results
           if r.spec.mode == "forward" and r.spec.path == "exact" and r.spec.precision == "fp32" and not r.error}
    for r in results:
        f, rf = logit_files.get(r.spec.key), ref.get(variant(r.spec))
        if r.spec.mode != "forward" or r.error or not f or not rf or f == rf or not Path(f).exists():
            continue
        a, b = np.load(f), np.load(rf)
        r.parity = {"max_abs_logit_diff_sub4": float(np.abs(a["sub4"] - b["sub4"]).max()),
                    "argmax_agreement": float((a["argmax"] == b["argmax"]).mean())}


def write_json(results: list[BenchResult], machine: dict[str, Any], out_dir: Path) -> Path:
    from panosamic.io import atomic_write_text

    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    mode = results[0].spec.mode if results else "forward"
    path = out_dir / f"{stamp}_{mode}_{results[0].spec.device if results else 'cpu'}.json"
    payload = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "machine": machine,
        "input_hw": list(results[0].spec.input_hw) if results else list(INPUT_HW),
        "results": [
            {**asdict(r), "spec": {**asdict(r.spec), "key": r.spec.key}, "median_s": r.median()} for r in results
        ],
    }
    atomic_write_text(path, json.dumps(payload, indent=1) + "\n")
    return path


def _forward_table(runs: list[dict]) -> list[str]:
    lines = [
        "| ViT | mods | dev | batch | path | prec | total s, median (min–max) | encoder s | fusion s | decoder s "
        "| pre+post s | instance s | pano/s | peak GiB (+fwd / abs) | vs exact fp32 | vs exact fp32: max Δ logit, argmax agree |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    exact = {}
    for r in runs:
        s = r["spec"]
        if s["path"] == "exact" and s["precision"] == "fp32" and r["total"]:
            exact[(s["vit"], s["modalities"], s["device"], s["batch"])] = statistics.median(r["total"])
    for r in runs:
        s = r["spec"]
        if r["error"]:
            lines.append(f"| {s['vit']} | {s['modalities']} | {s['device']} | {s['batch']} | {s['path']} "
                         f"| {s['precision']} | failed: {r['error'][:120]} |" + " |" * 9)
            continue
        st = r["stages"]
        med = statistics.median(r["total"])
        ex = exact.get((s["vit"], s["modalities"], s["device"], s["batch"]))
        pre_post = [a + b for a, b in zip(st.get("preprocess", []), st.get("postprocess", []))]
        par = r.get("parity")
        par_s = "–" if not par else f"{par['max_abs_logit_diff_sub4']:.1e}, {par['argmax_agreement']:.4%}"
        extra = "".join(f" +{f}" for f, on in (("compile", s["compile"]), ("channels_last", s["channels_last"])) if on)
        lines.append(
            f"| {s['vit']} | {s['modalities']} | {s['device']} | {s['batch']} | {s['path']}{extra} | {s['precision']} "
            f"| {_fmt_s(r['total'])} | {_fmt_s(st.get('encoder', []))} | {_fmt_s(st.get('fusion', []))} "
            f"| {_fmt_s(st.get('decoder', []))} | {_fmt_s(pre_post)} | {_fmt_s(st.get('instance', []))} "
            f"| {s['batch'] / med:.3f} | {_fmt_gib(r['peak_bytes'])} / {_fmt_gib(r['peak_abs_bytes'])} "
            f"| {'–' if ex is None else f'{med / ex:.2f}×'} | {par_s} |"
        )
    return lines


def _train_table(runs: list[dict]) -> list[str]:
    lines = [
        "| ViT | mods | dev | batch | prec | ckpt | step s, median (min–max) | forward+loss s | backward s "
        "| optimizer s | peak GiB (+step / abs) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in runs:
        s = r["spec"]
        if r["error"]:
            lines.append(f"| {s['vit']} | {s['modalities']} | {s['device']} | {s['batch']} | {s['precision']} "
                         f"| {s['checkpointing']} | failed: {r['error'][:120]} |" + " |" * 4)
            continue
        st = r["stages"]
        lines.append(
            f"| {s['vit']} | {s['modalities']} | {s['device']} | {s['batch']} | {s['precision']} "
            f"| {'yes' if s['checkpointing'] else 'no'} | {_fmt_s(r['total'])} | {_fmt_s(st.get('forward+loss', []))} "
            f"| {_fmt_s(st.get('backward', []))} | {_fmt_s(st.get('optimizer', []))} "
            f"| {_fmt_gib(r['peak_bytes'])} / {_fmt_gib(r['peak_abs_bytes'])} |"
        )
    return lines


RESULTS_HEADER = """# PanoSAMic benchmarks

Generated by `benchmarks/bench.py` from the JSON files in `benchmarks/results/` (newest first);
edit the notes in `benchmarks/NOTES.md`, not this file. Random weights (`make_weights`), input
512×1024, dual view, 13 classes, semantic-only. "exact" = the reference's computation (SAM's
attention, one encoder call per (sample, view), fp32); "fast" = SDPA attention with the
relative-position bias as mask, batched encoder calls, inference mode; "bf16" = the encoder's
blocks under bf16 autocast. Times in seconds per forward of the whole batch: median over the
repeats (min–max); peak memory above the state before the first forward (+) and absolute.
"""


def write_markdown(results_dir: Path, md_path: Path) -> None:
    from panosamic.io import atomic_write_text

    files = sorted(results_dir.glob("*.json"), reverse=True)
    parts = [RESULTS_HEADER]
    notes = md_path.parent / "NOTES.md"
    if notes.exists():
        parts.append(notes.read_text().rstrip() + "\n")
    for f in files:
        data = json.loads(f.read_text())
        m = data["machine"]
        if "students" in data:  # compact students (bench.py --student)
            hw = "x".join(map(str, data.get("input_hw", INPUT_HW)))
            parts.append(f"### {f.stem}: compact students, one {hw} panorama\n\n| model | params (M) | GFLOP | "
                         "median latency (s) |\n|---|---|---|---|\n" + "".join(
                             f"| {k} | {r['params_m']:.2f} | {r['gflop']:.1f} | {r['latency_s']:.3f} |\n"
                             for k, r in data["students"].items()))
            continue
        runs = data["results"]
        if not runs:
            continue
        s0 = runs[0]["spec"]
        gpu = m.get("gpu") or "none (CPU only)"
        parts.append(
            f"## {data['date']} · {'training step' if s0['mode'] == 'train' else 'forward'} · {s0['device']}\n\n"
            f"Machine: {m['cpu']}, {m['cpu_cores']} cores (torch threads {m['torch_threads']}, "
            f"avx512_bf16 {'yes' if m.get('avx512_bf16') else 'no'}), GPU: {gpu}; torch {m['torch']}, "
            f"Python {m['python']}; 1-min load average at start {m.get('loadavg_1min', '?')}. "
            f"Warm-up {s0['warmup']}, repeats {s0['repeats']}. File `results/{f.name}`.\n"
        )
        table = _train_table(runs) if s0["mode"] == "train" else _forward_table(runs)
        parts.append("\n".join(table) + "\n")
    atomic_write_text(md_path, "\n".join(parts))


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--vit", nargs="+", default=["vit_b"], choices=VITS)
    ap.add_argument("--modalities", nargs="+", default=["rgb"], choices=sorted(MODALITY_SETS))
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    ap.add_argument("--path", nargs="+", default=["exact", "fast"], choices=("exact", "fast"))
    ap.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16"))
    ap.add_argument("--batch", nargs="+", type=int, default=[1])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--instance", action="store_true", help="include the SAM instance branch (semantic_only=False)")
    ap.add_argument("--compile", action="store_true", help="fast path: torch.compile the encoder")
    ap.add_argument("--channels-last", action="store_true", help="fast path: channels-last fusion/decoder")
    ap.add_argument("--train-step", action="store_true", help="time training steps instead of forwards")
    ap.add_argument("--student", nargs="*", default=None, metavar="BACKBONE",
                    help="also time compact students (timm backbone names; none given: mobilenetv3_large_100): "
                         "torch fp32 and onnxruntime (CPU; and CUDA where onnxruntime has it) per panorama of "
                         "--size, beside the rows above")
    ap.add_argument("--students-only", action="store_true", help="with --student: no PanoSAMic rows")
    ap.add_argument("--checkpointing", nargs="+", default=["off"], choices=("off", "on"),
                    help="train step: activation checkpointing of the fusion blocks")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per configuration")
    ap.add_argument("--in-process", action="store_true",
                    help="no subprocess per configuration (tests; on CUDA the peak memory stays per configuration)")
    ap.add_argument("--size", default=f"{INPUT_HW[0]}x{INPUT_HW[1]}", metavar="HxW",
                    help="input size (default %(default)s)")
    ap.add_argument("--weights-cache", type=Path, default=None, metavar="DIR",
                    help="keep the generated random weights here and reuse them (default: draw them per process)")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--markdown", type=Path, default=RESULTS_MD)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.warmup < 0 or any(b < 1 for b in args.batch):
        ap.error("--repeats and --batch must be >= 1, --warmup >= 0")
    if args.students_only and args.student is None:
        ap.error("--students-only needs --student")
    try:
        args.size = tuple(int(v) for v in args.size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 8 and args.size[1] == 2 * args.size[0]
    except (ValueError, AssertionError):
        ap.error(f"--size must be HxW with W = 2 x H and H >= 8 (e.g. 512x1024), got {args.size}")
    return args


def specs_from_args(args: argparse.Namespace) -> list[BenchSpec]:
    specs: list[BenchSpec] = []
    if args.students_only:
        return specs
    extra = {"input_hw": tuple(args.size),
             "weights_cache": str(args.weights_cache) if args.weights_cache else None}
    for vit in args.vit:
        for mods in args.modalities:
            for batch in args.batch:
                if args.train_step:
                    for prec in args.precision:
                        for ck in args.checkpointing:
                            specs.append(BenchSpec("train", vit, mods, args.device, "fast", prec, batch,
                                                   args.repeats, args.warmup, not args.instance,
                                                   checkpointing=ck == "on", threads=args.threads, **extra))
                    continue
                for path in args.path:
                    for prec in args.precision:
                        if path == "exact" and prec != "fp32":
                            continue  # the exact path is the fp32 reference computation
                        fast_extras = path == "fast"
                        specs.append(BenchSpec("forward", vit, mods, args.device, path, prec, batch, args.repeats,
                                               args.warmup, not args.instance,
                                               compile=args.compile and fast_extras,
                                               channels_last=args.channels_last and fast_extras,
                                               threads=args.threads, **extra))
    return specs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        d = json.loads(args.worker)
        spec = BenchSpec(**{**d, "input_hw": tuple(d.get("input_hw", INPUT_HW))})
        res = worker(spec)
        d = asdict(res)
        d.pop("spec")
        print("RESULT " + json.dumps(d), flush=True)
        return 0
    machine = machine_info(args.device)
    print(f"machine: {machine}", flush=True)
    results: list[BenchResult] = []
    logit_files: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="panosamic-bench-") as tmp:
        for spec in specs_from_args(args):
            if spec.mode == "forward":
                spec.logits_out = logit_files[spec.key] = str(Path(tmp) / f"{spec.key}.npz")
            t0 = time.perf_counter()
            res = worker(spec) if args.in_process else run_in_subprocess(spec, args.timeout)
            results.append(res)
            status = res.error or f"median {res.median():.2f} s, peak +{_fmt_gib(res.peak_bytes)} GiB"
            print(f"{spec.key}: {status}  [{time.perf_counter() - t0:.0f} s]", flush=True)
        attach_parity(results, logit_files)
    for r in results:
        r.spec.logits_out = None
        if r.parity:
            print(f"{r.spec.key} vs exact fp32: {r.parity}")
    if args.student is not None:
        student_rows(args, machine)
    if not results:
        return 0
    path = write_json(results, machine, args.out_dir)
    write_markdown(args.out_dir, args.markdown)
    print(f"wrote {path} and {args.markdown}")
    return 0 if all(r.error is None for r in results) else 1


def student_rows(args: argparse.Namespace, machine: dict[str, Any]) -> None:
    """The compact students' rows (benchmarks/distill_synthetic.py measures them), printed and saved."""
    from panosamic.io import atomic_write_text

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import torch
    from distill_synthetic import student_latency

    rows = {}
    extra: dict[str, Any] = {}
    if args.device.startswith("cuda"):
        import onnxruntime

        available = onnxruntime.get_available_providers()
        extra["onnxruntime_providers"] = available
        if "CUDAExecutionProvider" not in available:
            print(f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider here ({', '.join(available)}): "
                  "the ONNX rows ran on the CPU provider", flush=True)
    for backbone in args.student or ["mobilenetv3_large_100"]:
        for name, row in student_latency(backbone, repeats=args.repeats, threads=args.threads or torch.get_num_threads(),
                                         device=args.device, hw=tuple(args.size)).items():
            rows[f"{name} [{backbone}]"] = row
            print(f"{name} [{backbone}]: {row['params_m']:.2f} M params, {row['gflop']:.1f} GFLOP, "
                  f"median {row['latency_s']:.3f} s per {args.size[0]}x{args.size[1]} panorama", flush=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out_dir / f"{stamp}_student_{args.device.replace(':', '')}.json",
                      json.dumps({"machine": machine, "input_hw": list(args.size), "students": rows, **extra},
                                 indent=1) + "\n")


if __name__ == "__main__":
    sys.exit(main())
