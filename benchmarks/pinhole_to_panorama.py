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

``--arms b,c`` runs a subset (c needs b: it adapts (b)'s model); ``--pitch``, ``--roll``,
``--photos-per-canvas`` and ``--fov-jitter`` set the placement of (b) and (c) (defaults: the one above).

Second configuration ("poles"), chosen before any result of it was seen, from the reading of the first
run (the tiny model learns where classes sit on the canvas; photos placed within ±30° pitch never reach
beyond about ±60° latitude, where the oracle's floor/ceiling gains are): only the pitch range changes,
to ±75° (a 60° photo then reaches the poles), everything else as above (roll ±5°, three photos per canvas
120° apart, no field-of-view jitter, same seed, steps and adaptation), so (b') - (b) measures that one
change. Prediction written down first: (b') > (b); caveat: the photos are rendered within ±15° of the
horizon, so a photo pitched to 75° puts wall/horizon content at the pole (the canvas covers the poles,
but with content a real camera would not see there). (a) and (d) do not depend on the placement and are
those of the first run:

    uv run python benchmarks/pinhole_to_panorama.py --seed 0 --arms b,c --pitch=-75,75

Measured (seed 0): (b') 3.62 % mIoU (mAcc 8.93 %), (c') 3.84 % (mAcc 9.16 %), against (b) 2.61 % (10.58 %)
and (c) 3.45 % (11.42 %); (c') closes 1.9 % of the (b') -> (d) gap; still below (a). The prediction holds
in mIoU only, and not by the hypothesised mechanism: per class, (b) -> (b') floor 11.9 -> 12.3, ceiling
4.9 -> 2.8, wall 9.0 -> 31.9, window 6.8 -> 0.0, table 1.4 -> 0.0: the gain is the dominant class, wall
(mAcc falls), not floor/ceiling near the poles. 841 s wall, 287 s process CPU on the shared 2-core machine
(load average 2-11); rerun on the idle machine: identical figures, 148 s wall, 150 s CPU. The defaults
with ``--arms b`` give (b) 2.61 % again (the subset runs train the same models as the full run).

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
from adapt_synthetic import (  # the same model, metrics and recipe flags
    TEST_AREAS,
    TRAIN_AREAS,
    add_recipe_flags,
    evaluate,
    new_model,
    one_cycle_adamw,
    table,
)

from panosamic.adapt import AdaptSettings, adapt
from panosamic.data import PanoramaAugmentation, build_dataset
from panosamic.data.pinhole import PinholeDataset, ProjectedPinholeDataset, ProjectionSettings
from panosamic.data.pinhole_prepare import prepare_stanford_pinhole
from panosamic.data.prepare import prepare_dataset
from panosamic.synth import DEFAULT_AREAS, make_synthetic_stanford

DATASET = "stanford2d3ds"


ARMS = ("a", "b", "c", "d")


def projection(size: int, placement: str, args: argparse.Namespace | None = None) -> ProjectionSettings:
    """The placement of (a) and (b), fixed a priori (``args``: the placement flags of (b) and (c))."""
    if placement == "stretch":
        return ProjectionSettings(canvas_height=size, pitch_deg=(-30.0, 30.0), roll_deg=(-5.0, 5.0),
                                  photos_per_canvas=1, placement=placement)  # fmt: skip
    a = args or parse_args([])
    return ProjectionSettings(canvas_height=size, pitch_deg=a.pitch, roll_deg=a.roll,
                              photos_per_canvas=a.photos_per_canvas, fov_jitter_deg=a.fov_jitter,
                              placement=placement)  # fmt: skip


def _range(text: str) -> tuple[float, float]:
    """``X`` (within ±X) or ``LO,HI`` degrees."""
    try:
        parts = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected X or LO,HI degrees, got {text!r}") from None
    if len(parts) == 1:
        return (-abs(parts[0]), abs(parts[0]))
    if len(parts) != 2 or parts[0] > parts[1]:
        raise argparse.ArgumentTypeError(f"expected X or LO,HI degrees with LO <= HI, got {text!r}")
    return (parts[0], parts[1])


def _arms(text: str) -> tuple[str, ...]:
    arms = tuple(a.strip() for a in text.split(",") if a.strip())
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of a,b,c,d, got {text!r}")
    if "c" in arms and "b" not in arms:
        raise argparse.ArgumentTypeError(f"arm c adapts (b)'s model; add b (got {text!r})")
    return tuple(a for a in ARMS if a in arms)


def augmentation(seed: int) -> PanoramaAugmentation:
    return PanoramaAugmentation(p_flip=0.5, p_roll=0.5, p_permute=0.25, seed=seed)


def supervised(model, dataset, steps: int, batch: int, lr: float, seed: int):
    """One recipe for (a), (b), (d): AdamW + OneCycle, cross-entropy (ignored pixels left out); the dataset
    draws its placement and augmentation from (seed, step, sample) through ``set_epoch(step)``."""
    opt, sched = one_cycle_adamw(model, lr, steps)
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
    add_recipe_flags(p, rooms=3, steps_help="supervised steps of (a), (b), (d)", adapt_epochs=4)
    p.add_argument("--photos", type=int, default=6, help="pinhole photos per room")
    p.add_argument("--photo-size", type=int, default=64, help="photo side in pixels (square photos)")
    p.add_argument("--fov", type=float, default=60.0, help="the photos' horizontal field of view")
    p.add_argument("--arms", type=_arms, default=ARMS, help="subset of a,b,c,d to run (c needs b)")
    p.add_argument("--pitch", type=_range, default=(-30.0, 30.0), help="pitch of (b), (c): X or LO,HI deg")
    p.add_argument("--roll", type=_range, default=(-5.0, 5.0), help="roll of (b), (c): X or LO,HI deg")
    p.add_argument("--photos-per-canvas", type=int, default=3, help="photos per canvas of (b), (c)")
    p.add_argument("--fov-jitter", type=float, default=0.0, help="field-of-view jitter of (b), (c) in ± deg")
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
        place = projection(args.size, "random", args)
        print(f"arms {','.join(args.arms)}; placement of (b), (c): {place}", flush=True)
        for key, data in (
            ("a_stretch", ProjectedPinholeDataset(photos, projection(args.size, "stretch"),
                                                  augment=augmentation(args.seed), seed=args.seed)),
            ("b_projected", ProjectedPinholeDataset(photos, place, augment=augmentation(args.seed), seed=args.seed)),
            ("d_oracle", panos),
        ):  # fmt: skip
            if key[0] not in args.arms:
                continue
            models[key] = supervised(new_model(args.seed, True, "concat"), data, args.steps, args.batch_size,
                                     args.lr, args.seed)  # fmt: skip
            say(f"{key} trained")
        if "c" in args.arms:
            models["c_adapted"] = adapted(models["b_projected"], raw, root, args, place)
            say("c_adapted adapted")
        res = {k: evaluate(models[k], test) for k in ("a_stretch", "b_projected", "c_adapted", "d_oracle")
               if k in models}  # fmt: skip
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"\nheld-out panoramas (areas {', '.join(TEST_AREAS)}), IoU % per class; seed {args.seed}, "
          f"{args.rooms} rooms/area, {args.photos} photos/room at {args.fov:g} deg, {args.steps} steps")
    print(table(res))
    m = {k: v["miou"] for k, v in res.items()}
    closed = float("nan")
    if {"b_projected", "c_adapted", "d_oracle"} <= set(m):
        gap = m["d_oracle"] - m["b_projected"]
        closed = (m["c_adapted"] - m["b_projected"]) / gap if gap > 0 else float("nan")
        print(f"(c) closes {100 * closed:.1f} % of the (b) -> (d) gap")
    if {"a_stretch", "b_projected"} <= set(m):
        print(f"(b) - (a): {100 * (m['b_projected'] - m['a_stretch']):+.2f} points")
    print(f"wall {wall:.0f} s, process CPU {cpu:.0f} s")
    print(json.dumps({**{k: round(v, 4) for k, v in m.items()}, "gap_closed": closed if np.isfinite(closed) else None,
                      "seed": args.seed, "arms": ",".join(args.arms), "pitch_deg": list(place.pitch_deg),
                      "roll_deg": list(place.roll_deg), "photos_per_canvas": place.photos_per_canvas,
                      "fov_jitter_deg": place.fov_jitter_deg, "wall_s": round(wall, 1), "cpu_s": round(cpu, 1)}))  # fmt: skip
    return 0


def adapted(model, raw: Path, root: Path, args: argparse.Namespace, place: ProjectionSettings):
    """(c): (b)'s model adapted on the training areas' panoramas (no labels), the projected photos mixed in."""
    settings = AdaptSettings(epochs=args.adapt_epochs, batch_size=args.batch_size, lr=args.adapt_lr,
                             warmup_steps=5, ema_decay=0.95, keep_fraction=0.5, max_threshold=0.9,
                             train_encoder=True, seed=args.seed, progress=False, source_weight=1.0)  # fmt: skip
    rgb_dirs = [raw / a / "pano" / "rgb" for a in TRAIN_AREAS]
    source_projection = {k: getattr(place, k) for k in ("pitch_deg", "roll_deg", "photos_per_canvas", "fov_jitter_deg")}
    adapt(copy.deepcopy(model), rgb_dirs, root / "adapt", settings=settings,
          source_dataset="pinhole", source_path=root / "photos", source_projection=source_projection)
    from panosamic.model import load_model

    return load_model(root / "adapt" / "adapted.pth").eval()


if __name__ == "__main__":
    sys.exit(main())
