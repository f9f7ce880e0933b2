"""Domain-shift benchmark of ``panosamic adapt`` on synthetic panoramas (offline, CPU, deterministic).

Domain A (source) and domain B (target) are two looks of the synthetic generator
(:mod:`panosamic.synth.domains`: materials, light colour and level, textures, sensor noise
and blur, tripod height, caps). The script

1. renders and prepares A (training areas 1-4, 6; test areas 5a, 5b), B (same split, another seed) and
   a separate B validation set (another seed, areas 5a, 5b);
2. trains a source-only model on labelled A and an oracle on labelled B (same recipe);
3. adapts a copy of the source-only model with ``panosamic.adapt.adapt`` on B's training RGB panoramas
   (labels unused), mixing in labelled A against forgetting;
4. evaluates all three on B's test split and the source-only and adapted models on A's test split.

Architecture: the tiny test architecture (``vit_tiny``) on a 256 canvas, single view, with the library's
baseline fusion (``basic_fusion="concat"``; ``--fusion mcbam`` for MCBAM, ~3x the CPU time). Its encoder has
no pretrained weights; with ``--train-encoder`` (the default) it is trained too, in all three models
alike, because a frozen random encoder learns too little for the comparison to mean much.
Hyper-parameters are fixed a priori, or (``--select-on-val``) the adaptation's ``keep_fraction`` is
chosen on B's *validation* labels (used for that choice only); B's test labels are never used to
choose anything. Prints one table and a final JSON line.

    uv run python benchmarks/adapt_synthetic.py --seed 0

Measured (seed 0, defaults): B-test mIoU source-only 7.79 %, adapted 11.52 %, oracle 15.28 % (49.8 % of the
gap closed); A-test 15.32 % -> 15.47 % after adaptation. 2027 s wall on a 2-core machine shared with other
heavy jobs (load average 8-15), 584 s of process CPU time; a quiet machine was not available.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from panosamic.adapt import AdaptSettings, adapt
from panosamic.config import ModelConfig
from panosamic.data import PanoramaAugmentation, build_dataset, get_dataset_info
from panosamic.data.prepare import prepare_dataset
from panosamic.evaluation.validation import run_validation
from panosamic.model import PanoSAMic
from panosamic.synth import DEFAULT_AREAS, make_synthetic_stanford

DATASET = "stanford2d3ds"
TRAIN_AREAS = ("area_1", "area_2", "area_3", "area_4", "area_6")  # fold 1 training areas
TEST_AREAS = ("area_5a", "area_5b")  # fold 1 test areas


def render(root: Path, name: str, domain: str, seed: int, areas, rooms: int, size: int) -> Path:
    """Synthetic raw dataset ``root/name/raw`` prepared into ``root/name/processed``."""
    raw, processed = root / name / "raw", root / name / "processed"
    make_synthetic_stanford(raw, areas=areas, rooms_per_area=rooms, size=(size, 2 * size), seed=seed, domain=domain)
    prepare_dataset(DATASET, raw, processed, scale=1.0, progress=False)
    return root / name


def new_model(seed: int, train_encoder: bool, fusion: str) -> PanoSAMic:
    info = get_dataset_info(DATASET)
    torch.manual_seed(seed)
    arch = {} if fusion == "mcbam" else {"basic_fusion": fusion, "channel_attention": None, "spatial_attention": None}
    model = PanoSAMic(ModelConfig(vit="vit_tiny", canvas_size=256, dual_view=False, num_classes=info.num_classes,
                                  class_names=info.class_names, dataset=DATASET, **arch))
    if train_encoder:
        model.image_encoder.requires_grad_(True)
    return model


def one_cycle_adamw(model: torch.nn.Module, lr: float, steps: int):
    """The recipe's optimiser (AdamW, weight decay 1e-4) and schedule (OneCycle, 10 % warm-up) over the
    trainable parameters; also ``pinhole_to_panorama.py``'s."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    return opt, torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)


def supervised(model: PanoSAMic, dataset, steps: int, batch: int, lr: float, seed: int) -> PanoSAMic:
    """The same recipe for source-only and oracle: AdamW, cross-entropy, the library's augmentations."""
    items = [dataset[i] for i in range(len(dataset))]  # augment=False: augmented below, per step
    aug = PanoramaAugmentation(p_flip=0.5, p_roll=0.5, p_permute=0.25, seed=seed)
    opt, sched = one_cycle_adamw(model, lr, steps)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        idx = torch.randint(0, len(items), (batch,), generator=g).tolist()
        views = [aug(items[i][0], items[i][1], aug.generator_for(i, step)) for i in idx]
        outs = model([v[0] for v in views])
        logits = torch.stack([o["sem_preds"] for o in outs])
        loss = F.cross_entropy(logits, torch.stack([v[1] for v in views]), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def evaluate(model: PanoSAMic, dataset) -> dict:
    info = get_dataset_info(DATASET)
    m = run_validation(model, dataset, num_classes=info.num_classes, class_names=info.class_names).metrics
    return {"miou": float(m.miou), "macc": float(m.macc), "iou": [None if not np.isfinite(v) else float(v) for v in m.iou]}


def table(results: dict[str, dict]) -> str:
    names = get_dataset_info(DATASET).class_names
    cols = list(results)
    head = f"{'class':<10}" + "".join(f"{c:>14}" for c in cols)
    lines = [head, "-" * len(head)]
    for k, name in enumerate(names):
        cells = [results[c]["iou"][k] for c in cols]
        lines.append(f"{name:<10}" + "".join(f"{'-' if v is None else f'{100 * v:.1f}':>14}" for v in cells))
    lines.append("-" * len(head))
    for key in ("miou", "macc"):
        lines.append(f"{key:<10}" + "".join(f"{100 * results[c][key]:>14.2f}" for c in cols))
    return "\n".join(lines)


def run_adapt(source_model, b_root: Path, a_root: Path, out: Path, args, **changes):
    rgb_dirs = [b_root / "raw" / a / "pano" / "rgb" for a in TRAIN_AREAS]
    settings = AdaptSettings(epochs=args.adapt_epochs, batch_size=args.batch_size, lr=args.adapt_lr,
                             warmup_steps=5, ema_decay=args.ema_decay, keep_fraction=args.keep_fraction,
                             max_threshold=0.9, train_encoder=args.train_encoder, seed=args.seed, progress=False,
                             source_weight=1.0)  # fmt: skip
    adapt(copy.deepcopy(source_model), rgb_dirs, out, settings=settings, source_dataset=DATASET,
          source_path=a_root / "processed", **changes)
    from panosamic.model import load_model

    return load_model(out / "adapted.pth").eval()


def add_recipe_flags(p: argparse.ArgumentParser, *, rooms: int, steps_help: str, adapt_epochs: int) -> None:
    """The flags of the shared recipe (data, supervised steps, adaptation, threads), also read by
    ``pinhole_to_panorama.py``; each script gives its own defaults where they differ."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--rooms", type=int, default=rooms, help="rooms per area (5 training areas, 2 test areas)")
    p.add_argument("--size", type=int, default=128, help="panorama height (width = 2 x height)")
    p.add_argument("--steps", type=int, default=120, help=steps_help)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--adapt-epochs", type=int, default=adapt_epochs)
    p.add_argument("--adapt-lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_recipe_flags(p, rooms=4, steps_help="supervised steps (source-only and oracle)", adapt_epochs=6)
    p.add_argument("--domain-a", default="default")
    p.add_argument("--domain-b", default="residential_warm")
    p.add_argument("--ema-decay", type=float, default=0.95)
    p.add_argument("--keep-fraction", type=float, default=0.5)
    p.add_argument("--select-on-val", action="store_true",
                   help="choose keep_fraction among 0.3/0.5/0.8 on B's validation labels (never on test)")
    p.add_argument("--train-encoder", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--fusion", choices=("concat", "mcbam"), default="concat",
                   help="concat: the library's single-view baseline fusion (default, 3x cheaper on CPU); mcbam")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        a = render(root, "A", args.domain_a, args.seed, DEFAULT_AREAS, args.rooms, args.size)
        b = render(root, "B", args.domain_b, args.seed + 1, DEFAULT_AREAS, args.rooms, args.size)
        bv = render(root, "B_val", args.domain_b, args.seed + 2, TEST_AREAS, args.rooms, args.size)
        ds = {k: build_dataset(DATASET, r / "processed", fold=1, split=split, modalities=("image",), augment=False)
              for k, r, split in (("a_train", a, "train"), ("a_test", a, "test"), ("b_train", b, "train"),
                                  ("b_test", b, "test"), ("b_val", bv, "test"))}  # fmt: skip
        print(f"data: {len(ds['a_train'])} A train, {len(ds['b_train'])} B train (unlabelled for adapt), "
              f"{len(ds['b_val'])} B val, {len(ds['a_test'])} A test, {len(ds['b_test'])} B test; "
              f"{time.perf_counter() - t0:.0f} s", flush=True)
        src = supervised(new_model(args.seed, args.train_encoder, args.fusion), ds["a_train"], args.steps, args.batch_size,
                         args.lr, args.seed)
        print(f"source-only trained: {time.perf_counter() - t0:.0f} s", flush=True)
        oracle = supervised(new_model(args.seed, args.train_encoder, args.fusion), ds["b_train"], args.steps, args.batch_size,
                            args.lr, args.seed)
        print(f"oracle trained: {time.perf_counter() - t0:.0f} s", flush=True)
        if args.select_on_val:
            scores = {}
            for kf in (0.3, 0.5, 0.8):
                m = run_adapt(src, b, a, root / f"adapt_kf{kf}", args, keep_fraction=kf)
                scores[kf] = evaluate(m, ds["b_val"])["miou"]
                print(f"keep_fraction {kf}: B val mIoU {100 * scores[kf]:.2f}", flush=True)
            args.keep_fraction = max(scores, key=scores.get)
            adapted = run_adapt(src, b, a, root / "adapt_final", args, keep_fraction=args.keep_fraction)
        else:
            adapted = run_adapt(src, b, a, root / "adapt", args)
        print(f"adapted: {time.perf_counter() - t0:.0f} s", flush=True)
        res = {"source_only": evaluate(src, ds["b_test"]), "adapted": evaluate(adapted, ds["b_test"]),
               "oracle": evaluate(oracle, ds["b_test"]), "source@A": evaluate(src, ds["a_test"]),
               "adapted@A": evaluate(adapted, ds["a_test"])}  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nB test (target) and A test (source), IoU % per class; {args.domain_a} -> {args.domain_b}, "
          f"seed {args.seed}, keep_fraction {args.keep_fraction}, fusion {args.fusion}, "
          f"encoder {'trained' if args.train_encoder else 'frozen'}")
    print(table(res))
    gap = res["oracle"]["miou"] - res["source_only"]["miou"]
    closed = (res["adapted"]["miou"] - res["source_only"]["miou"]) / gap if gap > 0 else float("nan")
    drop = 100 * (res["source@A"]["miou"] - res["adapted@A"]["miou"])
    print(f"gap closed: {100 * closed:.1f} % (target >= 30 %); source-domain mIoU drop: {drop:.2f} points "
          f"(target <= 2); wall {wall:.0f} s, process CPU {cpu:.0f} s")
    summary = {"source_only": res["source_only"]["miou"], "adapted": res["adapted"]["miou"],
               "oracle": res["oracle"]["miou"], "source_after": res["adapted@A"]["miou"],
               "source_before": res["source@A"]["miou"], "gap_closed": closed if np.isfinite(closed) else None, "source_drop_points": drop,
               "keep_fraction": args.keep_fraction, "seed": args.seed, "wall_s": round(wall, 1),
               "cpu_s": round(cpu, 1)}  # fmt: skip
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
