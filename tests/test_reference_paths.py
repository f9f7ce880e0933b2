"""The reference's users, on their own paths: a training checkpoint written by the reference's trainer
(``{"epoch", "model", "best_miou", "miou", "macc"}``, the full state dict under ``"model"``, with the
newer reference's ``_cached_prompt_encoder.*`` copies) evaluated, predicted and exported with the
reference's flags; the published Hub layout through ``--checkpoint dfki-av/PanoSAMic --subfolder``;
SAM weights from ``--sam_weights_path`` or the cache.

The checkpoint is the test architecture (vit_tiny, canvas 256) in the reference's key layout (the
same names as ``state_dict_vit_b_rgb.tsv``, fewer encoder blocks), filled by ``make_weights``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import COMPAT, make_tiny_model, prepared_synthetic, tiny_model_config
from make_weights import read_table, tensor_for

from panosamic.cli import main
from panosamic.config import PanoSAMicConfig

ROOT = Path(__file__).resolve().parents[1]
DATASET = "stanford2d3ds"
K = 13
CONFIG_NAME = "config_stanford2d3ds_dv"  # the reference's config stem, here with a 256 canvas
RUN = f"20260101_000000_{CONFIG_NAME}_F1_Vy_M1"  # experiment id: config stem, fold, last char of vit, #modalities
REFERENCE_KEYS = ("epoch", "model", "best_miou", "miou", "macc")


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _layout(keys) -> set[str]:
    return {re.sub(r"^image_encoder\.blocks\.\d+\.", "image_encoder.blocks.N.", k) for k in keys}


def reference_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """The full state dict the reference's trainer saves, for vit_tiny, filled by make_weights."""
    shapes = {k: tuple(v.shape) for k, v in make_tiny_model(semantic_only=False).state_dict().items()}
    table = [name for name, _ in read_table(str(COMPAT / "state_dict_vit_b_rgb.tsv"))]
    assert _layout(shapes) == _layout(table)  # the reference's names, _cached_prompt_encoder.* included
    state = {k: torch.from_numpy(tensor_for(k, s, seed)) for k, s in shapes.items()}
    cached = "_cached_prompt_encoder."  # the newer reference's copy of the one prompt encoder
    return {k: state["prompt_encoder." + k[len(cached):]] if k.startswith(cached) else v for k, v in state.items()}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("reference")
    data = prepared_synthetic(root / "data", rooms_per_area=1, size=(64, 128), seed=1)
    cfg = root / "config" / f"{CONFIG_NAME}.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(PanoSAMicConfig(canvas_size=256).to_dict()))
    state = reference_state_dict(seed=5)
    run = root / "experiments" / DATASET / RUN
    run.mkdir(parents=True)
    torch.save({"epoch": 7, "model": state, "best_miou": 0.25, "miou": 0.25, "macc": 0.31}, run / "model_best.pth")
    assert sorted(torch.load(run / "model_best.pth", weights_only=True)) == sorted(REFERENCE_KEYS)
    return {"root": root, "data": data, "config": cfg, "run": run, "state": state}


@pytest.fixture(scope="module")
def expected(setup) -> tuple[np.ndarray, float, float]:
    """Fold 1's confusion matrix, mIoU and mAcc, computed here: the reference's state dict loaded with
    torch's own strict load, argmax per pixel, numpy bincount (once per module)."""
    from panosamic.data import build_dataset
    from panosamic.model import PanoSAMic

    full = PanoSAMic(tiny_model_config(semantic_only=False)).eval()
    full.load_state_dict(setup["state"], strict=True)
    # the semantic path only (evaluate's model is semantic-only; SAM's automatic masks of the full
    # model would cost seconds and are not scored): the same tensors, strictly loaded again
    model = PanoSAMic(tiny_model_config()).eval()
    model.load_state_dict({k: v for k, v in full.state_dict().items() if k in model.state_dict()}, strict=True)
    ds = build_dataset(DATASET, setup["data"], fold=1, split="test", modalities=("image",), augment=False)
    conf = np.zeros(K * K, np.int64)
    with torch.no_grad():
        for i in range(len(ds)):
            inputs, labels = ds[i]
            pred = model([inputs])[0]["sem_preds"].argmax(0).numpy().ravel()
            lab = labels.numpy().ravel()
            keep = lab != -1
            conf += np.bincount(lab[keep] * K + pred[keep], minlength=K * K)
    conf = conf.reshape(K, K)
    inter, target, union = np.diag(conf), conf.sum(1), conf.sum(1) + conf.sum(0) - np.diag(conf)
    miou = float(np.mean(inter[union > 0] / union[union > 0]))
    macc = float(np.mean(inter[target > 0] / target[target > 0]))
    return conf, miou, macc


def _check_result(setup, expected, out: Path, text: str) -> None:
    conf, miou, macc = expected
    fold = json.loads(out.read_text())["folds"][0]
    assert np.array_equal(np.array(fold["confusion_matrix"]), conf)
    assert fold["miou"] == pytest.approx(miou, abs=1e-12) and fold["macc"] == pytest.approx(macc, abs=1e-12)
    assert f"fold 1: mIoU {100 * miou:.2f} %  mAcc {100 * macc:.2f} %" in text
    assert fold["checkpoint"]["source"] == str(setup["run"] / "model_best.pth")
    assert fold["checkpoint"]["epoch"] == 7


@pytest.mark.slow
def test_reference_script_path_with_reference_flags(setup, expected, tmp_path):
    """`python panosamic/evaluation/evaluate.py ...` exactly as the model card shows (a fresh process)."""
    out = tmp_path / "r.json"
    cmd = [sys.executable, "panosamic/evaluation/evaluate.py", "--dataset", DATASET, "--fold", "1",
           "--vit_model", "vit_tiny", "--modalities", "image", "--config_path", str(setup["config"]),
           "--batch_size", "1", "--num_gpus", "1", "--workers_per_gpu", "0", "--dataset_path", str(setup["data"]),
           "--experiments_path", str(setup["root"] / "experiments"), "--output", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_result(setup, expected, out, proc.stdout)


def test_cli_evaluate_run_folder_with_architecture_flags(setup, expected, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["evaluate", "--checkpoint", str(setup["run"]), "--config", str(setup["config"]), "--vit", "vit_tiny",
               "--modalities", "image", "--dataset", DATASET, "--dataset-path", str(setup["data"]), "--workers", "0",
               "--device", "cpu", "--no-progress", "--output", str(out)])
    assert rc == 0
    _check_result(setup, expected, out, capsys.readouterr().out)


def test_without_the_flags_one_line_names_them(setup, tmp_path, capsys):
    out = tmp_path / "r.json"
    rc = main(["evaluate", "--checkpoint", str(setup["run"]), "--dataset", DATASET, "--dataset-path",
               str(setup["data"]), "--workers", "0", "--device", "cpu", "--no-progress", "--output", str(out)])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and not out.exists()
    assert "does not record its architecture" in err and "--config FILE --vit VIT --modalities M" in err
    assert "Traceback" not in err and len(err.splitlines()) == 1


def test_a_recorded_architecture_still_refuses_contradicting_flags(setup, tmp_path):
    from panosamic.model import load_model

    ours = tmp_path / "ours.pth"
    torch.save({"epoch": 1, "model": setup["state"], "config": PanoSAMicConfig(canvas_size=256).to_dict(),
                "vit_model": "vit_tiny", "modalities": ["image"], "num_classes": K}, ours)
    with pytest.raises(ValueError, match="num_classes: given 20, the checkpoint says 13"):
        load_model(ours, config=tiny_model_config(num_classes=20))
    partial = tmp_path / "partial.pth"  # records only some facts: those must agree too
    torch.save({"epoch": 1, "model": setup["state"], "num_classes": K}, partial)
    with pytest.raises(ValueError, match="num_classes: given 20, the checkpoint says 13"):
        load_model(partial, config=tiny_model_config(num_classes=20))
    assert load_model(partial, config=tiny_model_config()).num_classes == K


def test_model_card_loader_keeps_the_checkpoints_instance_branch(setup):
    """``from_pretrained_panosamic`` (the card's call, semantic_only=False) on a run folder: the full state
    dict's prompt encoder and mask decoder are used, no SAM file is needed."""
    from panosamic.model import PanoSAMic

    model = PanoSAMic.from_pretrained_panosamic(setup["run"], config_path=setup["config"], vit_model="vit_tiny",
                                                modalities="image", num_classes=K)
    assert not model.semantic_only
    got = model.state_dict()
    for k, v in setup["state"].items():
        assert torch.equal(got[k], v), k
    # the older reference saved no _cached_ copy: the prompt encoder is taken under its one name
    older = {k: v for k, v in setup["state"].items() if not k.startswith("_cached_prompt_encoder.")}
    path = setup["root"] / "older.pth"
    torch.save({"epoch": 1, "model": older, "best_miou": 0.1, "miou": 0.1, "macc": 0.1}, path)
    again = PanoSAMic.from_pretrained_panosamic(path, config_path=setup["config"], vit_model="vit_tiny",
                                                modalities="image", num_classes=K)
    assert torch.equal(again.state_dict()["_cached_prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"],
                       setup["state"]["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"])


def test_predict_and_export_with_architecture_flags(setup, tmp_path, capsys):
    from PIL import Image

    from panosamic.model import load_model

    pano = tmp_path / "pano.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)).save(pano)
    ck = str(setup["run"] / "model_best.pth")
    arch = ["--config", str(setup["config"]), "--vit", "vit_tiny", "--modalities", "image", "--num-classes", str(K)]
    assert main(["predict", str(pano), "--checkpoint", ck, *arch, "--out", str(tmp_path / "pred"), "--device", "cpu",
                 "--no-progress"]) == 0
    labels = np.array(Image.open(next((tmp_path / "pred").rglob("*labels*.png"))))
    ref = load_model(ck, config=tiny_model_config())
    x = torch.from_numpy(np.array(Image.open(pano))).permute(2, 0, 1).float()
    with torch.no_grad():
        want = ref([{"image": x}])[0]["sem_preds"].argmax(0).numpy()
    assert np.array_equal(labels, want)
    assert main(["export", ck, str(tmp_path / "hub")]) == 1
    assert "does not record its architecture" in capsys.readouterr().err
    assert main(["export", ck, str(tmp_path / "hub"), *arch, "--dataset", DATASET, "--fold", "1"]) == 0
    exported = load_model(tmp_path / "hub")
    assert exported.config.dataset == DATASET and exported.config.fold == 1
    assert all(torch.equal(v, setup["state"][k]) for k, v in exported.trainable_state_dict().items())


@pytest.fixture
def hub(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from hub_server import LoopbackHub, hub_environment

    with LoopbackHub() as server, hub_environment(server.url, str(tmp_path / "hf-cache")):
        yield server


def test_hub_checkpoint_and_subfolder_and_cached_sam_weights(hub, setup, expected, tmp_path, monkeypatch):
    """``--checkpoint dfki-av/PanoSAMic --subfolder NAME`` (the published repo id, here on a loopback Hub)
    with and without ``--sam_weights_path``; without it the SAM file comes from the cache."""
    from panosamic.model import PanoSAMic, load_model

    sub = "stanford2d3ds-vittiny-rgb-fold1"
    model = load_model(setup["run"], config=tiny_model_config().replace(dataset=DATASET))
    model.push_to_hub("dfki-av/PanoSAMic", subfolder=sub)
    sam = {k: v for k, v in setup["state"].items() if k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder."))}
    sam_file = tmp_path / "sam" / "sam_vit_tiny.pth"
    sam_file.parent.mkdir()
    torch.save(sam, sam_file)
    common = ["evaluate", "--checkpoint", "dfki-av/PanoSAMic", "--subfolder", sub, "--dataset", DATASET,
              "--dataset_path", str(setup["data"]), "--workers_per_gpu", "0", "--device", "cpu", "--no-progress"]
    assert main([*common, "--output", str(tmp_path / "a.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())["folds"][0]
    assert np.array_equal(np.array(a["confusion_matrix"]), expected[0])
    assert a["checkpoint"]["source"] == f"dfki-av/PanoSAMic/{sub}"
    # the card's call with the instance branch: SAM's file given, or found in the cache when not given
    given = PanoSAMic.from_pretrained_panosamic("dfki-av/PanoSAMic", subfolder=sub, sam_weights_path=sam_file)
    monkeypatch.setenv("PANOSAMIC_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    with pytest.raises(FileNotFoundError, match="no SAM weights for vit_tiny"):
        PanoSAMic.from_pretrained_panosamic("dfki-av/PanoSAMic", subfolder=sub)
    (tmp_path / "cache" / "sam").mkdir()
    torch.save(sam, tmp_path / "cache" / "sam" / "sam_vit_tiny.pth")
    cached = PanoSAMic.from_pretrained_panosamic("dfki-av/PanoSAMic", subfolder=sub)
    for m in (given, cached):
        assert not m.semantic_only
        sd = m.state_dict()
        assert all(torch.equal(sd[k], v) for k, v in setup["state"].items())


def test_published_layout_with_reference_flags_and_sam_weights(hub, setup, expected, tmp_path, monkeypatch, capsys):
    """The newer reference's ``--checkpoint dfki-av/PanoSAMic --subfolder NAME`` on the published layout
    (only ``model.safetensors`` with the trainable tensors, no config.json): the architecture from the
    flags, the encoder from ``--sam_weights_path``, or from the SAM cache when the flag is left out."""
    from huggingface_hub import HfApi
    from safetensors.torch import save_file

    trainable = {k: v for k, v in setup["state"].items() if k.startswith(("feature_fuser.", "semantic_decoder."))}
    save_file(trainable, tmp_path / "model.safetensors")
    api = HfApi()
    api.create_repo("dfki-av/PanoSAMic", exist_ok=True)
    api.upload_file(path_or_fileobj=str(tmp_path / "model.safetensors"), path_in_repo="pub/model.safetensors",
                    repo_id="dfki-av/PanoSAMic")
    sam = {k: v for k, v in setup["state"].items() if k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder."))}
    sam_file = tmp_path / "sam_vit_tiny.pth"
    torch.save(sam, sam_file)
    common = ["evaluate", "--checkpoint", "dfki-av/PanoSAMic", "--subfolder", "pub", "--dataset", DATASET,
              "--dataset_path", str(setup["data"]), "--config_path", str(setup["config"]), "--vit_model", "vit_tiny",
              "--modalities", "image", "--workers_per_gpu", "0", "--batch_size", "1", "--device", "cpu",
              "--no-progress"]
    want = expected[0]
    assert main([*common, "--sam_weights_path", str(sam_file), "--output", str(tmp_path / "a.json")]) == 0
    monkeypatch.setenv("PANOSAMIC_CACHE", str(tmp_path / "cache"))
    assert main([*common, "--output", str(tmp_path / "b.json")]) == 1  # no SAM file given, none cached
    assert "no SAM weights for vit_tiny" in capsys.readouterr().err
    (tmp_path / "cache" / "sam").mkdir(parents=True)
    shutil.copy(sam_file, tmp_path / "cache" / "sam" / "sam_vit_tiny.pth")
    assert main([*common, "--output", str(tmp_path / "b.json")]) == 0
    for name in ("a.json", "b.json"):
        fold = json.loads((tmp_path / name).read_text())["folds"][0]
        assert np.array_equal(np.array(fold["confusion_matrix"]), want)
        assert fold["checkpoint"]["source"] == "dfki-av/PanoSAMic/pub"
