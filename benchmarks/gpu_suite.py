#!/usr/bin/env python3
"""Every GPU figure in one command: CUDA tests, forward and training rows, students, scaled prediction.

Runs on a CUDA machine that holds only this working tree and a few carried wheels, in at most
``--budget`` seconds (default 470: under 8 minutes), and writes everything under one folder
(``--out``). Steps run most valuable first, each in its own process with its own time limit (never
past the budget), and each writes its files as it finishes, so a timeout keeps what is done:

====  =====================  ===================================================================
 00   env                    nvidia-smi, torch / CUDA versions (``00_env.log``)
 01   cuda_tests             ``pytest tests/test_cuda.py -m cuda``: ViT-B parity fp32 on the GPU
                             vs the CPU oracle, bf16 fast-path argmax agreement >= 99.5 %, student
                             torch vs ONNX (onnxruntime's CUDA provider where present, else CPU)
 02   forward_vit_h_rgbdn    bench.py: ViT-H RGB-D-N batch 1, exact fp32 / fast fp32 / fast bf16
                             (the inference yardstick: the reference needs >= 16 GB)
 03   train_vit_h_rgbdn_b8   bench.py --train-step: ViT-H RGB-D-N batch 8 bf16 (the paper's setting;
                             does it fit, step time; the reference needs >= 24 GB)
 04   forward_vit_b          ViT-B RGB and RGB-D-N, exact/fast, fp32/bf16, batch 1 and 4
 05   students               compact student: torch on the GPU, onnxruntime (CPU; CUDA if present)
 06   predict_scale          scaled prediction, ViT-B, batch 4 and 8, 4 DataLoader workers: pano/s,
                             the model's share of the time (busy) and the GPU's utilisation (NVML)
 07   forward_vit_h_more     ViT-H RGB, batch 1 and 4
 08   forward_vit_h_rgbdn_b4 ViT-H RGB-D-N batch 4 (not in the dry run)
 09   compile_vit_b          ``--compile`` on the fast path (fp32, bf16), ViT-B RGB batch 1
 10   compile_vit_h          ``--compile`` on the fast path (bf16), ViT-H RGB-D-N batch 1
 11   sam3_views             optional: benchmarks/sam3_views.py --random-full (SAM 3 at its published
                             size, random weights) where that script and transformers are present
 12   sam3                   optional hook, see below
====  =====================  ===================================================================

Each step leaves ``NN_name.log`` (its output) and ``NN_name.json`` (status ok / failed / timeout /
skipped, seconds, the command), bench steps a folder ``name/`` with bench.py's JSON and tables;
``summary.md`` is rebuilt after every step: the steps, the reference's published memory needs beside
ours, every table. ``--archive FILE.tar.gz`` also rewrites one archive of the folder after every step
(a device tool brings back few files: archive into its output folder).

On the GPU machine (its python3 has torch, timm, onnx, onnxruntime, safetensors, huggingface_hub,
pytest; panosamic's other needs travel as wheels). Here, once, in the repository root::

    echo /wheels/ >> .git/info/exclude          # wheels/ stays out of git
    uvx pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \\
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform any -d wheels \\
        segment-anything==1.0 pytorch-optimizer==4.1.0    # pure Python; the versions of uv.lock

There (``wheels`` named in the device tool's ``carry``)::

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site wheels/*.whl
    export PYTHONPATH=/tmp/site:$PWD
    python3 benchmarks/gpu_suite.py --out /tmp/suite --archive $OUT/gpu_suite.tar.gz
    cp /tmp/suite/summary.md $OUT/

(or ``python3 -m venv --system-site-packages /tmp/venv && /tmp/venv/bin/pip install --no-index
--no-deps wheels/*.whl`` and run with ``/tmp/venv/bin/python``).

``--dry-run``: the same steps on the CPU with the tiny architecture (vit_tiny), 64x128 inputs, one
repeat and small grids; the compile steps are listed as skipped (torch.compile on a CPU takes minutes).
``tests/test_gpu_suite.py`` runs it in CI, so the script is known to work before a GPU is lent.

SAM 3 (optional step 12; open-vocabulary SAM 3 support is being added by another change): the step
runs ``panosamic evaluate --checkpoint sam3 ...`` only when that command accepts ``sam3`` and the SAM 3
weights are in the local Hugging Face cache (``--sam3-repo``), with the arguments of ``--sam3-args``;
otherwise it is skipped with the reason. TODO(sam3): give it a dataset (e.g. ``panosamic synth``) once
that command's flags are settled.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib.util
import json
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
GIB = 2**30
#: The reference's published expectation (its README): ViT-H inference on one panorama needs a GPU of at
#: least 16 GB, training at least 24 GB.
YARDSTICK_GB = {"inference": 16, "training": 24}
#: Seconds for the whole suite on a GPU (under 8 minutes) and for the dry run (a slow, shared CI machine:
#: the dry run checks that the steps work, not how fast; its steps get DRY_STEP_S each).
GPU_BUDGET_S, DRY_BUDGET_S, DRY_STEP_S = 470.0, 1800.0, 600.0
#: What the steps import beyond a GPU machine's own Python (segment_anything, pytorch_optimizer: wheels).
NEEDED = ("torch", "timm", "onnx", "onnxruntime", "safetensors", "segment_anything", "pytorch_optimizer", "pytest")


@dataclass
class Step:
    """One step: a command run in its own process, with its own time limit."""

    name: str
    argv: list[str]
    timeout: float
    what: str
    skip: str | None = None  # why the step does not run (set before it starts)
    kind: str = "cmd"  # "cmd" | "bench" (bench.py: its results folder is the step's folder)
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class StepResult:
    name: str
    what: str
    status: str  # ok | failed | timeout | skipped
    seconds: float
    rc: int | None
    command: str
    note: str = ""


# ---------------------------------------------------------------------------- the plan
def plan(args: argparse.Namespace, out: Path) -> list[Step]:
    """The steps, most valuable first (the dry run: the same steps, tiny)."""
    py = sys.executable
    dry = args.dry_run
    dev = "cpu" if dry else args.device
    big, base = ("vit_tiny", "vit_tiny") if dry else ("vit_h", "vit_b")
    reps = ["--repeats", "1", "--warmup", "0"] if dry else ["--repeats", "3", "--warmup", "1"]
    size = ["--size", "64x128"] if dry else []
    cache = out / "weights_cache"

    def bench(name: str, *flags: str, timeout: float, what: str, skip: str | None = None) -> Step:
        folder = out / name
        argv = [py, str(HERE / "bench.py"), "--device", dev, "--in-process", "--out-dir", str(folder),
                "--markdown", str(folder / "bench.md"), "--weights-cache", str(cache), *size, *flags]
        return Step(name, argv, timeout, what, skip=skip, kind="bench")

    steps = [
        Step("env", [py, "-c", ENV_CODE], 30, "nvidia-smi, torch and CUDA versions"),
        # `-o addopts=`: one process, no pytest-xdist workers (their prints are the figures; the GPU machine's
        # python3 may not have pytest-xdist)
        Step("cuda_tests", [py, "-m", "pytest", str(ROOT / "tests" / "test_cuda.py"), "-m", "cuda", "-s", "-q", "-rs",
                            "-p", "no:cacheprovider", "-o", "addopts="], 120,
             "CUDA tests: ViT-B parity fp32 vs the CPU oracle, bf16 argmax agreement, student torch vs ONNX"),
        bench("forward_vit_h_rgbdn", "--vit", big, "--modalities", "rgbdn", "--path", "exact", "fast",
              "--precision", "fp32", "bf16", "--batch", "1", *reps, timeout=150,
              what=f"forward {big} RGB-D-N batch 1: exact fp32, fast fp32, fast bf16"),
        bench("train_vit_h_rgbdn_b8", "--train-step", "--vit", big, "--modalities", "rgbdn", "--precision", "bf16",
              "--batch", "2" if dry else "8", *(["--repeats", "1", "--warmup", "0"] if dry else
                                                ["--repeats", "2", "--warmup", "1"]), timeout=120,
              what=f"training step {big} RGB-D-N batch {2 if dry else 8} bf16 (forward, loss, backward, AdamW)"),
        bench("forward_vit_b", "--vit", base, "--modalities", *(["rgb"] if dry else ["rgb", "rgbdn"]),
              "--path", "exact", "fast", "--precision", "fp32", "bf16", "--batch", *(["2"] if dry else ["1", "4"]),
              *reps, timeout=120, what=f"forward {base} RGB{'' if dry else ' and RGB-D-N'}: exact/fast, fp32/bf16, "
                                       f"batch {2 if dry else '1 and 4'}"),
        bench("students", "--students-only", "--student", "mobilenetv3_small_050" if dry else "mobilenetv3_large_100",
              "--repeats", "1" if dry else "10", timeout=90,
              what="compact student: torch on the device, onnxruntime (CPU; CUDA where present)"),
        Step("predict_scale", [py, str(HERE / "predict_scale.py"), "--vit", base, "--device", dev, "--procs", "1",
                               "--batch", *(["2"] if dry else ["4", "8"]), "--workers", "1" if dry else "4",
                               "--count", "2" if dry else "32", "--json-out", str(out / "predict_scale.json")], 150,
             f"scaled prediction {base}: pano/s, busy fraction, GPU utilisation"),
        bench("forward_vit_h_more", "--vit", big, "--modalities", "rgb", "--path", "exact", "fast",
              "--precision", "fp32", "bf16", "--batch", "1", "4", *reps, timeout=150,
              what=f"forward {big} RGB batch 1 and 4", skip="dry run: the same grid as step forward_vit_b" if dry else None),
        bench("compile_vit_b", "--compile", "--vit", base, "--modalities", "rgb", "--path", "exact", "fast",
              "--precision", "fp32", "bf16", "--batch", "1", *reps, timeout=180,
              what=f"torch.compile on the fast path, {base} RGB batch 1 (exact fp32 as the baseline)",
              skip="dry run: torch.compile on a CPU takes minutes" if dry else None),
        bench("compile_vit_h", "--compile", "--vit", big, "--modalities", "rgbdn", "--path", "exact", "fast",
              "--precision", "bf16", "--batch", "1", *reps, timeout=240,
              what=f"torch.compile on the fast path, {big} RGB-D-N bf16 batch 1",
              skip="dry run: torch.compile on a CPU takes minutes" if dry else None),
    ]
    if not dry:  # the rest of ViT-H RGB-D-N: batch 4
        steps.insert(8, bench("forward_vit_h_rgbdn_b4", "--vit", big, "--modalities", "rgbdn", "--path", "exact",
                              "fast", "--precision", "fp32", "bf16", "--batch", "4", *reps, timeout=150,
                              what=f"forward {big} RGB-D-N batch 4"))
    steps.append(sam3_views_step(args, py, dev))
    steps.append(sam3_step(args, py))
    return steps


def sam3_views_step(args: argparse.Namespace, py: str, dev: str) -> Step:
    """Optional: SAM 3's seconds and memory per view mode at its published size, random weights (no licence)."""
    script = HERE / "sam3_views.py"
    step = Step("sam3_views", [py, str(script), "--random-full", "--device", dev, "--precision", "bf16", "--repeats",
                               "2"], 150, "optional: SAM 3 (random weights, published size) per view mode")
    if args.dry_run:
        step.skip = "dry run: benchmarks/sam3_views.py --dry-run is that script's own rehearsal"
    elif not script.is_file():
        step.skip = "benchmarks/sam3_views.py is not in this tree"
    elif importlib.util.find_spec("transformers") is None:
        step.skip = "transformers (SAM 3) is not installed"
    return step


def sam3_step(args: argparse.Namespace, py: str) -> Step:
    """Optional: ``panosamic evaluate --checkpoint sam3 ...`` when the command takes it and weights are cached."""
    argv = [py, "-m", "panosamic.cli", "evaluate", "--checkpoint", "sam3", *shlex.split(args.sam3_args or "")]
    step = Step("sam3", argv, 120, "optional: SAM 3 open-vocabulary evaluation")
    if not args.sam3_args:
        step.skip = "no --sam3-args given (TODO(sam3): a dataset for SAM 3 rows)"
        return step
    try:
        helptext = subprocess.run([py, "-m", "panosamic.cli", "evaluate", "--help"], capture_output=True, text=True,
                                  timeout=60, cwd=ROOT, env=child_env(), check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        helptext = ""
    if "sam3" not in helptext.lower():
        step.skip = "panosamic evaluate does not take --checkpoint sam3 in this tree"
        return step
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = isinstance(try_to_load_from_cache(args.sam3_repo, "config.json"), str)
    except Exception:  # noqa: BLE001
        cached = False
    if not cached:
        step.skip = f"the SAM 3 weights ({args.sam3_repo}) are not in the local Hugging Face cache"
    return step


ENV_CODE = r"""
import platform, shutil, subprocess, torch
print("python", platform.python_version(), "torch", torch.__version__, "cuda", torch.version.cuda,
      "cudnn", torch.backends.cudnn.version())
print("cuda available:", torch.cuda.is_available())
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"gpu {i}: {p.name}, {p.total_memory / 2**30:.1f} GiB, capability {p.major}.{p.minor}")
if shutil.which("nvidia-smi"):
    print(subprocess.run(["nvidia-smi"], capture_output=True, text=True).stdout)
else:
    print("nvidia-smi: not on PATH")
try:
    import onnxruntime
    print("onnxruntime", onnxruntime.__version__, onnxruntime.get_available_providers())
except ImportError:
    print("onnxruntime: not installed")
"""


# ---------------------------------------------------------------------------- running
def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", TQDM_DISABLE="1", **(extra or {}))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def run_step(step: Step, index: int, out: Path, remaining: float, dry_run: bool = False) -> StepResult:
    """Run ``step`` (at most ``remaining`` seconds), its output in ``NN_name.log``."""
    from panosamic.io import atomic_write_text

    tag = f"{index:02d}_{step.name}"
    command = shlex.join(step.argv)
    if step.skip:
        res = StepResult(step.name, step.what, "skipped", 0.0, None, command, step.skip)
    elif remaining < 5:
        res = StepResult(step.name, step.what, "skipped", 0.0, None, command, "the suite's time budget is spent")
    else:
        limit = min(max(step.timeout, DRY_STEP_S) if dry_run else step.timeout, remaining)
        log = out / f"{tag}.log"
        t0 = time.monotonic()
        with open(log, "w") as f:
            f.write(f"$ {command}\n")
            f.flush()
            proc = subprocess.Popen(step.argv, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, env=child_env(step.env),
                                    start_new_session=True)
            try:
                rc: int | None = proc.wait(timeout=limit)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)  # the step and any process it started (workers, torchrun ranks)
                proc.wait()
                rc = None
        dt = time.monotonic() - t0
        if rc is None:
            res = StepResult(step.name, step.what, "timeout", dt, None, command, f"stopped after {limit:.0f} s")
        else:
            res = StepResult(step.name, step.what, "ok" if rc == 0 else "failed", dt, rc, command,
                             "" if rc == 0 else last_line(log))
    atomic_write_text(out / f"{tag}.json", json.dumps(asdict(res), indent=1) + "\n")
    return res


def last_line(log: Path) -> str:
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# ---------------------------------------------------------------------------- the summary
def bench_module() -> Any:
    sys.path.insert(0, str(HERE))
    import bench

    return bench


def bench_runs(out: Path, names: list[str]) -> list[tuple[str, dict]]:
    """(step name, bench.py JSON) of every bench step so far, in step order."""
    found = []
    for name in names:
        for f in sorted((out / name).glob("*.json")) if (out / name).is_dir() else []:
            found.append((name, json.loads(f.read_text())))
    return found


def yardstick(runs: list[tuple[str, dict]], big: str) -> list[str]:
    """Our peak GPU memory beside the reference's published needs (ViT-H inference >= 16 GB, training >= 24 GB)."""
    lines = ["| what | the reference needs | ours: peak memory (GiB, absolute) | rows |", "|---|---|---|---|"]
    for what, mode in (("inference, one panorama", "forward"), ("training", "train")):
        rows = []
        for _, data in runs:
            for r in data.get("results", []):
                s = r["spec"]
                if s["mode"] != mode or s["vit"] != big or (mode == "forward" and s["batch"] != 1):
                    continue
                label = f"{s['modalities']} b{s['batch']} {s['path']}{' +compile' if s.get('compile') else ''} " \
                        f"{s['precision']}"  # fmt: skip
                rows.append(f"{label}: " + (f"failed ({r['error'][:60]})" if r["error"] else
                                            f"{r['peak_abs_bytes'] / GIB:.2f}"))
        key = "inference" if mode == "forward" else "training"
        lines.append(f"| {big} {what} | ≥ {YARDSTICK_GB[key]} GB | {'; '.join(rows) or 'not measured'} | "
                     f"{len(rows)} |")
    return lines


def scale_table(out: Path) -> list[str]:
    f = out / "predict_scale.json"
    if not f.exists():
        return []
    data = json.loads(f.read_text())
    lines = [f"{data['vit']} on {data['device']}, {data['count']} panoramas, {data['cores']} CPU cores", "",
             "| procs | batch | workers | pano/s | busy (model's share) | GPU utilisation | bare pano/s | vs bare |",
             "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        util = "–" if r.get("gpu_util") is None else f"{r['gpu_util']:.1%}"
        lines.append(f"| {r['procs']} | {r['batch']} | {r['workers']} | {r['pano_per_s']:.3f} | {r['busy']:.1%} "
                     f"| {util} | {r['bare_pano_per_s']:.3f} | {r['vs_bare']:.1%} |")
    return lines


def test_lines(out: Path) -> list[str]:
    """The CUDA tests' own figures (the lines they print) and their pytest summary."""
    logs = sorted(out.glob("*_cuda_tests.log"))
    if not logs:
        return []
    text = logs[0].read_text(errors="replace").splitlines()
    keep = [ln for ln in text if ln.startswith(("cuda ", "student torch", "onnxruntime ", "SKIPPED"))
            or " passed" in ln or " failed" in ln or " skipped" in ln]
    return ["```", *keep[-20:], "```"]


def write_summary(out: Path, results: list[StepResult], header: dict[str, Any]) -> None:
    from panosamic.io import atomic_write_text

    bench = bench_module()
    runs = bench_runs(out, [r.name for r in results])
    parts = [f"# PanoSAMic GPU suite{' (dry run: CPU, vit_tiny, 64x128)' if header['dry_run'] else ''}", "",
             (f"Started {header['started']}; device: {header['device_line']}; budget {header['budget']:.0f} s, "
              f"used {sum(r.seconds for r in results):.0f} s."), "",
             "## Steps", "", "| # | step | status | seconds | what | note |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(results):
        parts.append(f"| {i:02d} | {r.name} | {r.status} | {r.seconds:.0f} | {r.what} | {r.note.replace('|', '/')} |")
    parts += ["", "## Memory against the reference's published needs", "", *yardstick(runs, header["big"]), ""]
    tests = test_lines(out)
    if tests:
        parts += ["## CUDA tests", "", *tests, ""]
    for folder, data in runs:
        if "students" in data:
            parts += [f"## {folder}: compact students", "", "| model | params (M) | GFLOP | median latency (s) |",
                      "|---|---|---|---|"]
            parts += [f"| {k} | {r['params_m']:.2f} | {r['gflop']:.1f} | {r['latency_s']:.4f} |"
                      for k, r in data["students"].items()]
            if "onnxruntime_providers" in data:
                parts.append(f"\nonnxruntime providers: {', '.join(data['onnxruntime_providers'])}")
            parts.append("")
            continue
        results_ = data["results"]
        if not results_:
            continue
        train = results_[0]["spec"]["mode"] == "train"
        hw = "x".join(map(str, data["input_hw"]))
        parts += [f"## {folder}: {'training step' if train else 'forward'} (input {hw})", ""]
        parts += bench._train_table(results_) if train else bench._forward_table(results_)
        parts.append("")
    scale = scale_table(out)
    if scale:
        parts += ["## Scaled prediction (benchmarks/predict_scale.py)", "", *scale, ""]
    atomic_write_text(out / "summary.md", "\n".join(parts) + "\n")


def write_archive(out: Path, archive: Path) -> None:
    """One .tar.gz of the output folder (the weights cache left out), written atomically."""
    from panosamic.io import atomic_path

    with atomic_path(archive, suffix=".tmp") as tmp, tarfile.open(tmp, "w:gz") as tar:
        for p in sorted(out.rglob("*")):
            if p.is_file() and "weights_cache" not in p.relative_to(out).parts:
                tar.add(p, arcname=str(Path(out.name) / p.relative_to(out)))


def device_line(args: argparse.Namespace) -> str:
    if args.dry_run:
        return f"CPU ({os.cpu_count()} cores), dry run"
    smi = shutil.which("nvidia-smi")
    if smi:
        q = subprocess.run([smi, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
                           capture_output=True, text=True, check=False).stdout.strip()
        if q:
            return f"{q}; {os.cpu_count()} CPU cores"
    return f"{args.device} (nvidia-smi not found); {os.cpu_count()} CPU cores"


# ---------------------------------------------------------------------------- CLI
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True, help="folder for every file the suite writes")
    ap.add_argument("--budget", type=float, default=None,
                    help=f"seconds for the whole suite (default {GPU_BUDGET_S:.0f}; dry run {DRY_BUDGET_S:.0f})")
    ap.add_argument("--device", default="cuda", help="default %(default)s")
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU, tiny (what CI runs)")
    ap.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps (names as in the table)")
    ap.add_argument("--archive", type=Path, default=None, metavar="FILE.tar.gz",
                    help="rewrite one archive of --out after every step")
    ap.add_argument("--keep-weights", action="store_true", help="keep the generated weights (default: removed)")
    ap.add_argument("--sam3-args", default=None, help="optional SAM 3 step: the rest of `panosamic evaluate "
                    "--checkpoint sam3 ...` (quoted)")
    ap.add_argument("--sam3-repo", default="facebook/sam3", help="Hub repo whose cached config.json means the "
                    "SAM 3 weights are here (default %(default)s)")
    args = ap.parse_args(argv)
    if args.budget is None:
        args.budget = DRY_BUDGET_S if args.dry_run else GPU_BUDGET_S
    if args.budget <= 0:
        ap.error(f"--budget must be positive, got {args.budget}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    if not args.dry_run:
        import torch

        if not torch.cuda.is_available():
            print("gpu_suite: error: no CUDA device (use --dry-run for the CPU rehearsal)", file=sys.stderr)
            return 2
    missing = [m for m in NEEDED if importlib.util.find_spec(m) is None]
    if missing:
        print(f"gpu_suite: error: {', '.join(missing)} not importable: install the carried wheels first (python3 -m "
              "pip install --no-index --no-deps --target /tmp/site wheels/*.whl; export PYTHONPATH=/tmp/site:$PWD)",
              file=sys.stderr)
        return 2
    steps = plan(args, out)
    if args.only:
        unknown = set(args.only) - {s.name for s in steps}
        if unknown:
            print(f"gpu_suite: error: unknown step(s) {', '.join(sorted(unknown))}; steps: "
                  f"{', '.join(s.name for s in steps)}", file=sys.stderr)
            return 2
        steps = [s for s in steps if s.name in args.only]
    header = {"started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "dry_run": args.dry_run,
              "device_line": device_line(args), "budget": args.budget, "big": "vit_tiny" if args.dry_run else "vit_h"}
    t_start = time.monotonic()
    results: list[StepResult] = []
    for i, step in enumerate(steps):
        remaining = args.budget - (time.monotonic() - t_start)
        res = run_step(step, i, out, remaining, args.dry_run)
        results.append(res)
        print(f"[{time.monotonic() - t_start:5.0f} s] {i:02d} {step.name}: {res.status}"
              + (f" ({res.note})" if res.note else ""), flush=True)
        write_summary(out, results, header)
        if args.archive:
            write_archive(out, args.archive)
    if not args.keep_weights:
        shutil.rmtree(out / "weights_cache", ignore_errors=True)
    print(f"wrote {out / 'summary.md'}" + (f" and {args.archive}" if args.archive else ""))
    return 0 if all(r.status in ("ok", "skipped") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
