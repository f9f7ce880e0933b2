"""`panosamic evaluate`: 3 folds in one command, every sample once, JSON/plots/predictions, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_model, prepared_synthetic

from panosamic.cli import main
from panosamic.config import PanoSAMicConfig
from panosamic.distributed import GlobalBatchSampler, ShardSampler
from panosamic.training.checkpoint import save_checkpoint

DATASET = "stanford2d3ds"
CONFIG = PanoSAMicConfig(canvas_size=256)


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 shared cores
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> Path:
    return prepared_synthetic(tmp_path_factory.mktemp("synthetic_eval"), rooms_per_area=1, size=(64, 128), seed=1)


def _checkpoint(path: Path, fold: int, num_classes: int = 13) -> Path:
    torch.manual_seed(fold)
    model = build_model(CONFIG, vit_model="vit_tiny", modalities=("image",), num_classes=num_classes)
    save_checkpoint(path, {"epoch": 1, "model": model.state_dict(), "config": CONFIG.to_dict(),
                           "vit_model": "vit_tiny", "modalities": ["image"], "num_classes": num_classes,
                           "fold": fold, "miou": 0.1})
    return path


def _eval_args(data: Path, *extra: str) -> list[str]:
    return ["evaluate", "--dataset_path", str(data), "--dataset", DATASET, "--workers_per_gpu", "0",
            "--device", "cpu", "--no-progress", *extra]


def test_three_folds_in_one_command(synthetic: Path, tmp_path: Path, capsys) -> None:
    from panosamic.data import build_dataset

    for fold in (1, 2, 3):
        _checkpoint(tmp_path / f"ck_fold{fold}.pth", fold)
    out = tmp_path / "results.json"
    rc = main(_eval_args(synthetic, "--checkpoint", str(tmp_path / "ck_fold{fold}.pth"), "--fold", "all",
                         "--batch_size", "3", "--output", str(out), "--plots", str(tmp_path / "plots"),
                         "--save-dir", str(tmp_path / "pred")))
    assert rc == 0
    text = capsys.readouterr().out
    assert "3-fold mean (mean of the per-fold scores)" in text and "fold 2: mIoU" in text
    res = json.loads(out.read_text())
    assert [f["fold"] for f in res["folds"]] == [1, 2, 3]
    for f in res["folds"]:
        ds = build_dataset(DATASET, synthetic, fold=f["fold"], split="test", modalities=("image",), augment=False)
        labelled = sum(int((ds[i][1] != -1).sum()) for i in range(len(ds)))
        conf = np.array(f["confusion_matrix"])
        # every sample exactly once (batch 3 does not divide the split: nothing dropped)
        assert f["num_samples"] == len(ds) and conf.sum() == labelled
        assert [s["sample"] for s in f["frame_metrics"]] == ds.sample_names
        assert f["checkpoint"]["source"].endswith(f"ck_fold{f['fold']}.pth")
        assert len(list((tmp_path / "pred" / f"fold{f['fold']}").glob("*.png"))) == len(ds)
        assert (tmp_path / "plots" / f"fold{f['fold']}_iou.png").is_file()
        assert (tmp_path / "plots" / f"fold{f['fold']}_confusion.png").is_file()
    mious = [f["miou"] for f in res["folds"]]
    assert res["summary"]["mean_miou"] == pytest.approx(float(np.mean(mious)))
    assert res["versions"]["torch"] == torch.__version__
    assert res["dataset_path"] == str(synthetic.resolve())


def test_single_fold_matches_direct_computation(synthetic: Path, tmp_path: Path) -> None:
    from panosamic.data import build_dataset
    from panosamic.training.checkpoint import load_checkpoint
    ck = _checkpoint(tmp_path / "ck.pth", 2)
    out = tmp_path / "r.json"
    assert main(_eval_args(synthetic, "--checkpoint", str(ck), "--folds", "2", "--output", str(out))) == 0
    got = np.array(json.loads(out.read_text())["folds"][0]["confusion_matrix"])
    model = build_model(CONFIG, vit_model="vit_tiny", modalities=("image",), num_classes=13).eval()
    model.load_state_dict(load_checkpoint(ck)["model"])
    ds = build_dataset(DATASET, synthetic, fold=2, split="test", modalities=("image",), augment=False)
    want = np.zeros((13, 13), np.int64)
    with torch.no_grad():
        for i in range(len(ds)):
            inputs, labels = ds[i]
            pred = model([inputs])[0]["sem_preds"].argmax(0).numpy().ravel()
            lab = labels.numpy().ravel()
            keep = lab != -1
            np.add.at(want, (lab[keep], pred[keep]), 1)
    assert np.array_equal(got, want)


def test_bad_input(synthetic: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "r.json"
    ck = _checkpoint(tmp_path / "ck5.pth", 1, num_classes=5)
    assert main(_eval_args(synthetic, "--checkpoint", str(ck), "--output", str(out))) == 1
    assert "5 classes" in capsys.readouterr().err
    assert main(_eval_args(synthetic, "--checkpoint", str(tmp_path / "missing.pth"), "--output", str(out))) == 1
    assert "not found" in capsys.readouterr().err
    assert main(_eval_args(tmp_path / "nodata", "--checkpoint", str(ck), "--output", str(out))) == 1
    assert "not found" in capsys.readouterr().err or "does not exist" in capsys.readouterr().err
    assert main(_eval_args(synthetic, "--checkpoint", str(ck), "--folds", "4", "--output", str(out))) == 1
    assert "folds" in capsys.readouterr().err
    assert main(_eval_args(synthetic, "--config_path", "c.json", "--experiments_path", str(tmp_path / "e"),
                           "--modalities", "image", "--vit_model", "vit_tiny", "--output", str(out))) == 1
    assert "no previous run" in capsys.readouterr().err
    assert not out.exists()


def test_shard_sampler_never_pads() -> None:
    for n, world in [(5, 2), (4, 3), (1, 2), (7, 4)]:
        shards = [list(ShardSampler(n, r, world)) for r in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(n))


def test_global_batches_do_not_depend_on_process_count() -> None:
    one = GlobalBatchSampler(11, 4, 0, 1, seed=3)
    ranks = [GlobalBatchSampler(11, 2, r, 2, seed=3) for r in range(2)]
    for epoch in (0, 1):
        one.set_epoch(epoch)
        for r in ranks:
            r.set_epoch(epoch)
        merged = [a + b for a, b in zip(*(r.batches() for r in ranks))]
        assert merged == list(one.batches()) and len(merged) == 2
    one.set_epoch(1, skip=1)
    assert list(one) == list(one.batches())[1:]
