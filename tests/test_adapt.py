"""Tests of ``panosamic.adapt``: pseudo-label thresholds, the mean teacher, mask refinement, the loop."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from conftest import make_tiny_model
from PIL import Image

from panosamic.adapt.augment import PhotometricAugmentation, StrongAugmentation
from panosamic.adapt.pseudo_labels import (
    ConfidenceHistogram,
    class_thresholds,
    make_pseudo_labels,
    refine_pseudo_labels,
)
from panosamic.adapt.settings import AdaptSettings
from panosamic.adapt.teacher import ema_update, make_teacher
from panosamic.constants import IGNORE_INDEX


def probs_from(conf: torch.Tensor, label: torch.Tensor, k: int) -> torch.Tensor:
    """K x H x W probabilities whose max is ``conf`` at class ``label`` (rest spread evenly)."""
    p = ((1 - conf) / (k - 1)).unsqueeze(0).repeat(k, 1, 1)
    p.scatter_(0, label.unsqueeze(0), conf.unsqueeze(0))
    return p


# ---------------------------------------------------------------------------- thresholds
def test_class_balanced_thresholds_keep_rare_low_confidence_classes():
    # class 0: 900 pixels at 0.95..0.99; class 1 (rare, hard): 100 pixels at 0.40..0.59; class 2: none
    conf = torch.cat([torch.linspace(0.95, 0.99, 900), torch.linspace(0.40, 0.59, 100)]).view(1, 1000)
    label = torch.cat([torch.zeros(900, dtype=torch.long), torch.ones(100, dtype=torch.long)]).view(1, 1000)
    probs = probs_from(conf, label, 3)
    hist = ConfidenceHistogram(3)
    hist.update(probs)
    assert hist.counts.sum(1).tolist() == [900, 100, 0]
    t = class_thresholds(hist.counts, keep_fraction=0.5, max_threshold=0.9)
    assert t[0] == pytest.approx(0.9)  # capped: confident pixels always count
    assert 0.49 - 1e-3 <= t[1] <= 0.50 + 1e-3  # the median of class 1's confidences (to a bin)
    assert t[2] == pytest.approx(0.9)  # no pixel: the cap
    labels = make_pseudo_labels(probs, t)
    kept = labels[labels != IGNORE_INDEX]
    assert (kept == 0).sum() == 900  # all of class 0 (above the cap)
    assert 48 <= int((kept == 1).sum()) <= 52  # half of the rare class survives...
    assert int((make_pseudo_labels(probs, torch.full((3,), 0.9)) == 1).sum()) == 0  # ...a global 0.9 drops it all
    assert (labels[0, 900:][conf[0, 900:] < t[1]] == IGNORE_INDEX).all()  # ignore below


def test_thresholds_respect_bounds_and_valid_mask():
    conf = torch.full((2, 4), 0.6)
    label = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 1]])
    probs = probs_from(conf, label, 2)
    hist = ConfidenceHistogram(2)
    valid = torch.tensor([[True, True, False, False], [True, True, True, True]])
    hist.update(probs, valid)
    assert hist.counts.sum().item() == 6
    t = class_thresholds(hist.counts, keep_fraction=1.0, max_threshold=0.9, min_threshold=0.65)
    assert torch.allclose(t, torch.tensor([0.65, 0.65]))  # the floor wins over the 0.6 quantile
    labels = make_pseudo_labels(probs, torch.tensor([0.2, 0.2]), valid)
    assert (labels[~valid] == IGNORE_INDEX).all() and (labels[valid] == label[valid]).all()
    with pytest.raises(ValueError, match="keep_fraction"):
        class_thresholds(hist.counts, keep_fraction=0.0)
    with pytest.raises(ValueError, match="thresholds must have shape"):
        make_pseudo_labels(probs, torch.zeros(3))


# ---------------------------------------------------------------------------- mean teacher
def test_ema_update_moves_only_trained_parameters():
    student = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2), torch.nn.Linear(2, 2))
    student[2].requires_grad_(False)  # a frozen part
    teacher = make_teacher(student)
    assert not any(p.requires_grad for p in teacher.parameters()) and not teacher.training
    before = copy.deepcopy(teacher.state_dict())
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
        student[1].running_mean.fill_(4.0)
        student[1].num_batches_tracked.fill_(7)
    ema_update(teacher, student, decay=0.9)
    sd, ss = teacher.state_dict(), student.state_dict()
    for k in ("0.weight", "0.bias", "1.weight", "1.running_mean"):
        assert torch.allclose(sd[k], 0.9 * before[k] + 0.1 * ss[k]), k
    assert torch.equal(sd["2.weight"], before["2.weight"])  # frozen: untouched
    assert int(sd["1.num_batches_tracked"]) == 7  # integer buffers are copied
    ema_update(teacher, student, decay=0.0)
    assert torch.allclose(teacher.state_dict()["0.weight"], ss["0.weight"])
    with pytest.raises(ValueError, match="decay"):
        ema_update(teacher, student, decay=1.5)


# ---------------------------------------------------------------------------- mask refinement
def test_mask_refinement_majority_of_kept_pixels():
    labels = torch.full((4, 6), IGNORE_INDEX, dtype=torch.long)
    labels[0, :3] = torch.tensor([2, 2, 5])  # mask A (rows 0-1, cols 0-2): majority 2 among kept pixels
    labels[3, 5] = 4  # outside every mask: untouched
    mask_a = torch.zeros(4, 6, dtype=torch.bool)
    mask_a[:2, :3] = True
    mask_b = torch.zeros(4, 6, dtype=torch.bool)  # no kept pixel inside: changes nothing
    mask_b[2:, :2] = True
    small = torch.zeros(4, 6, dtype=torch.bool)  # smaller, inside A, applied later: its own majority wins
    small[0, 2] = True
    out = refine_pseudo_labels(labels, [mask_a, mask_b, {"segmentation": small.numpy(), "area": 1}])
    expected = labels.clone()
    expected[:2, :3] = 2
    expected[0, 2] = 5
    assert torch.equal(out, expected)
    assert torch.equal(refine_pseudo_labels(labels, []), labels)


# ---------------------------------------------------------------------------- augmentation
def test_strong_view_is_aligned_and_reproducible():
    g = torch.Generator().manual_seed(0)
    image = torch.randint(1, 256, (3, 16, 32), generator=g).float()
    image[:, :2] = 0  # an unscanned cap
    labels = torch.arange(32).repeat(16, 1)
    aug = StrongAugmentation()
    a = aug({"image": image}, labels, torch.Generator().manual_seed(3))
    b = aug({"image": image}, labels, torch.Generator().manual_seed(3))
    assert torch.equal(a[0]["image"], b[0]["image"]) and torch.equal(a[1], b[1])
    geo_in, geo_lab = aug.geometric({"image": image}, labels, torch.Generator().manual_seed(3))
    assert torch.equal(a[1], geo_lab)  # labels follow the geometric part only
    assert (a[0]["image"][:, geo_in["image"].sum(0) == 0] == 0).all()  # caps stay black
    changed = PhotometricAugmentation(p=1.0)(image, torch.Generator().manual_seed(1))
    assert not torch.allclose(changed, image) and changed.min() >= 0 and changed.max() <= 255


# ---------------------------------------------------------------------------- the loop
def _write_target(folder, images):
    folder.mkdir(parents=True, exist_ok=True)
    for i, im in enumerate(images):
        Image.fromarray(im).save(folder / f"pano_{i}.png")


def _scene(seed: int):
    from panosamic.synth import render_room

    room = render_room(seed, (128, 256))
    return room.rgb, torch.from_numpy(room.class_map)


class _Labelled(torch.utils.data.Dataset):
    def __init__(self, items):
        self.items = items

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _agreement(model, images, labels) -> float:
    with torch.no_grad():
        out = model([{"image": torch.from_numpy(im).permute(2, 0, 1).float()} for im in images])
    pred = torch.stack([o["sem_preds"] for o in out]).argmax(1)
    valid = labels >= 0
    return float((pred[valid] == labels[valid]).float().mean())


@pytest.fixture(scope="module")
def shift_case(tmp_path_factory):
    """Source: two labelled synthetic panoramas; target: the same rooms, darker and warmer (a tiny shift)."""
    root = tmp_path_factory.mktemp("adapt")
    model = make_tiny_model(seed=1)
    scenes = [_scene(s) for s in (11, 12)]
    labels = torch.stack([y for _, y in scenes])
    tgt = [np.clip(im.astype(float) * np.array([0.8, 0.7, 0.55]), 1, 255).astype(np.uint8) for im, _ in scenes]
    for im, t in zip(tgt, [im for im, _ in scenes]):
        im[t.sum(-1) == 0] = 0  # the unscanned caps stay black
    _write_target(root / "target", tgt)
    source = _Labelled([({"image": torch.from_numpy(im).permute(2, 0, 1).float()}, y) for im, y in scenes])
    return root, model, source, tgt, labels


def _run(model, root, source, out, resume=False, **changes):
    from panosamic.adapt.data import TargetPanoramas
    from panosamic.adapt.trainer import AdaptTrainer

    s = AdaptSettings(epochs=2, batch_size=1, lr=3e-3, warmup_steps=0, ema_decay=0.5, progress=False,
                      keep_fraction=0.8, **changes)  # fmt: skip
    target = TargetPanoramas(root / "target", model.modalities, model.native_size)
    return AdaptTrainer(copy.deepcopy(model), target, out, s, source=source, resume=resume)


@pytest.mark.slow
def test_adapt_improves_target_agreement_and_resume_equals_uninterrupted(shift_case, tmp_path):
    from panosamic.model import load_model

    root, model, source, tgt, labels = shift_case
    before = _agreement(model, tgt, labels)
    full = _run(model, root, source, tmp_path / "full")
    result = full.fit()
    assert result.finished and result.global_step == 4
    adapted = load_model(tmp_path / "full" / "adapted.pth")
    after = _agreement(adapted, tgt, labels)
    assert after > before + 0.02, (before, after)
    hub = load_model(tmp_path / "full")  # the Hub layout loads too, with the same weights
    assert all(torch.equal(a, b) for a, b in zip(hub.state_dict().values(), adapted.state_dict().values()))
    # stopped mid-epoch 2 (step 3), then resumed: the same weights as the uninterrupted run
    part = _run(model, root, source, tmp_path / "part", max_steps=3)
    assert not part.fit().finished and (tmp_path / "part" / "model_last.pth").is_file()
    with pytest.raises(ValueError, match="unfinished run"):
        _run(model, root, source, tmp_path / "part")
    resumed = _run(model, root, source, tmp_path / "part", resume=True).fit()
    assert resumed.finished and resumed.global_step == 4
    a = full.teacher.state_dict()
    b = load_model(tmp_path / "part" / "adapted.pth").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in b), [k for k in b if not torch.equal(a[k], b[k])][:3]
    assert result.thresholds == resumed.thresholds


def test_settings_and_inputs_errors(tmp_path):
    from panosamic.adapt.data import TargetPanoramas

    with pytest.raises(ValueError, match="keep_fraction"):
        AdaptSettings(keep_fraction=1.5)
    with pytest.raises(ValueError, match="ema_decay"):
        AdaptSettings(ema_decay=1.0)
    with pytest.raises(FileNotFoundError, match="not found"):
        TargetPanoramas(tmp_path / "nowhere", ("image",), (128, 256))
    _write_target(tmp_path / "t", [np.full((8, 16, 3), 100, np.uint8)])
    with pytest.raises(ValueError, match="depth folder"):
        TargetPanoramas(tmp_path / "t", ("image", "depth"), (128, 256))
    ds = TargetPanoramas(tmp_path / "t", ("image",), (128, 256))
    x, i = ds[0]
    assert i == 0 and tuple(x["image"].shape) == (3, 128, 256)


def test_cli_help_is_fast_and_parses():
    import argparse
    import subprocess
    import sys

    from panosamic.adapt.cli import add_parser, settings_from_args

    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["adapt", "pano/", "--checkpoint", "run/", "--out", "o", "--epochs", "3",
                              "--no-refine-masks", "--keep-fraction", "0.3"])  # fmt: skip
    s = settings_from_args(args)
    assert s.epochs == 3 and s.refine_masks is False and s.keep_fraction == 0.3 and args._run is not None
    code = "import sys, panosamic.adapt.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


@pytest.mark.slow
def test_sam_masks_are_computed_cached_and_refine(tmp_path):
    from conftest import random_panorama

    from panosamic.adapt.masks import MaskCache, compute_sam_masks
    from panosamic.modeling.instance import InstanceSettings

    model = make_tiny_model(semantic_only=False)
    model.instance_settings = InstanceSettings(points_per_side=4, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    target = _Labelled([(random_panorama(seed=i), i) for i in range(2)])
    cache = compute_sam_masks(model, target)
    assert len(cache) == 2 and all(len(cache[i]) > 0 for i in range(2))
    masks = cache[0]
    assert all(m.dtype == torch.bool and tuple(m.shape) == (128, 256) for m in masks)
    assert [int(m.sum()) for m in masks] == sorted((int(m.sum()) for m in masks), reverse=True)  # largest first
    cache.save(tmp_path / "masks.pt")
    back = MaskCache.load(tmp_path / "masks.pt", 2)
    assert all(torch.equal(a, b) for i in range(2) for a, b in zip(cache[i], back[i]))
    with pytest.raises(ValueError, match="holds masks for 2 panoramas"):
        MaskCache.load(tmp_path / "masks.pt", 3)
    labels = torch.zeros(128, 256, dtype=torch.long)
    labels[masks[-1]] = 3
    labels[0, 0] = IGNORE_INDEX
    refined = refine_pseudo_labels(labels, masks)
    assert (refined[masks[-1]] == 3).all()  # the smallest mask is applied last and keeps its majority
    with pytest.raises(ValueError, match="instance branch"):
        compute_sam_masks(make_tiny_model(), target)
