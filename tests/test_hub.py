"""Hub integration, offline: save / push / pull through a loopback Hub, the published layout,
the offline cache, export and push CLIs, and refusal of wrong checkpoints.

Tiny models (vit_tiny, canvas 256) everywhere except the parity test (ViT-B, marked ``parity``).
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import torch
from conftest import build_model
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file

from panosamic.cli import main
from panosamic.config import ModelConfig, PanoSAMicConfig
from panosamic.hub.files import saved_prefixes, write_hub_folder
from panosamic.hub.loading import HubOfflineError
from panosamic.model import PanoSAMic

sys.path.insert(0, str(Path(__file__).parent))
from hub_server import LoopbackHub, hub_environment

CFG = PanoSAMicConfig(canvas_size=256)
TOKEN = "hf_loopbackSecretToken123"
SUB = "stanford2d3ds-vittiny-rgb-fold1"
FIXTURES = Path(__file__).parent / "fixtures"


def tiny(modalities=("image",), num_classes=13, semantic_only=True, seed=0, **kw) -> PanoSAMic:
    torch.manual_seed(seed)
    return build_model(
        CFG, vit_model="vit_tiny", modalities=modalities, num_classes=num_classes, semantic_only=semantic_only, **kw
    )


@pytest.fixture(scope="module")
def sam_file(tmp_path_factory) -> Path:
    """A Meta-format SAM checkpoint (image_encoder.*, prompt_encoder.*, mask_decoder.*) for vit_tiny."""
    full = tiny(semantic_only=False, seed=123)
    sd = {k: v for k, v in full.state_dict().items() if k.startswith(("image_encoder.", "prompt_encoder.", "mask_decoder."))}
    path = tmp_path_factory.mktemp("sam") / "sam_vit_tiny.pth"
    torch.save(sd, path)
    return path


@pytest.fixture(scope="module")
def model(sam_file) -> PanoSAMic:
    m = tiny(seed=7, dataset="stanford2d3ds")
    m.load_sam_weights(sam_file)
    return m.eval()


@pytest.fixture(scope="module")
def pano() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return {"image": torch.randint(0, 256, (3, 64, 128), generator=g).float()}


def same_trainable(a: PanoSAMic, b: PanoSAMic) -> bool:
    sa, sb = a.trainable_state_dict(), b.trainable_state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_hub_folders_hold_the_encoder_only_for_the_test_architecture():
    assert saved_prefixes(ModelConfig(vit="vit_b")) == ("feature_fuser.", "semantic_decoder.")
    assert "image_encoder." in saved_prefixes(ModelConfig(vit="vit_tiny", canvas_size=256))


# ---------------------------------------------------------------------------- saving
def test_save_pretrained_writes_trainable_config_and_card(model, tmp_path):
    model.save_pretrained(tmp_path, metrics={"miou": 0.4123, "macc": 0.5, "fold": 1}, repo_id="me/pano", subfolder=SUB)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    tensors = load_file(tmp_path / "model.safetensors")
    encoder = {k for k in model.state_dict() if k.startswith("image_encoder.")}
    assert tensors.keys() == model.trainable_state_dict().keys() | encoder  # the test architecture: self-contained
    assert not any(k.startswith(("prompt_encoder.", "mask_decoder.")) for k in tensors)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert (cfg["vit"], cfg["modalities"], cfg["num_classes"]) == ("vit_tiny", ["image"], 13)
    assert cfg["native_size"] == [128, 256] and cfg["dataset"] == "stanford2d3ds"
    assert cfg["class_names"][0] == "beam" and len(cfg["palette"]) == 13
    assert ModelConfig.from_dict(cfg) == model.config
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.library_name == "panosamic" and card.data.pipeline_tag == "image-segmentation"
    assert card.data.license == "apache-2.0" and "panoramic" in card.data.tags
    assert card.data.datasets == ["stanford2d3ds"]
    values = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert values == {"mean_iou": 41.23, "mean_accuracy": 50.0}
    assert {r.dataset_config for r in card.data.eval_results} == {"fold1"}
    assert f'subfolder="{SUB}"' in card.text and '"me/pano"' in card.text


def test_write_refuses_frozen_tensors(tmp_path):
    config = CFG.model_config(vit="vit_b", modalities=("image",), num_classes=13)
    with pytest.raises(ValueError, match="frozen SAM tensor"):
        write_hub_folder(tmp_path, {"image_encoder.pos_embed": torch.zeros(1)}, config)
    assert not list(tmp_path.iterdir())


# ---------------------------------------------------------------------------- local loading
def test_local_folder_roundtrip_with_config(model, sam_file, pano, tmp_path):
    model.save_pretrained(tmp_path)
    loaded = PanoSAMic.from_pretrained_panosamic(tmp_path, sam_weights_path=sam_file, semantic_only=True)
    assert not loaded.training and loaded.config.vit == "vit_tiny" and loaded.config.dataset == "stanford2d3ds"
    assert same_trainable(model, loaded)
    with torch.no_grad():
        torch.testing.assert_close(loaded([pano])[0]["sem_preds"], model([pano])[0]["sem_preds"], rtol=0, atol=0)
    # the .safetensors file itself (its folder's config.json is used)
    again = PanoSAMic.from_pretrained_panosamic(tmp_path / "model.safetensors", sam_weights_path=sam_file, semantic_only=True)
    assert same_trainable(model, again)


def test_instance_branch_comes_from_the_sam_file(model, sam_file, tmp_path):
    model.save_pretrained(tmp_path)
    full = PanoSAMic.from_pretrained_panosamic(tmp_path, sam_weights_path=sam_file)  # card default: semantic_only=False
    assert not full.semantic_only
    sam = torch.load(sam_file, weights_only=True)
    torch.testing.assert_close(full.mask_decoder.state_dict()["iou_token.weight"], sam["mask_decoder.iou_token.weight"])


def test_arguments_that_disagree_with_config_json(model, sam_file, tmp_path):
    model.save_pretrained(tmp_path)
    arch = dict(config_path=CFG, vit_model="vit_tiny", modalities="image", num_classes=13)
    with pytest.raises(ValueError, match="num_classes: given 20, the checkpoint says 13"):
        PanoSAMic.from_pretrained_panosamic(tmp_path, **(arch | {"num_classes": 20}), sam_weights_path=sam_file)
    with pytest.raises(ValueError, match=r"modalities: given \('image', 'depth'\)"):
        PanoSAMic.from_pretrained_panosamic(tmp_path, **(arch | {"modalities": "image,depth"}), sam_weights_path=sam_file)
    with pytest.raises(ValueError, match="dual_view: given False"):
        PanoSAMic.from_pretrained_panosamic(
            tmp_path, **(arch | {"config_path": CFG.replace(dual_view_fusion=False)}), sam_weights_path=sam_file
        )
    with pytest.raises(ValueError, match=r"give all of config_path, vit_model, modalities, num_classes \(missing"):
        PanoSAMic.from_pretrained_panosamic(tmp_path, num_classes=13, sam_weights_path=sam_file)
    # agreeing arguments are fine
    PanoSAMic.from_pretrained_panosamic(
        tmp_path, vit_model="vit_tiny", modalities="image", num_classes=13, config_path=CFG, sam_weights_path=sam_file
    )


def _published(model: PanoSAMic, folder: Path) -> Path:
    """The published layout: a subfolder holding only a bf16 model.safetensors."""
    sub = folder / SUB
    sub.mkdir(parents=True)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.trainable_state_dict().items()}, sub / "model.safetensors")
    return folder


def test_published_layout_needs_and_takes_the_architecture(model, sam_file, tmp_path):
    repo = _published(model, tmp_path)
    with pytest.raises(ValueError, match=r"has no config\.json and is not a registered variant"):
        PanoSAMic.from_pretrained_panosamic(repo, subfolder=SUB, sam_weights_path=sam_file)
    with pytest.raises(ValueError, match=r"missing \['num_classes'\]"):
        PanoSAMic.from_pretrained_panosamic(
            repo, subfolder=SUB, config_path=CFG, vit_model="vit_tiny", modalities=("image",), sam_weights_path=sam_file
        )
    loaded = PanoSAMic.from_pretrained_panosamic(
        repo,
        subfolder=SUB,
        config_path=CFG,
        vit_model="vit_tiny",
        modalities=("image",),
        num_classes=13,
        sam_weights_path=sam_file.parent,  # a folder holding *vit_tiny*.pth
        semantic_only=True,
    )
    want = model.trainable_state_dict()
    for k, v in loaded.trainable_state_dict().items():
        assert v.dtype == torch.float32
        torch.testing.assert_close(v, want[k].to(torch.bfloat16).float(), rtol=0, atol=0)


# ---------------------------------------------------------------------------- wrong checkpoints
@pytest.mark.parametrize(
    ("other", "expected", "message"),
    [
        (dict(modalities=("image", "depth")), dict(modalities=("image",)), "sized for 2 modalities.*built for 1"),
        (dict(num_classes=20), dict(num_classes=13), "has 20 classes, the model 13"),
    ],
)
def test_wrong_architecture_refused(sam_file, tmp_path, other, expected, message):
    wrong = tiny(**other)
    repo = _published(wrong, tmp_path)
    kw = dict(config_path=CFG, vit_model="vit_tiny", modalities=("image",), num_classes=13) | expected
    with pytest.raises(ValueError, match=message):
        PanoSAMic.from_pretrained_panosamic(repo, subfolder=SUB, sam_weights_path=sam_file, **kw)


def test_other_vit_size_refused(model, sam_file, tmp_path):
    sd = dict(model.trainable_state_dict())
    key = "feature_fuser.fusion_blocks.0.neck.0.weight"
    sd[key] = torch.zeros(768, 768, 1, 1)  # a ViT-B sized fusion neck
    save_file(sd, tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="checkpoint is for vit_b, the model was built for vit_tiny"):
        PanoSAMic.from_pretrained_panosamic(
            tmp_path / "model.safetensors", config_path=CFG, vit_model="vit_tiny", modalities="image",
            num_classes=13, sam_weights_path=sam_file,
        )  # fmt: skip


def test_missing_and_unexpected_keys_named(model, sam_file, tmp_path):
    sd = dict(model.trainable_state_dict())
    dropped = "semantic_decoder.decoder_head.3.bias"
    del sd[dropped]
    sd["semantic_decoder.surprise"] = torch.zeros(1)
    save_file(sd, tmp_path / "model.safetensors")
    kw = dict(config_path=CFG, vit_model="vit_tiny", modalities="image", num_classes=13, sam_weights_path=sam_file)
    with pytest.raises(ValueError, match=f"missing key.*{dropped}.*unexpected key.*semantic_decoder.surprise"):
        PanoSAMic.from_pretrained_panosamic(tmp_path / "model.safetensors", **kw)


def test_truncated_and_pickled_checkpoints_refused(model, sam_file, tmp_path, capsys):
    model.save_pretrained(tmp_path / "ok")
    data = (tmp_path / "ok" / "model.safetensors").read_bytes()
    (tmp_path / "cut").mkdir()
    (tmp_path / "cut" / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        PanoSAMic.from_pretrained_panosamic(
            tmp_path / "cut", config_path=CFG, vit_model="vit_tiny", modalities="image", num_classes=13,
            sam_weights_path=sam_file,
        )  # fmt: skip

    class Evil:
        def __reduce__(self):
            return (print, ("pickled code ran",))

    evil = dict(model.trainable_state_dict())
    evil["extra"] = Evil()
    torch.save(evil, tmp_path / "evil.pth")
    kw = dict(config_path=CFG, vit_model="vit_tiny", modalities="image", num_classes=13)
    with pytest.raises(ValueError, match="pickled code"):
        PanoSAMic.from_pretrained_panosamic(tmp_path / "evil.pth", sam_weights_path=sam_file, **kw)
    with pytest.raises(ValueError, match="pickled code"):  # the same for a SAM file
        PanoSAMic.from_pretrained_panosamic(tmp_path / "ok", sam_weights_path=tmp_path / "evil.pth")
    assert "pickled code ran" not in capsys.readouterr().out


def test_not_a_path_nor_a_repo(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint not found: .*nope/model\.safetensors"):
        PanoSAMic.from_pretrained_panosamic(str(tmp_path / "nope" / "model.safetensors"))
    with pytest.raises(FileNotFoundError, match="neither an existing file or folder nor a Hub repo id"):
        PanoSAMic.from_pretrained_panosamic(str(tmp_path / "nope" / "folder"))


# ---------------------------------------------------------------------------- loopback Hub
@pytest.fixture
def hub(tmp_path):
    with LoopbackHub(required_token=TOKEN) as server, hub_environment(server.url, str(tmp_path / "hf-cache"), token=TOKEN):
        yield server


def test_push_pull_roundtrip(hub, model, sam_file, tmp_path, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    url = model.push_to_hub("tester/panosamic", subfolder=SUB, metrics={"miou": 0.5, "macc": 0.6})
    assert "/tester/panosamic/commit/" in url
    files = hub.files("tester/panosamic")
    assert sorted(files) == [".gitattributes", f"{SUB}/README.md", f"{SUB}/config.json", f"{SUB}/model.safetensors"]
    # the pushed folder holds no SAM instance branch (and, for the test architecture, its encoder)
    pushed = tmp_path / "pushed.safetensors"
    pushed.write_bytes(files[f"{SUB}/model.safetensors"])
    assert not any(k.startswith(("prompt_encoder.", "mask_decoder.")) for k in load_file(pushed))
    # every write was authenticated; the token never shows up in output or logs
    writes = [r for r in hub.requests if r.method == "POST" and r.path != "/api/validate-yaml"]
    assert writes and all(r.authorized for r in writes)

    loaded = PanoSAMic.from_pretrained_panosamic("tester/panosamic", subfolder=SUB, sam_weights_path=sam_file, semantic_only=True)
    assert not loaded.training and same_trainable(model, loaded)
    assert loaded.config == model.config

    from huggingface_hub import snapshot_download

    snap = Path(snapshot_download("tester/panosamic"))
    card = ModelCard.load(snap / SUB / "README.md")
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"mean_iou": 50.0, "mean_accuracy": 60.0}
    out = capsys.readouterr()
    assert TOKEN not in out.out + out.err + caplog.text


def test_push_to_branch_and_load_revision(hub, model, sam_file):
    other = tiny(seed=99)
    other.load_sam_weights(sam_file)
    model.push_to_hub("tester/rev", subfolder=SUB)
    other.push_to_hub("tester/rev", subfolder=SUB, revision="v2", commit_message="second variant")
    on_main = PanoSAMic.from_pretrained_panosamic("tester/rev", subfolder=SUB, sam_weights_path=sam_file, semantic_only=True)
    on_v2 = PanoSAMic.from_pretrained_panosamic(
        "tester/rev", subfolder=SUB, revision="v2", sam_weights_path=sam_file, semantic_only=True
    )
    assert same_trainable(on_main, model) and same_trainable(on_v2, other) and not same_trainable(on_main, on_v2)
    with pytest.raises(FileNotFoundError, match="does not exist on the Hub"):
        PanoSAMic.from_pretrained_panosamic("tester/rev", subfolder="no-such-variant", sam_weights_path=sam_file)
    with pytest.raises(FileNotFoundError, match="not found"):
        PanoSAMic.from_pretrained_panosamic("tester/unknown", sam_weights_path=sam_file)


def test_mixin_from_pretrained_without_subfolder(hub, model, sam_file):
    model.push_to_hub("tester/root")
    loaded = PanoSAMic.from_pretrained("tester/root", sam_weights_path=sam_file, semantic_only=True)
    assert not loaded.training and same_trainable(model, loaded)


def test_offline_cache(model, sam_file, tmp_path):
    cache = str(tmp_path / "hf-cache")
    with LoopbackHub() as server, hub_environment(server.url, cache):
        model.push_to_hub("tester/offline", subfolder=SUB)
        PanoSAMic.from_pretrained_panosamic("tester/offline", subfolder=SUB, sam_weights_path=sam_file)
        endpoint = server.url
    # the server is gone; HF_HUB_OFFLINE=1 serves from the pre-populated cache
    with hub_environment(endpoint, cache, offline=True):
        loaded = PanoSAMic.from_pretrained_panosamic("tester/offline", subfolder=SUB, sam_weights_path=sam_file, semantic_only=True)
        assert same_trainable(model, loaded)
        with pytest.raises(HubOfflineError, match=r"not in the Hugging Face cache.*HF_HUB_OFFLINE"):
            PanoSAMic.from_pretrained_panosamic("tester/offline", subfolder="other-variant", sam_weights_path=sam_file)


# ---------------------------------------------------------------------------- CLIs
def _training_checkpoint(net: PanoSAMic, path: Path, **extra) -> Path:
    model = net
    ckpt = {
        "epoch": 3,
        "model": model.state_dict(),
        "config": CFG.to_dict(),
        "vit_model": "vit_tiny",
        "modalities": ["image"],
        "num_classes": 13,
        "dataset": "stanford2d3ds",
        "fold": 2,
        "miou": 0.31,
        "macc": 0.42,
        **extra,
    }
    torch.save(ckpt, path)
    return path


def test_export_and_push_cli(hub, model, sam_file, tmp_path, capsys):
    ckpt = _training_checkpoint(model, tmp_path / "model_best.pth")
    out = tmp_path / "export"
    assert main(["export", str(ckpt), str(out), "--dtype", "bfloat16"]) == 0
    tensors = load_file(out / "model.safetensors")
    encoder = {k for k in model.state_dict() if k.startswith("image_encoder.")}
    assert tensors.keys() == model.trainable_state_dict().keys() | encoder
    assert all(v.dtype == torch.bfloat16 for v in tensors.values())
    info = ModelConfig.from_json(out / "config.json")
    assert (info.vit, info.fold, info.dataset) == ("vit_tiny", 2, "stanford2d3ds")
    card = ModelCard.load(out / "README.md")
    assert {r.metric_type: r.metric_value for r in card.data.eval_results} == {"mean_iou": 31.0, "mean_accuracy": 42.0}

    assert main(["push", str(out), "tester/cli", "--subfolder", info.variant_name, "--private"]) == 0
    assert info.variant_name == "stanford2d3ds-vittiny-rgb-fold2"
    assert f"{info.variant_name}/model.safetensors" in hub.files("tester/cli")
    loaded = PanoSAMic.from_pretrained_panosamic(
        "tester/cli", subfolder=info.variant_name, sam_weights_path=sam_file, semantic_only=True
    )
    want = model.trainable_state_dict()
    for k, v in loaded.trainable_state_dict().items():
        torch.testing.assert_close(v, want[k].to(torch.bfloat16).float(), rtol=0, atol=0)
    assert TOKEN not in capsys.readouterr().out


def test_export_refusals(model, tmp_path, capsys):
    bad = _training_checkpoint(model, tmp_path / "bad.pth", num_classes=20)
    assert main(["export", str(bad), str(tmp_path / "out1")]) == 1
    assert "has 13 classes, the model 20" in capsys.readouterr().err
    assert not (tmp_path / "out1").exists()
    foreign = dict(model.state_dict())
    foreign["something.else"] = torch.zeros(1)
    _training_checkpoint(model, tmp_path / "foreign.pth", model=foreign)
    assert main(["export", str(tmp_path / "foreign.pth"), str(tmp_path / "out2")]) == 1
    assert "neither SAM nor PanoSAMic" in capsys.readouterr().err
    torch.save({"model": model.state_dict()}, tmp_path / "bare.pth")
    assert main(["export", str(tmp_path / "bare.pth"), str(tmp_path / "out3")]) == 1
    err = capsys.readouterr().err  # a reference-format checkpoint: the flags that describe it are named
    assert "does not record its architecture" in err and "--config FILE --vit VIT --modalities M" in err
    assert not (tmp_path / "out3").exists()


def test_push_refuses_a_folder_with_frozen_tensors(tmp_path, capsys):
    (tmp_path / "f").mkdir()
    save_file({"image_encoder.pos_embed": torch.zeros(1)}, tmp_path / "f" / "model.safetensors")
    assert main(["push", str(tmp_path / "f"), "tester/x"]) == 1
    assert "frozen SAM tensor" in capsys.readouterr().err


def test_students_push_and_load_through_the_same_stack(tmp_path):
    """A student is pushed into a subfolder and a branch, then loaded by load_model with an explicit
    token, revision and cache_dir (the Hub stack PanoSAMic uses); its card has the Hub's front matter."""
    from panosamic.hub.student import push_student
    from panosamic.model import load_model
    from panosamic.student import PanoStudent, StudentConfig

    torch.manual_seed(0)
    cfg = StudentConfig(backbone="mobilenetv3_small_100", num_classes=13, native_size=(64, 128), decoder_channels=8)
    first, second = PanoStudent(cfg), PanoStudent(cfg)
    cache = tmp_path / "own-cache"
    with LoopbackHub(required_token=TOKEN) as server, hub_environment(server.url, str(tmp_path / "hf-cache")):
        push_student(first, "tester/students", subfolder="small", token=TOKEN, private=True)
        push_student(second, "tester/students", subfolder="small", token=TOKEN, revision="v2")
        files = server.files("tester/students")
        assert sorted(files) == [".gitattributes", "small/README.md", "small/config.json", "small/model.safetensors"]
        card = files["small/README.md"].decode()
        assert card.startswith("---\n") and "library_name: panosamic" in card and "subfolder='small'" in card
        on_main = load_model("tester/students", subfolder="small", token=TOKEN, cache_dir=cache)
        on_v2 = load_model("tester/students", subfolder="small", token=TOKEN, cache_dir=cache, revision="v2")
        with pytest.raises(FileNotFoundError, match="not found"):
            load_model("tester/students", subfolder="small", cache_dir=tmp_path / "no-token")
    assert on_main.checkpoint_info["kind"] == "panosamic-student" and not on_main.training
    for model, want in ((on_main, first), (on_v2, second)):
        assert all(torch.equal(v, want.state_dict()[k]) for k, v in model.state_dict().items())
    assert any(cache.rglob("model.safetensors"))  # downloaded into the given cache
