"""Your own data: the folder dataset (prepare, loaders, every validation error), fine-tuning to new
classes (--init-from), the training record and the leakage refusal, and the README's "Your own data"
blocks run as written."""

from __future__ import annotations

import json
import random
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from test_tutorial import block_commands, readme_block

from panosamic.data import build_dataset, dataset_folds, get_dataset_info, prepare_folder
from panosamic.data.folder import FolderDataError, scan_raw_folder
from panosamic.data.record import TrainOverlapError, check_train_overlap, training_record

ROOT = Path(__file__).resolve().parents[1]
CLASSES = [
    ("floor", [128, 64, 0]),
    ("wall", [200, 200, 200]),
    ("ceiling", [0, 0, 255]),
    ("plant", [0, 160, 0]),
]
IGNORE = 255
SIZE = (64, 32)  # width, height (2:1)


def _labels(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    lab = np.zeros((h, w), np.int64)
    lab[: h // 3], lab[h // 3 : 2 * h // 3] = 2, 1
    x0 = int(rng.integers(0, w - 8))
    lab[h // 2 : h // 2 + 5, x0 : x0 + 8] = 3
    lab[:2, : 4 + int(rng.integers(0, 6))] = IGNORE  # unlabelled pixels
    return lab


def make_folder_dataset(root: Path, n: int = 4, depth: bool = True, seed: int = 0) -> Path:
    """A raw folder dataset: 4 classes, ignore pixels, pano_0's labels 16-bit, jpg/png/webp images, depth."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    classes = [{"name": name, "color": color} for name, color in CLASSES]
    (root / "classes.json").write_text(json.dumps({"classes": classes, "ignore_index": IGNORE}))
    colors = np.array([c for _, c in CLASSES])
    w, h = SIZE
    for i in range(n):
        lab = _labels(rng, w, h)
        img = np.clip(colors[np.clip(lab, 0, 3)] + rng.integers(-20, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        ext = ("png", "jpg", "webp")[i % 3]
        Image.fromarray(img).save(
            root / "images" / f"pano_{i}.{ext}", **({"lossless": True} if ext == "webp" else {})
        )
        Image.fromarray(lab.astype(np.uint16 if i == 0 else np.uint8)).save(root / "labels" / f"pano_{i}.png")
        if depth:
            (root / "depth").mkdir(exist_ok=True)
            d = (1000 + 3000 * np.linspace(0, 1, h)[:, None] * np.ones((1, w))).astype(np.uint16)
            d[0, :3] = 0  # missing
            Image.fromarray(d).save(root / "depth" / f"pano_{i}.png")
    return root


def raw_labels(raw: Path, name: str) -> np.ndarray:
    lab = np.asarray(Image.open(raw / "labels" / f"{name}.png")).astype(np.int64)
    return np.where(lab == IGNORE, -1, lab)


# ----------------------------------------------------------------------------- prepare and load
def test_prepare_writes_what_the_loaders_read(tmp_path):
    raw = make_folder_dataset(tmp_path / "raw")
    assert Image.open(raw / "labels/pano_0.png").mode.startswith("I")  # a 16-bit label file
    out = tmp_path / "p"
    report = prepare_folder(raw, out, folds=2, seed=3, progress=False)
    assert (report.num_samples, report.folds) == (4, 2)
    info = get_dataset_info("folder", out)
    assert info.class_names == tuple(n for n, _ in CLASSES) and info.palette.tolist() == [
        c for _, c in CLASSES
    ]
    assert dataset_folds("folder", out) == [1, 2]
    names = {f"pano_{i}" for i in range(4)}
    for fold in (1, 2):
        train = build_dataset(
            "folder", out, fold=fold, split="train", modalities=("image", "depth"), augment=False
        )
        test = build_dataset(
            "folder", out, fold=fold, split="test", modalities=("image", "depth"), augment=False
        )
        assert set(train.sample_names).isdisjoint(test.sample_names)
        assert set(train.sample_names) | set(test.sample_names) == names
        assert 0 < train.depth_threshold <= 4.0  # metres: raw mm * 0.001, 99.5 % of the training pixels
        for i, name in enumerate(test.sample_names):
            inputs, labels = test[i]
            assert (
                inputs["image"].shape == (3, SIZE[1], SIZE[0])
                and inputs["depth"].shape == inputs["image"].shape
            )
            assert np.array_equal(labels.numpy(), raw_labels(raw, name))  # ignore -> -1, 16-bit read alike
    # deterministic: the same seed gives the same folds; fold k tests on every k-th name of the seeded shuffle
    again = prepare_folder(raw, tmp_path / "p2", folds=2, seed=3, progress=False)
    assert (again.out / "splits.json").read_text() == (out / "splits.json").read_text()
    order = sorted(names)
    random.Random(3).shuffle(order)
    for fold in (1, 2):
        assert build_dataset("folder", out, fold=fold, split="test").sample_names == sorted(
            order[fold - 1 :: 2]
        )
    with pytest.raises(ValueError, match="split must be one of"):
        build_dataset("folder", out, fold=1, split="dev")


def test_given_split_lists_and_rgb_only_folders(tmp_path):
    raw = make_folder_dataset(tmp_path / "raw", n=4, depth=False)
    (raw / "splits").mkdir()
    (raw / "splits/train.txt").write_text("pano_0\npano_1\n")
    (raw / "splits/val.txt").write_text("pano_2.webp\n")  # a file name is fine too
    (raw / "splits/test.txt").write_text("# held out\npano_3\n")
    out = tmp_path / "p"
    prepare_folder(raw, out, progress=False)
    assert dataset_folds("folder", out) == [1]
    ds = {
        s: build_dataset("folder", out, fold=1, split=s, modalities="image") for s in ("train", "val", "test")
    }
    assert {s: d.sample_names for s, d in ds.items()} == {
        "train": ["pano_0", "pano_1"],
        "val": ["pano_2"],
        "test": ["pano_3"],
    }
    with pytest.raises(ValueError, match="has no depth"):
        build_dataset("folder", out, fold=1, split="test", modalities=("image", "depth"))
    with pytest.raises(FolderDataError, match="--folds 3: the raw folder has splits/ lists"):
        prepare_folder(raw, tmp_path / "q", folds=3, progress=False)


def test_a_rerun_resumes_and_other_settings_are_refused(tmp_path):
    raw = make_folder_dataset(tmp_path / "raw", depth=False)
    out = tmp_path / "p"
    prepare_folder(raw, out, folds=2, progress=False)
    first = (out / "splits.json").read_text()
    prepare_folder(raw, out, folds=2, progress=False)  # the same settings: done again, same result
    assert (out / "splits.json").read_text() == first
    with pytest.raises(
        ValueError, match=r"was prepared with folds=2 but this run asks for folds=3; .*--overwrite"
    ):
        prepare_folder(raw, out, folds=3, progress=False)
    prepare_folder(raw, out, folds=3, overwrite=True, progress=False)
    assert dataset_folds("folder", out) == [1, 2, 3]


# ----------------------------------------------------------------------------- every validation error
def _label(raw: Path, name: str, array: np.ndarray) -> None:
    Image.fromarray(array).save(raw / "labels" / f"{name}.png")


BROKEN = {
    "value outside the classes": (
        lambda r: _label(r, "pano_1", np.full((32, 64), 7, np.uint8)),
        r"labels/pano_1\.png: value 7 \(2048 pixels, first at x=0 y=0\); expected a class index 0\.\.3 or the ignore_index 255",
    ),
    "16-bit value outside the classes": (
        lambda r: _label(r, "pano_0", np.full((32, 64), 300, np.uint16)),
        r"labels/pano_0\.png: value 300 .*expected a class index 0\.\.3 or the ignore_index 255",
    ),
    "label size": (
        lambda r: _label(r, "pano_2", np.zeros((16, 32), np.uint8)),
        r"labels/pano_2\.png: size 32x16; expected the image's 64x32",
    ),
    "aspect": (
        lambda r: Image.new("RGB", (60, 32)).save(r / "images/pano_1.jpg"),
        r"images/pano_1\.jpg: size 60x32 is not 2:1; expected an equirectangular panorama",
    ),
    "missing label": (
        lambda r: (r / "labels/pano_2.png").unlink(),
        r"labels/pano_2\.png is missing; expected a label for pano_2\.webp",
    ),
    "duplicate name": (
        lambda r: Image.new("RGB", (64, 32)).save(r / "images/pano_1.png"),
        r"images/pano_1\.png: duplicate name 'pano_1' \(also pano_1\.jpg\); expected one file per name",
    ),
    "colour label": (
        lambda r: Image.new("RGB", (64, 32)).save(r / "labels/pano_3.png"),
        r"labels/pano_3\.png: mode RGB; expected a single-channel 8- or 16-bit class-index PNG",
    ),
    "label without image": (
        lambda r: _label(r, "extra", np.zeros((32, 64), np.uint8)),
        r"labels/extra\.png: label without an image; expected images/extra\.jpg\|png\|webp",
    ),
    "missing depth": (
        lambda r: (r / "depth/pano_3.png").unlink(),
        r"depth/pano_3\.png is missing; expected one depth file for every image",
    ),
    "depth size": (
        lambda r: Image.fromarray(np.ones((16, 32), np.uint16)).save(r / "depth/pano_0.png"),
        r"depth/pano_0\.png: size 32x16; expected the image's 64x32",
    ),
    "bad colour": (
        lambda r: (r / "classes.json").write_text(
            json.dumps({"classes": [{"name": "a", "color": [0, 0, 300]}]})
        ),
        r"classes\.json: classes\[0\] \(a\): color \[0, 0, 300\]; expected \[r, g, b\] with integers 0\.\.255",
    ),
    "ignore index is a class": (
        lambda r: (r / "classes.json").write_text(
            json.dumps({"classes": [{"name": n, "color": c} for n, c in CLASSES], "ignore_index": 2})
        ),
        r"classes\.json: ignore_index 2; expected an integer in 4\.\.65535 \(not a class index 0\.\.3\)",
    ),
    "unknown name in a split": (
        lambda r: ((r / "splits").mkdir(), (r / "splits/train.txt").write_text("pano_0\nnope\n")),
        r"splits/train\.txt: line 2: 'nope' is not in images/",
    ),
    "name in two splits": (
        lambda r: (
            (r / "splits").mkdir(),
            (r / "splits/train.txt").write_text("pano_0\npano_1\n"),
            (r / "splits/test.txt").write_text("pano_1\n"),
        ),
        r"splits/test\.txt: line 1: 'pano_1' is already in train\.txt; expected each name in one split",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_every_problem_is_one_line_before_anything_is_written(tmp_path, case):
    raw = make_folder_dataset(tmp_path / "raw")
    spoil, message = BROKEN[case]
    spoil(raw)
    out = tmp_path / "p"
    with pytest.raises((ValueError, FileNotFoundError), match=message) as e:
        prepare_folder(raw, out, folds=2, progress=False)
    assert "\n" not in str(e.value)
    assert not out.exists()  # checked before anything is written


def test_fold_count_and_cli_refusals(tmp_path):
    raw = make_folder_dataset(tmp_path / "raw", n=3, depth=False)
    with pytest.raises(FolderDataError, match=r"--folds 5: expected 2\.\.3 for 3 panoramas"):
        prepare_folder(raw, tmp_path / "p", progress=False)  # default 5 folds, 3 panoramas
    assert len(scan_raw_folder(raw)[3]) == 3
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "panosamic.cli",
            "prepare",
            "stanford2d3ds",
            "--raw",
            str(raw),
            "--out",
            str(tmp_path / "q"),
            "--folds",
            "2",
        ],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode != 0 and "--folds: only for `prepare folder`" in done.stderr


# ----------------------------------------------------------------------------- fine-tuning to new classes
def _tiny(num_classes: int, modalities=("image",)):
    from panosamic.config import PanoSAMicConfig
    from panosamic.model import PanoSAMic

    cfg = PanoSAMicConfig.from_json(ROOT / "config/config_tiny.json").model_config(
        vit="vit_tiny", modalities=modalities, num_classes=num_classes
    )
    return PanoSAMic(cfg)


def test_init_from_a_13_class_checkpoint_to_4_classes(tmp_path):
    import panosamic
    from panosamic.training.init_from import init_from

    source = panosamic.create_model("test-vittiny-rgb")  # 13 classes
    source.save_pretrained(tmp_path / "thirteen")
    torch.manual_seed(1)
    model = _tiny(4)
    fresh = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from(model, tmp_path / "thirteen")
    line = report.line()
    assert "class head re-initialised (13 classes -> 4" in line and "\n" not in line
    assert "semantic_decoder.decoder_head.3" in line
    src, now = source.state_dict(), model.state_dict()
    for key, value in now.items():
        if key in report.reinitialised:
            assert torch.equal(value, fresh[key]) and value.shape != src[key].shape
        elif key.startswith(("feature_fuser.", "semantic_decoder.", "image_encoder.")):
            assert torch.equal(value, src[key]), key
    assert report.copied > 10 and all(k.startswith("semantic_decoder.") for k in report.reinitialised)
    assert not any(p.requires_grad for n, p in model.named_parameters() if n.startswith("image_encoder."))
    with torch.no_grad():
        assert model([{"image": torch.rand(3, 128, 256) * 255}])[0]["sem_preds"].shape[0] == 4
    same = _tiny(13)
    assert "(13 classes, as the checkpoint)" in init_from(same, tmp_path / "thirteen").line()
    with pytest.raises(ValueError, match=r"another architecture: modalities .*only the classes may differ"):
        init_from(_tiny(4, ("image", "depth")), tmp_path / "thirteen")


@pytest.mark.slow
def test_train_init_from_says_so_and_records_it(tmp_path, capsys):
    import panosamic
    from panosamic.training.trainer import Trainer, TrainSettings

    panosamic.create_model("test-vittiny-rgb").save_pretrained(tmp_path / "thirteen")
    prepare_folder(
        make_folder_dataset(tmp_path / "raw", depth=False), tmp_path / "p", folds=2, progress=False
    )
    settings = TrainSettings(
        dataset="folder",
        dataset_path=str(tmp_path / "p"),
        config_path=str(ROOT / "config/config_tiny.json"),
        experiments_path=str(tmp_path / "runs"),
        vit_model="vit_tiny",
        modalities=("image",),
        batch_size=2,
        workers=0,
        progress=False,
        init_from=str(tmp_path / "thirteen"),
    )
    result = Trainer(settings).fit()
    assert "class head re-initialised (13 classes -> 4" in capsys.readouterr().out
    ck = torch.load(result.run_dir / "model_best.pth", map_location="cpu", weights_only=True)
    assert ck["init_from"] == str(tmp_path / "thirteen") and ck["num_classes"] == 4
    assert ck["training_record"]["dataset"] == "folder" and ck["training_record"]["fold"] == 1


# ----------------------------------------------------------------------------- no silent leakage
class _Config:
    def __init__(self, dataset, fold):
        self.dataset, self.fold = dataset, fold


def test_training_record_and_the_overlap_refusal(tmp_path):
    names = ["pano_0", "pano_2", "pano_3"]
    record = training_record("folder", tmp_path, 1, "train", names)
    assert record["num_samples"] == 3 and len(record["samples_digest"]) == 64
    assert check_train_overlap(record, None, "folder", tmp_path, 1, "test", ["pano_1", "pano_4"]) is None
    assert check_train_overlap(record, None, "stanford2d3ds", tmp_path, 1, "test", names) is None  # another dataset
    with pytest.raises(TrainOverlapError) as e:
        check_train_overlap(record, None, "folder", tmp_path, 2, "test", ["pano_1", "pano_2", "pano_3"])
    assert str(e.value) == (
        "refusing to evaluate: the checkpoint was trained on folder fold 1, which holds 2 of the 3 panoramas of "
        "fold 2's test split (pano_2, pano_3); scores on them would be inflated. Evaluate the fold it was trained "
        "for, or pass --allow-train-overlap to score anyway"
    )
    assert "pano_2" in check_train_overlap(
        record, None, "folder", tmp_path, 2, "test", ["pano_2"], allow=True
    )
    # no record (a published variant, a Hub export): Stanford's folds share areas, the recorded fold decides
    stanford = _Config("stanford2d3ds", 1)
    fold2 = ["area_2/a", "area_4/b"]
    message = check_train_overlap(None, stanford, "stanford2d3ds", tmp_path, 2, "test", fold2, allow=True)
    assert (
        "stanford2d3ds fold 1, which holds 2 of the 2 areas of fold 2's test split (area_2, area_4)"
        in message
    )
    assert (
        check_train_overlap(None, stanford, "stanford2d3ds", tmp_path, 1, "test", ["area_5a/x", "area_5b/y"])
        is None
    )
    assert check_train_overlap(None, _Config(None, None), "stanford2d3ds", tmp_path, 2, "test", fold2) is None


# ----------------------------------------------------------------------------- the README, as written
def _run_readme_commands(cli, tmp_path: Path) -> Path:
    """The README's commands, as written, each a fresh ``panosamic`` process (forked by the fault suite's
    ``cli`` server: the same command line without a new interpreter's imports)."""
    data = tmp_path / "data"
    make_folder_dataset(data / "mydata")
    for command in block_commands(readme_block("your-own-data")):
        argv = shlex.split(command.replace("data/", f"{data}/"))
        assert argv[:3] == ["uv", "run", "panosamic"]
        done = cli.run([*argv[3:], "--no-progress"], cwd=ROOT)
        assert done.rc == 0, f"{command}\n{done.out[-2000:]}\n{done.err[-3000:]}"
    return data


@pytest.mark.slow
def test_readme_commands_prepare_train_evaluate_and_the_metrics_are_a_count(cli, tmp_path):
    data = _run_readme_commands(cli, tmp_path)
    prepared, runs = data / "mydata_prepared", data / "mydata_runs"
    metrics = json.loads((runs / "m.json").read_text())
    assert metrics["class_names"] == [n for n, _ in CLASSES] and metrics["dataset"] == "folder"
    (run,) = list((runs / "folder").glob("*_config_tiny_F1_Vy_M1"))
    ck = torch.load(run / "model_best.pth", map_location="cpu", weights_only=True)
    train_names = build_dataset("folder", prepared, fold=1, split="train", modalities="image").sample_names
    assert (
        ck["training_record"]["samples"] == sorted(train_names)
        and ck["model_config"]["class_names"][3] == "plant"
    )

    # the scores equal an independent count on the saved predictions
    done = cli.run([
        "evaluate",
        "--dataset",
        "folder",
        "--dataset-path",
        str(prepared),
        "--checkpoint",
        str(run),
        "--fold",
        "1",
        "--output",
        str(tmp_path / "again.json"),
        "--save-dir",
        str(tmp_path / "pred"),
        "--no-progress",
    ], cwd=ROOT)  # fmt: skip
    assert done.rc == 0, done.err[-3000:]
    fold = json.loads((tmp_path / "again.json").read_text())["folds"][0]
    palette = np.array([c for _, c in CLASSES])
    confusion = np.zeros((4, 4), np.int64)
    test_names = build_dataset("folder", prepared, fold=1, split="test", modalities="image").sample_names
    for name in test_names:
        rgb = np.asarray(Image.open(tmp_path / "pred" / "fold1" / f"{name}.png").convert("RGB")).astype(
            np.int64
        )
        pred = np.argmin(((rgb[..., None, :] - palette) ** 2).sum(-1), -1)
        assert np.all((palette[pred] == rgb).all(-1))  # every saved pixel is a class colour
        truth = raw_labels(data / "mydata", name)
        keep = truth >= 0
        np.add.at(confusion, (truth[keep], pred[keep]), 1)
    tp = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - tp
    iou = {n: tp[k] / union[k] for k, (n, _) in enumerate(CLASSES) if union[k] > 0}
    assert fold["iou_per_class"].keys() >= iou.keys()
    assert all(abs(fold["iou_per_class"][n] - v) < 1e-9 for n, v in iou.items())
    assert abs(fold["miou"] - np.mean(list(iou.values()))) < 1e-9  # mean over classes with a non-zero union
    recall = [tp[k] / confusion[k].sum() for k in range(4) if confusion[k].sum() > 0]
    assert abs(fold["macc"] - np.mean(recall)) < 1e-9
    assert fold["num_pixels"] == int(confusion.sum())

    # fold 2's test panoramas were fold 1's training panoramas: refused, then allowed
    leak = ["evaluate", "--dataset", "folder", "--dataset-path", str(prepared), "--checkpoint", str(run),
            "--fold", "2", "--output", str(tmp_path / "leak.json")]
    refused = cli.run([*leak, "--no-progress"], cwd=ROOT)
    assert refused.rc != 0 and "refusing to evaluate: the checkpoint was trained on folder fold 1" in refused.err
    assert "--allow-train-overlap" in refused.err and not (tmp_path / "leak.json").exists()
    allowed = cli.run([*leak, "--allow-train-overlap", "--no-progress"], cwd=ROOT)
    assert allowed.rc == 0 and "warning (--allow-train-overlap)" in allowed.err


@pytest.mark.slow
def test_readme_python_block_runs_as_written(tmp_path):
    data = tmp_path / "data"
    make_folder_dataset(data / "mydata")
    code = readme_block("your-own-data-python", "python").replace('"data/', f'"{data}/')
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=False, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "('floor', 'wall', 'ceiling', 'plant') 2" in done.stdout
    assert list((data / "mydata_runs" / "folder").glob("*/model_best.pth"))


def test_a_published_fold_1_model_is_refused_on_fold_2_before_anything_loads(tmp_path, capsys, monkeypatch):
    from conftest import prepared_synthetic

    from panosamic.cli import main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # nothing may be downloaded: the refusal comes first
    data = prepared_synthetic(tmp_path / "stanford", rooms_per_area=1, size=(32, 64), seed=1)
    args = ["evaluate", "--dataset", "stanford2d3ds", "--dataset-path", str(data), "--no-progress",
            "--checkpoint", "stanford2d3ds-vith-rgb-fold1", "--output", str(tmp_path / "m.json")]  # fmt: skip
    capsys.readouterr()
    assert main([*args, "--fold", "2"]) == 1
    err = capsys.readouterr().err
    assert "refusing to evaluate: the checkpoint was trained on stanford2d3ds fold 1" in err
    assert "(area_2, area_4)" in err and "--allow-train-overlap" in err and "\n" not in err.strip()
    assert not (tmp_path / "m.json").exists()
