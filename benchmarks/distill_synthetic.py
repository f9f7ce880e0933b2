"""What distillation buys: a teacher trained on synthetic rooms, a student distilled from it, one table.

Offline, CPU. Steps (each timed):

1. render synthetic Stanford2D3DS rooms and prepare them (fold 1: areas 5a/5b are the held-out
   labelled split), plus a second set of rooms whose RGB panoramas serve as unlabelled extras;
2. train a teacher with ``panosamic train`` (the tiny test architecture ``vit_tiny`` on a 256
   canvas, 128x256 panoramas; its SAM-style encoder is random and frozen, as the trainer does);
3. distil a student (default backbone) with ``panosamic.distill.distill`` on the *unlabelled*
   training panoramas (labels not used) and the extras, from cached teacher logits; no model
   selection on the held-out split (the last epoch is the student);
4. score teacher and student on the held-out split (mIoU, student-teacher argmax agreement);
5. side by side in this process: parameters, GFLOP per panorama (FlopCounterMode) and CPU latency
   per 512x1024 panorama (median of ``--repeats``) of the torch fp32 PanoSAMic ViT-B RGB teacher
   (random weights: latency does not depend on them), the torch student and the onnxruntime
   student (the same trained weights at native size 512x1024, exported with ``export_onnx``).

Prints one table and a final JSON line. ``--quick`` is a smoke run (minutes, figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

DATASET = "stanford2d3ds"
LATENCY_HW = (512, 1024)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", default=None, help="keep data and runs here (default: a temporary folder)")
    p.add_argument("--rooms-per-area", type=int, default=3, help="labelled rooms per area (7 areas)")
    p.add_argument("--extra-rooms-per-area", type=int, default=3, help="rooms per area of the unlabelled extras")
    p.add_argument("--teacher-epochs", type=int, default=12)
    p.add_argument("--student-epochs", type=int, default=20)
    p.add_argument("--backbone", default="mobilenetv3_large_100")
    p.add_argument("--repeats", type=int, default=3, help="latency repeats (after one warm-up)")
    p.add_argument("--threads", type=int, default=2, help="CPU threads of the latency measurements")
    p.add_argument("--train-threads", type=int, default=1,
                   help="CPU threads while training and scoring (1: a shared machine oversubscribes OpenMP badly)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data and epochs, ViT-B latency skipped")
    return p.parse_args(argv)


def timed(label: str, fn: Callable[[], Any], clock: dict[str, float]) -> Any:
    t0 = time.perf_counter()
    out = fn()
    clock[label] = time.perf_counter() - t0
    print(f"[{label}: {clock[label]:.0f} s]", flush=True)
    return out


# ---------------------------------------------------------------------------- data and models
def make_data(work: Path, rooms: int, extra_rooms: int) -> tuple[Path, list[Path]]:
    from panosamic.data.prepare import prepare_dataset
    from panosamic.synth import make_synthetic_stanford

    make_synthetic_stanford(work / "raw", rooms_per_area=rooms, size=(128, 256), seed=0)
    prepare_dataset(DATASET, work / "raw", work / "processed", scale=1.0, progress=False)
    make_synthetic_stanford(work / "raw_extra", rooms_per_area=extra_rooms, size=(128, 256), seed=1)
    extras = sorted((work / "raw_extra").glob("area_*/pano/rgb"))
    return work / "processed", extras


def train_teacher(work: Path, data: Path, epochs: int) -> torch.nn.Module:
    """``panosamic train`` with the settings of tests/test_train.py::test_training_learns."""
    from panosamic.cli import main
    from panosamic.model import load_model

    cfg = work / "teacher_config.json"
    cfg.write_text(json.dumps({"canvas_size": 256, "dual_view_fusion": True, "loss": {"JaccardLoss": 1.0},
                               "optimizer": "Ranger21", "lr_scheduler": {"max_lr": 1e-2, "start_lr": 1e-5,
                                                                         "warm_up_ratio": 1.0, "wind_down_ratio": 3.0}}))
    exp = work / "teacher_runs"
    args = ["train", "--dataset_path", str(data), "--config_path", str(cfg), "--experiments_path", str(exp),
            "--dataset", DATASET, "--vit_model", "vit_tiny", "--modalities", "image", "--workers_per_gpu", "0",
            "--device", "cpu", "--no-progress", "--batch_size", "2", "--epochs", str(epochs),
            "--eval-every", str(epochs), "--keep-last"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="vit_tiny has no SAM weights")
        if main(args) != 0:
            raise RuntimeError("teacher training failed")
    (run,) = sorted((exp / DATASET).iterdir())
    # the last epoch, not the best: model_best.pth is chosen on the held-out split
    return load_model(run / "model_last.pth").eval()


def distil(work: Path, data: Path, extras: list[Path], teacher: torch.nn.Module, backbone: str, epochs: int):
    from panosamic.distill import distill

    return distill(teacher, panoramas=[str(p) for p in extras], dataset=DATASET, dataset_path=str(data),
                   output=str(work / "student_runs"), use_labels=False, validate=False, backbone=backbone,
                   epochs=epochs, batch_size=4, max_lr=2e-3, temperature=2.0, progress=False, log_every=50)


# ---------------------------------------------------------------------------- quality
@torch.no_grad()
def score(teacher: torch.nn.Module, student: torch.nn.Module, data: Path) -> dict[str, float]:
    """mIoU of both on the held-out split and their argmax agreement over all its pixels."""
    from panosamic.data import build_dataset
    from panosamic.evaluation.metrics import ConfusionMatrix

    ds = build_dataset(DATASET, data, fold=1, split="test", modalities=("image",), augment=False)
    k = int(teacher.num_classes)
    cms = {"teacher": ConfusionMatrix(k), "student": ConfusionMatrix(k)}
    agree = total = 0
    for i in range(len(ds)):
        inputs, labels = ds[i]
        preds = {name: m([inputs])[0]["sem_preds"].argmax(0) for name, m in (("teacher", teacher), ("student", student))}
        for name, cm in cms.items():
            cm.update(preds[name][None], labels[None])
        agree += int((preds["teacher"] == preds["student"]).sum())
        total += preds["teacher"].numel()
    out = {f"{name}_miou": cm.compute().miou for name, cm in cms.items()}
    out["agreement"] = agree / total
    out["test_panoramas"] = len(ds)
    return out


# ---------------------------------------------------------------------------- speed
def vit_b_teacher() -> torch.nn.Module:
    """PanoSAMic ViT-B RGB (dual view, the default fast fp32 path) with random weights."""
    from panosamic.config import ModelConfig
    from panosamic.model import create_model

    torch.manual_seed(0)
    return create_model(ModelConfig(vit="vit_b", modalities=("image",), num_classes=13)).eval()


def gflop(fn: Callable[[], Any]) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        fn()
    return counter.get_total_flops() / 1e9


def median_latency(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls (call it after :func:`gflop`, which is the warm-up)."""
    with torch.no_grad():
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def student_rows(student: torch.nn.Module, rgb: torch.Tensor, onnx_dir: Path, repeats: int,
                 threads: int) -> tuple[dict[str, dict[str, Any]], float]:
    """Rows ``student (torch fp32)`` (on the student's device) and ``student (onnxruntime)`` (CPU) for
    one panorama ``rgb``, and the max |ONNX - torch| logit difference. Used by bench.py too; a student on
    a GPU adds ``student (onnxruntime CUDA)`` where onnxruntime has its CUDA provider."""
    import onnxruntime

    from panosamic.student.onnx import OnnxStudent, export_onnx

    onnx_path = export_onnx(student, onnx_dir / "student.onnx")
    ort = OnnxStudent(onnx_path, threads=threads)
    sample = [{"image": rgb.to(student.device)}]
    flops = gflop(lambda: student(sample))
    with torch.no_grad():
        onnx_err = float((ort([{"image": rgb.cpu()}])[0]["sem_preds"] - student(sample)[0]["sem_preds"].cpu()).abs().max())
    sync = torch.cuda.synchronize if student.device.type == "cuda" else (lambda: None)
    rows = {f"student (torch fp32{', ' + student.device.type if student.device.type != 'cpu' else ''})": {
        "params_m": _params(student), "gflop": flops,
        "latency_s": median_latency(lambda: (student(sample), sync()), repeats)}}
    rows["student (onnxruntime)"] = {"params_m": _params(student), "gflop": flops,
                                     "latency_s": median_latency(lambda: ort([{"image": rgb.cpu()}]), repeats)}
    if student.device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        ort_cuda = OnnxStudent(onnx_path, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
        ort_cuda([{"image": rgb.cpu()}])  # warm-up (CUDA context, kernel selection)
        rows["student (onnxruntime CUDA)"] = {
            "params_m": _params(student), "gflop": flops,
            "latency_s": median_latency(lambda: ort_cuda([{"image": rgb.cpu()}]), repeats)}
    return rows, onnx_err


def student_latency(backbone: str = "mobilenetv3_large_100", *, repeats: int = 3, threads: int = 2,
                    device: str = "cpu", hw: tuple[int, int] = LATENCY_HW) -> dict[str, dict[str, Any]]:
    """Latency rows of a randomly initialised student at ``hw`` (what bench.py --student prints)."""
    import tempfile

    from panosamic.student import PanoStudent, StudentConfig

    torch.set_num_threads(threads)
    student = PanoStudent(StudentConfig(backbone=backbone, native_size=tuple(hw))).to(device).eval()
    rgb = torch.randint(0, 256, (3, *hw), generator=torch.Generator().manual_seed(0)).float()
    with tempfile.TemporaryDirectory() as tmp:
        return student_rows(student, rgb, Path(tmp), repeats, threads)[0]


def speed(student: torch.nn.Module, work: Path, repeats: int, threads: int, with_vit_b: bool) -> dict[str, Any]:
    """Parameters, GFLOP and latency per 512x1024 panorama, side by side (the FLOP count is the warm-up)."""
    from panosamic.student import PanoStudent

    big = PanoStudent(student.config.replace(native_size=LATENCY_HW)).eval()
    big.load_state_dict(student.state_dict())  # the same trained network, native at 512x1024
    rgb = torch.randint(0, 256, (3, *LATENCY_HW), generator=torch.Generator().manual_seed(0)).float()
    rows: dict[str, dict[str, Any]] = {}
    if with_vit_b:
        vit_b = vit_b_teacher()
        flops = gflop(lambda: vit_b([{"image": rgb}]))
        rows["teacher ViT-B (torch fp32)"] = {"params_m": _params(vit_b), "gflop": flops,
                                              "latency_s": median_latency(lambda: vit_b([{"image": rgb}]), repeats)}
        del vit_b
    student_part, onnx_err = student_rows(big, rgb, work, repeats, threads)
    return {"rows": {**rows, **student_part}, "onnx_max_abs_diff": onnx_err}


def _params(model: torch.nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


# ---------------------------------------------------------------------------- report
def table(quality: dict[str, Any], sp: dict[str, Any], tiny_teacher: torch.nn.Module) -> str:
    rows = sp["rows"]
    ref = rows.get("teacher ViT-B (torch fp32)", {}).get("latency_s")
    lines = ["| model | params (M) | GFLOP / pano | CPU latency 512x1024 (s) | speed-up vs ViT-B |", "|---|---|---|---|---|"]
    for name, r in rows.items():
        ratio = f"{ref / r['latency_s']:.1f}x" if ref else "-"
        lines.append(f"| {name} | {r['params_m']:.2f} | {r['gflop']:.1f} | {r['latency_s']:.3f} | {ratio} |")
    frac = quality["student_miou"] / quality["teacher_miou"] if quality["teacher_miou"] > 0 else float("nan")
    lines += ["", f"| held-out split (fold 1 test, {quality['test_panoramas']} panoramas) | value |", "|---|---|",
              f"| teacher mIoU (vit_tiny, {_params(tiny_teacher):.2f} M params) | {100 * quality['teacher_miou']:.2f} % |",
              f"| student mIoU | {100 * quality['student_miou']:.2f} % ({100 * frac:.1f} % of the teacher) |",
              f"| student-teacher argmax agreement | {100 * quality['agreement']:.2f} % |",
              f"| ONNX vs torch student, max abs logit difference | {sp['onnx_max_abs_diff']:.2e} |"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.train_threads)
    if args.quick:
        args.rooms_per_area, args.extra_rooms_per_area, args.teacher_epochs, args.student_epochs = 1, 1, 1, 1
        args.repeats = 1
    clock: dict[str, float] = {}
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, extras = timed("data", lambda: make_data(work, args.rooms_per_area, args.extra_rooms_per_area), clock)
        teacher = timed("teacher training", lambda: train_teacher(work, data, args.teacher_epochs), clock)
        result = timed("distillation", lambda: distil(work, data, extras, teacher, args.backbone, args.student_epochs),
                       clock)
        from panosamic.hub.student import load_student

        student = load_student(result.student_dir)
        quality = timed("scoring", lambda: score(teacher, student, data), clock)
        torch.set_num_threads(args.threads)
        load_speed = os.getloadavg()[0]
        sp = timed("speed", lambda: speed(student, work, args.repeats, args.threads, not args.quick), clock)
    print(f"\nlatency on {args.threads} CPU threads (training/scoring on {args.train_threads}); 1-min load average "
          f"at start {load:.2f}, before the speed stage {load_speed:.2f}; torch {torch.__version__}; "
          f"stage times (s): " + ", ".join(f"{k} {v:.0f}" for k, v in clock.items()))
    print(table(quality, sp, teacher))
    rows = sp["rows"]
    ref = rows.get("teacher ViT-B (torch fp32)", {}).get("latency_s")
    summary = {**quality, "student_fraction_of_teacher_miou": quality["student_miou"] / max(quality["teacher_miou"], 1e-12),
               "onnx_max_abs_diff": sp["onnx_max_abs_diff"], "rows": rows,
               "speedup_onnx_vs_vit_b": ref / rows["student (onnxruntime)"]["latency_s"] if ref else None,
               "speedup_torch_vs_vit_b": ref / rows["student (torch fp32)"]["latency_s"] if ref else None,
               "stage_seconds": clock, "load_average_at_start": load, "load_average_before_speed": load_speed,
               "threads": args.threads, "train_threads": args.train_threads,
               "student_backbone": args.backbone, "quick": args.quick}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
