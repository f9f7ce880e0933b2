"""ToF-360: synthetic raw layout -> prepare -> load (ids mapped onto Stanford2D3DS's classes) -> evaluate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from panosamic.cli import main
from panosamic.data.classes import STANFORD2D3DS
from panosamic.data.tof360_codec import SCENES, decode_tof360
from panosamic.synth.tof360 import make_synthetic_tof360

SIZE = (32, 64)


def test_label_table() -> None:
    c = STANFORD2D3DS.class_index
    ids = np.array([[1, 40, 2, 20, 42, 3, 18, 4, 5, 7, 8, 12, 14, 17, 26, 31],
                    [0, 33, 34, 6, 9, 99, 1000, 41, 0, 0, 0, 0, 0, 0, 0, 0]])  # fmt: skip
    want = np.array([[c("wall"), c("wall"), c("ceiling"), c("ceiling"), c("ceiling"), c("floor"), c("floor"),
                      c("sofa"), c("chair"), c("door"), c("window"), c("table"), c("column"), c("beam"),
                      c("board"), c("bookcase")],
                     [-1, -1, -1] + [c("clutter")] * 5 + [-1] * 8])  # fmt: skip
    assert np.array_equal(decode_tof360(ids), want)
    with pytest.raises(RuntimeError, match="ids must be in"):
        decode_tof360(np.array([[70000]]))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, list]:
    root = tmp_path_factory.mktemp("tof360")
    samples = make_synthetic_tof360(root / "raw", rooms_per_scene=1, size=SIZE, seed=2)
    assert main(["prepare", "tof360", "--raw", str(root / "raw"), "--out", str(root / "processed"),
                 "--no-progress"]) == 0  # fmt: skip
    return root / "processed", samples


def test_prepare_and_load_map_the_labels(prepared) -> None:
    from panosamic.data import build_dataset

    processed, samples = prepared
    assert sorted(p.name for p in processed.iterdir() if p.is_dir() and p.name in SCENES) == sorted(SCENES)
    ds = build_dataset("tof360", processed, fold=1, split="test", modalities=("image", "depth", "normals"))
    assert len(ds) == len(samples) == 4
    written = {(s.scene, s.name): s for s in samples}
    seen_classes = set()
    for i, name in enumerate(ds.sample_names):
        scene, sample = name.split("/")
        inputs, labels = ds[i]
        want = written[(scene, sample)].class_map
        assert np.array_equal(labels.numpy(), want), name  # every id back to its Stanford class, void -> -1
        assert set(inputs) == {"image", "depth", "normals"} and inputs["depth"].shape == (3, *SIZE)
        seen_classes |= set(np.unique(want).tolist())
    assert {-1, STANFORD2D3DS.class_index("wall"), STANFORD2D3DS.class_index("floor")} <= seen_classes
    with pytest.raises(ValueError, match="fold"):
        build_dataset("tof360", processed, fold=2, split="test")


def test_evaluate_a_stanford_model_on_tof360(prepared, tmp_path: Path, capsys) -> None:
    from test_evaluate import CONFIG, _checkpoint  # noqa: F401 (a 13-class vit_tiny checkpoint)

    processed, _ = prepared
    ck = _checkpoint(tmp_path / "stanford.pth", 1)
    out = tmp_path / "tof.json"
    torch.set_num_threads(1)
    assert main(["evaluate", "--dataset", "tof360", "--dataset-path", str(processed), "--checkpoint", str(ck),
                 "--fold", "1", "--output", str(out), "--device", "cpu", "--no-progress", "--workers", "0"]) == 0
    res = json.loads(out.read_text())
    assert res["dataset"] == "tof360" and res["class_names"] == list(STANFORD2D3DS.class_names)
    fold = res["folds"][0]
    assert fold["num_samples"] == 4 and "sphere" in fold and len(fold["latitude_bands"]) == 6
    assert "fold 1: mIoU" in capsys.readouterr().out


def test_tof360_config_is_the_stanford_architecture() -> None:
    from panosamic.config import PanoSAMicConfig

    tof = PanoSAMicConfig.from_json("config/config_tof360_dv.json").model_config(vit="vit_h", modalities="rgbdn", num_classes=13)
    stanford = PanoSAMicConfig.from_json("config/config_stanford2d3ds_dv.json").model_config(
        vit="vit_h", modalities="rgbdn", num_classes=13)
    assert tof == stanford


def test_synth_cli_writes_the_tof360_layout(tmp_path: Path, capsys) -> None:
    assert main(["synth", "--layout", "tof360", "--out", str(tmp_path / "cli"), "--size", "16x32",
                 "--rooms-per-area", "1", "--seed", "5", "--quiet"]) == 0  # fmt: skip
    make_synthetic_tof360(tmp_path / "api", rooms_per_scene=1, size=(16, 32), seed=5)
    files = sorted(p.relative_to(tmp_path / "api") for p in (tmp_path / "api").rglob("*") if p.is_file())
    assert len(files) == 4 * 4 and all(str(f).split("/")[0] in SCENES for f in files)
    for f in files:
        assert (tmp_path / "cli" / f).read_bytes() == (tmp_path / "api" / f).read_bytes()
    assert main(["synth", "--layout", "tof360", "--out", str(tmp_path / "x"), "--areas", "area_1"]) == 1
    assert "--areas area_1: ToF-360's scenes are Hospital" in capsys.readouterr().err
