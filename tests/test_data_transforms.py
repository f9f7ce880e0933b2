"""Augmentations keep every modality and the labels aligned; flips fix the normals' x."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from panosamic.data.transforms import AugmentationParams, PanoramaAugmentation


def _sample(h: int, w: int) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """Inputs whose pixels carry their own id, so any misalignment shows."""
    ids = torch.arange(h * w, dtype=torch.float32).reshape(h, w)
    inputs = {
        "image": torch.stack([ids, ids + 0.25, ids + 0.5]),
        "depth": torch.stack([ids, ids, ids]) * 2,
        "normals": torch.stack([ids, ids + 0.125, ids + 0.375]),
    }
    return inputs, ids.long()


def _expected(array: np.ndarray, params: AugmentationParams) -> np.ndarray:
    if params.flip:
        array = array[..., ::-1]
    return np.roll(array, params.shift, axis=-1)


@settings(max_examples=60, deadline=None)
@given(
    h=st.integers(1, 6),
    w=st.integers(1, 12),
    seed=st.integers(0, 2**31 - 1),
    p=st.tuples(*[st.sampled_from([0.0, 0.25, 1.0])] * 3),
    normals_flip=st.sampled_from(["negate_x", "none"]),
)
def test_modalities_and_labels_stay_aligned(h, w, seed, p, normals_flip):
    aug = PanoramaAugmentation(p_flip=p[0], p_roll=p[1], p_permute=p[2], normals_flip=normals_flip)
    inputs, labels = _sample(h, w)
    params = aug.sample(w, torch.Generator().manual_seed(seed))
    assert 0 <= params.shift < w
    out, out_labels = aug.apply(inputs, labels, params)

    expected_ids = _expected(labels.numpy(), params)
    assert np.array_equal(out_labels.numpy(), expected_ids)
    ids = out_labels.float()
    assert torch.equal(out["depth"], torch.stack([ids, ids, ids]) * 2)
    # The image's channels are permuted (or not), its pixels are where the labels are.
    offsets = torch.tensor([0.0, 0.25, 0.5])
    perm = list(params.permutation) if params.permutation is not None else [0, 1, 2]
    assert torch.equal(out["image"], ids[None] + offsets[perm][:, None, None])
    # Normals: never permuted; x negated (255 - R) iff flipped with "negate_x".
    x = 255.0 - ids if params.flip and normals_flip == "negate_x" else ids
    assert torch.equal(out["normals"], torch.stack([x, ids + 0.125, ids + 0.375]))
    # Inputs are not modified in place.
    assert torch.equal(inputs["normals"][0], labels.float())


def test_each_augmentation_applies_with_its_probability():
    aug = PanoramaAugmentation()
    g = torch.Generator().manual_seed(123)
    draws = [aug.sample(64, g) for _ in range(4000)]
    flips = np.mean([d.flip for d in draws])
    rolls = np.mean([d.shift != 0 for d in draws])
    perms = np.mean([d.permutation is not None for d in draws])
    for rate in (flips, rolls, perms):
        assert abs(rate - 0.25) < 0.03
    shifts = np.array([d.shift for d in draws if d.shift])
    assert shifts.min() >= 1 and shifts.max() <= 63 and len(np.unique(shifts)) > 50
    assert {d.permutation for d in draws if d.permutation is not None} <= {
        (0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)
    }  # fmt: skip


def test_probabilities_zero_and_one():
    inputs, labels = _sample(3, 8)
    never = PanoramaAugmentation(p_flip=0, p_roll=0, p_permute=0)
    out, out_labels = never(inputs, labels, torch.Generator().manual_seed(0))
    assert all(torch.equal(out[k], inputs[k]) for k in inputs) and torch.equal(out_labels, labels)
    flip_only = PanoramaAugmentation(p_flip=1, p_roll=0, p_permute=0)
    out, out_labels = flip_only(inputs, labels, torch.Generator().manual_seed(0))
    assert torch.equal(out_labels, labels.flip(-1))
    assert torch.equal(out["normals"][0], 255 - inputs["normals"][0].flip(-1))


def test_flip_twice_restores_normals():
    aug = PanoramaAugmentation()
    inputs, labels = _sample(4, 10)
    params = AugmentationParams(flip=True)
    once = aug.apply(inputs, labels, params)
    twice = aug.apply(*once, params)
    assert all(torch.equal(twice[0][k], inputs[k]) for k in inputs)
    assert torch.equal(twice[1], labels)


def test_flip_mirrors_a_real_normal_field():
    """A wall facing east (n = +x) seen at heading phi appears, after the flip, at -phi facing west."""
    w = 16
    normals = torch.full((3, 1, w), 127.5)
    normals[0, 0, 4] = 255.0  # +x at column 4
    out, _ = PanoramaAugmentation().apply({"normals": normals}, torch.zeros(1, w, dtype=torch.long), AugmentationParams(flip=True))
    assert out["normals"][0, 0, w - 1 - 4] == 0.0  # -x at the mirrored column
    assert torch.all(out["normals"][0, 0, torch.arange(w) != w - 1 - 4] == 127.5)


def test_generator_for_is_deterministic_and_epoch_dependent():
    aug = PanoramaAugmentation(seed=7)
    a = [aug.sample(100, aug.generator_for(i, epoch=3)) for i in range(20)]
    b = [aug.sample(100, aug.generator_for(i, epoch=3)) for i in range(20)]
    c = [aug.sample(100, aug.generator_for(i, epoch=4)) for i in range(20)]
    d = [PanoramaAugmentation(seed=8).sample(100, PanoramaAugmentation(seed=8).generator_for(i, 3)) for i in range(20)]
    assert a == b
    assert a != c and a != d


@pytest.mark.parametrize(
    "kwargs", [{"p_flip": 1.5}, {"p_roll": -0.1}, {"normals_flip": "mirror"}, {"seed": -1}, {"p_permute": "x"}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        PanoramaAugmentation(**kwargs)
