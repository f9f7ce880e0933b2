"""The published numbers (model card of dfki-av/PanoSAMic) in the registry, info, model cards and evaluate."""

from __future__ import annotations

import json

import pytest

from panosamic.evaluation.report import compare_with_reported, format_reported
from panosamic.model import get_reported, get_variant, list_models

#: The model card, as the issue lists it: Stanford2D3DS 3-fold mean mIoU / mAcc (%), Matterport3D mIoU (%).
STANFORD = {"vith-rgb": (59.62, 74.11), "vith-rgbd": (60.90, 73.95), "vith-rgbdn": (61.57, 74.04),
            "vitl-rgbdn": (60.90, 73.09), "vitb-rgbdn": (56.68, 70.49)}  # fmt: skip
MATTERPORT = {"vith-rgb": 46.59, "vith-rgbd": 48.43}
PARAMETERS_M = {"vith-rgb": 178, "vith-rgbd": 184, "vith-rgbdn": 191}


@pytest.mark.parametrize("key", sorted(STANFORD))
def test_registry_carries_the_stanford_three_fold_means(key: str) -> None:
    for fold in (1, 2, 3):  # the same 3-fold mean on every fold's variant: it belongs to no fold
        r = get_reported(f"stanford2d3ds-{key}-fold{fold}")
        assert r is not None and r.over == "3-fold mean"
        assert (round(100 * r.miou, 2), round(100 * r.macc, 2)) == STANFORD[key]
        assert r.trainable_parameters_m == PARAMETERS_M.get(key)


def test_registry_carries_matterport_and_nothing_for_the_test_architecture() -> None:
    for key, miou in MATTERPORT.items():
        r = get_reported(f"matterport3d-{key}")
        assert round(100 * r.miou, 2) == miou and r.macc is None
    assert all(get_reported(n) is not None for n in list_models())
    assert get_reported("test-vittiny-rgb") is None


def test_info_lists_the_published_numbers(capsys) -> None:
    from panosamic.cli import main

    assert main(["info"]) == 0
    text = capsys.readouterr().out
    line = next(x for x in text.splitlines() if "stanford2d3ds-vith-rgbdn-fold2" in x)
    assert "published 61.57 / 74.04 % (3-fold mean; 191 M trainable)" in line
    line = next(x for x in text.splitlines() if "matterport3d-vith-rgbd " in x)
    assert "published 48.43 / - %" in line
    assert main(["info", "--json"]) == 0
    models = json.loads(capsys.readouterr().out)["models"]
    assert models["stanford2d3ds-vitb-rgbdn-fold1"]["reported"]["miou"] == pytest.approx(0.5668)
    assert models["test-vittiny-rgb"]["reported"] is None


def test_model_card_shows_ours_beside_the_published_numbers() -> None:
    from panosamic.hub.card import generate_model_card

    card = generate_model_card(get_variant("stanford2d3ds-vitl-rgbdn-fold3").config,
                               metrics={"miou": 0.5901, "macc": 0.72}).content
    assert "## Published numbers" in card and "3-fold mean" in card
    assert "| published (3-fold mean) | 60.90 | 73.09 | |" in card
    assert "| this model (fold 3) | 59.01 | 72.00 | -1.89 |" in card
    tiny = generate_model_card(get_variant("test-vittiny-rgb").config).content
    assert "Published numbers" not in tiny


def _fold(fold: int, miou: float, macc: float, variant: str = "stanford2d3ds-vith-rgbd") -> dict:
    reported = get_reported(f"{variant}-fold{fold}").to_dict()
    return {"fold": fold, "miou": miou, "macc": macc, "checkpoint": {"variant": f"{variant}-fold{fold}", "reported": reported}}


def test_evaluate_compares_only_over_the_three_folds() -> None:
    folds = [_fold(1, 0.62, 0.75), _fold(2, 0.58, 0.70), _fold(3, 0.60, 0.74)]
    c = compare_with_reported(folds)
    assert c["variant"] == "stanford2d3ds-vith-rgbd" and c["over"] == "3-fold mean"
    assert c["ours_miou"] == pytest.approx(0.60) and c["published_miou"] == pytest.approx(0.6090)
    assert c["delta_miou"] == pytest.approx(0.60 - 0.6090) and c["delta_macc"] == pytest.approx(0.73 - 0.7395)
    assert "mIoU ours 60.00 % vs published 60.90 % (-0.90 points)" in format_reported(c)
    assert compare_with_reported(folds[:2]) is None  # a 3-fold mean is no fold's number
    mixed = folds[:2] + [_fold(3, 0.6, 0.7, "stanford2d3ds-vith-rgb")]
    assert compare_with_reported(mixed) is None
    mp = {"fold": 2, "miou": 0.47, "macc": 0.6, "checkpoint": {"variant": "matterport3d-vith-rgbd",
                                                              "reported": get_reported("matterport3d-vith-rgbd").to_dict()}}
    c = compare_with_reported([mp])
    assert c["delta_miou"] == pytest.approx(0.47 - 0.4843) and "published_macc" not in c


@pytest.mark.slow
def test_evaluate_over_three_folds_prints_ours_beside_the_published(tmp_path, capsys) -> None:
    """Three run folders named like the published variant (vit_tiny weights inside): the summary puts the
    3-fold mean beside the model card's, with the difference."""
    from conftest import prepared_synthetic
    from test_evaluate import _checkpoint, _eval_args

    from panosamic.cli import main

    data = prepared_synthetic(tmp_path / "data", rooms_per_area=1, size=(64, 128), seed=1)
    for fold in (1, 2, 3):
        run = tmp_path / f"stanford2d3ds-vith-rgb-fold{fold}"
        run.mkdir()
        _checkpoint(run / "model_best.pth", fold)
    out = tmp_path / "r.json"
    assert main(_eval_args(data, "--checkpoint", str(tmp_path / "stanford2d3ds-vith-rgb-fold{fold}"), "--fold", "all",
                           "--output", str(out))) == 0  # fmt: skip
    text = capsys.readouterr().out
    summary = json.loads(out.read_text())["summary"]
    rep = summary["reported"]
    assert rep["variant"] == "stanford2d3ds-vith-rgb" and rep["published_miou"] == pytest.approx(0.5962)
    assert rep["delta_miou"] == pytest.approx(summary["mean_miou"] - 0.5962)
    assert rep["delta_macc"] == pytest.approx(summary["mean_macc"] - 0.7411)
    assert "stanford2d3ds-vith-rgb against the model card (3-fold mean): mIoU ours" in text
    assert f"vs published 59.62 % ({100 * rep['delta_miou']:+.2f} points)" in text
