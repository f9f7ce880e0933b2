"""Pinhole -> panorama benchmark: panoramic models trained from ordinary photos (offline, CPU, deterministic).

The synthetic generator renders rooms as panoramas and, from the same camera position, as pinhole
photos (``make_synthetic_stanford(pinhole_views=...)``, 60° horizontal field of view), written like the
real Stanford2D3DS download and prepared with ``prepare stanford2d3ds-pinhole``. Fold 1: photos and
panoramas of the training areas (1-4, 6); the test panoramas of areas 5a, 5b. The tiny architecture
(``vit_tiny`` on a 256 canvas, single view, ``concat`` fusion, encoder trained too: as in
``adapt_synthetic.py``) is trained four ways with one recipe (AdamW, cross-entropy, flip/roll/permute):

a. **stretch**: each photo resized onto the whole 128x256 canvas (labels likewise);
b. **projected**: photos projected onto the canvas by :mod:`panosamic.geometry` at a random yaw, pitch
   in ±30°, roll in ±5°, three photos per canvas 120° apart; uncovered pixels black and ignored;
c. **projected + adapt**: (b) adapted with ``panosamic.adapt.adapt`` on the training areas' panoramas
   without their labels, the projected photos mixed in as the labelled source (``source_dataset="pinhole"``);
d. **oracle**: the labelled training panoramas.

All four are tested on the same held-out panoramas (areas 5a, 5b); hyper-parameters are fixed a priori
and test labels choose nothing. Prints one table and a final JSON line.

    uv run python benchmarks/pinhole_to_panorama.py --seed 0

Measured (seed 0, defaults): held-out mIoU (a) stretch 5.52 %, (b) projected 2.61 %, (c) adapted 3.45 %,
(d) oracle 15.08 % ((c) closes 6.7 % of the (b) -> (d) gap; (b) is below (a): see the README's "What the
pinhole benchmark shows"). 2241 s wall, 666 s process CPU on a 2-core machine shared with other heavy jobs.
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
from adapt_synthetic import TEST_AREAS, TRAIN_AREAS, evaluate, new_model, table  # the same model and metrics

from panosamic.adapt import AdaptSettings, adapt
from panosamic.data import PanoramaAugmentation, build_dataset
from panosamic.data.pinhole import PinholeDataset, ProjectedPinholeDataset, ProjectionSettings
from panosamic.data.pinhole_prepare import prepare_stanford_pinhole
from panosamic.data.prepare import prepare_dataset
from panosamic.synth import DEFAULT_AREAS, make_synthetic_stanford

DATASET = "stanford2d3ds"


def projection(size: int, placement: str) -> ProjectionSettings:
    """The placement of (a) and (b), fixed a priori."""
    return ProjectionSettings(canvas_height=size, pitch_deg=(-30.0, 30.0), roll_deg=(-5.0, 5.0),
                              photos_per_canvas=3 if placement == "random" else 1, placement=placement)  # fmt: skip


def augmentation(seed: int) -> PanoramaAugmentation:
    return PanoramaAugmentation(p_flip=0.5, p_roll=0.5, p_permute=0.25, seed=seed)


def supervised(model, dataset, steps: int, batch: int, lr: float, seed: int):
    """One recipe for (a), (b), (d): AdamW + OneCycle, cross-entropy (ignored pixels left out); the dataset
    draws its placement and augmentation from (seed, step, sample) through ``set_epoch(step)``."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        dataset.set_epoch(step)
        items = [dataset[i] for i in torch.randint(0, len(dataset), (batch,), generator=g).tolist()]
        outs = model([x for x, _ in items])
        logits = torch.stack([o["sem_preds"] for o in outs])
        loss = F.cross_entropy(logits, torch.stack([y for _, y in items]), ignore_index=-1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="work folder (default: a temporary one)")
    p.add_argument("--rooms", type=int, default=3, help="rooms per area (5 training areas, 2 test areas)")
    p.add_argument("--photos", type=int, default=6, help="pinhole photos per room")
    p.add_argument("--photo-size", type=int, default=64, help="photo side in pixels (square photos)")
    p.add_argument("--fov", type=float, default=60.0, help="the photos' horizontal field of view")
    p.add_argument("--size", type=int, default=128, help="panorama height (width = 2 x height)")
    p.add_argument("--steps", type=int, default=120, help="supervised steps of (a), (b), (d)")
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--adapt-epochs", type=int, default=4)
    p.add_argument("--adapt-lr", type=float, default=5e-4)
    p.add_argument("--threads", type=int, default=2)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    t0, c0 = time.perf_counter(), time.process_time()

    def say(what: str) -> None:
        print(f"{what}: {time.perf_counter() - t0:.0f} s", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        raw = root / "raw"
        make_synthetic_stanford(raw, areas=DEFAULT_AREAS, rooms_per_area=args.rooms, size=(args.size, 2 * args.size),
                                seed=args.seed, pinhole_views=args.photos, overwrite=True,
                                pinhole_size=(args.photo_size, args.photo_size), pinhole_fov_deg=args.fov)  # fmt: skip
        prepare_dataset(DATASET, raw, root / "panos", scale=1.0, progress=False, overwrite=True)
        prepare_stanford_pinhole(raw, root / "photos", scale=1.0, progress=False, overwrite=True)
        photos = PinholeDataset(root / "photos", fold=1, split="train")
        panos = build_dataset(DATASET, root / "panos", fold=1, split="train", modalities=("image",),
                              augment=augmentation(args.seed))
        test = build_dataset(DATASET, root / "panos", fold=1, split="test", modalities=("image",), augment=False)
        say(f"data: {len(photos)} training photos, {len(panos)} training panoramas, {len(test)} test panoramas")

        models = {}
        for key, data in (
            ("a_stretch", ProjectedPinholeDataset(photos, projection(args.size, "stretch"),
                                                  augment=augmentation(args.seed), seed=args.seed)),
            ("b_projected", ProjectedPinholeDataset(photos, projection(args.size, "random"),
                                                    augment=augmentation(args.seed), seed=args.seed)),
            ("d_oracle", panos),
        ):  # fmt: skip
            models[key] = supervised(new_model(args.seed, True, "concat"), data, args.steps, args.batch_size,
                                     args.lr, args.seed)  # fmt: skip
            say(f"{key} trained")
        settings = AdaptSettings(epochs=args.adapt_epochs, batch_size=args.batch_size, lr=args.adapt_lr,
                                 warmup_steps=5, ema_decay=0.95, keep_fraction=0.5, max_threshold=0.9,
                                 train_encoder=True, seed=args.seed, progress=False, source_weight=1.0)  # fmt: skip
        rgb_dirs = [raw / a / "pano" / "rgb" for a in TRAIN_AREAS]
        place = projection(args.size, "random")
        source_projection = {k: getattr(place, k) for k in ("pitch_deg", "roll_deg", "photos_per_canvas")}
        adapt(copy.deepcopy(models["b_projected"]), rgb_dirs, root / "adapt", settings=settings,
              source_dataset="pinhole", source_path=root / "photos", source_projection=source_projection)
        from panosamic.model import load_model

        models["c_adapted"] = load_model(root / "adapt" / "adapted.pth").eval()
        say("c_adapted adapted")
        res = {k: evaluate(models[k], test) for k in ("a_stretch", "b_projected", "c_adapted", "d_oracle")}
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nheld-out panoramas (areas {', '.join(TEST_AREAS)}), IoU % per class; seed {args.seed}, "
          f"{args.rooms} rooms/area, {args.photos} photos/room at {args.fov:g} deg, {args.steps} steps")
    print(table(res))
    m = {k: v["miou"] for k, v in res.items()}
    gap = m["d_oracle"] - m["b_projected"]
    closed = (m["c_adapted"] - m["b_projected"]) / gap if gap > 0 else float("nan")
    print(f"(b) - (a): {100 * (m['b_projected'] - m['a_stretch']):+.2f} points; (c) closes {100 * closed:.1f} % of "
          f"the (b) -> (d) gap; wall {wall:.0f} s, process CPU {cpu:.0f} s")
    print(json.dumps({**{k: round(v, 4) for k, v in m.items()}, "gap_closed": closed if np.isfinite(closed) else None,
                      "seed": args.seed, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
