"""Open-vocabulary panoramas (issue 23): class lists, the baseline protocol, view geometry, the text
cache and the tiny SAM 3 (``test-sam3-tiny``) through the one loading path. Offline, CPU."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from panosamic.openvocab.classes import MAX_CLASSES, ClassPrompts, parse_class_file, parse_class_list
from panosamic.openvocab.protocol import (
    IGNORE,
    class_scores,
    label_logits,
    labels_from_scores,
    majority_smooth,
    prompt_scores,
)
from panosamic.openvocab.views import ViewLayout, check_views


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine has 2 shared cores
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------------------- class lists
def test_class_list_parses_names_synonyms_and_the_catch_all(tmp_path):
    c = parse_class_list(" floor,bed , lamp ")
    assert c.names == ("floor", "bed", "lamp") and c.catch_all is None
    f = tmp_path / "classes.txt"
    f.write_text("# my classes\nwall\nlamp: light, lantern\n\nclutter  # the rest\n", encoding="utf-8")
    c = parse_class_file(f)
    assert c.names == ("wall", "lamp", "clutter") and c.catch_all == 2
    assert c.prompts[1] == ("lamp", "light", "lantern")
    texts, owners = c.flat_prompts()
    assert texts == ("wall", "lamp", "light", "lantern", "clutter") and owners == (0, 1, 1, 1, 2)
    assert ClassPrompts.create(["Objects", "wall"]).catch_all == 0


@pytest.mark.parametrize(("text", "message"), [
    ("", '--classes is empty: give class names separated by commas, e.g. "floor, wall, lamp"'),
    ("floor,,lamp", "--classes: class 2 has an empty name (two commas in a row?)"),
    ("lamp, floor, Lamp", ("--classes names 'Lamp' twice: give each class once (synonyms: a classes file with "
                          "lines like 'lamp: light, lantern')")),
])
def test_class_list_refusals(text, message):
    with pytest.raises(ValueError) as e:
        parse_class_list(text)
    assert str(e.value) == message


def test_more_classes_than_a_label_png_holds_is_refused():
    with pytest.raises(ValueError, match=f"has {MAX_CLASSES + 1} classes but a label PNG holds at most {MAX_CLASSES}"):
        ClassPrompts.create([f"c{i}" for i in range(MAX_CLASSES + 1)])


# ---------------------------------------------------------------------------- the baseline protocol
def test_prompt_scores_weight_masks_by_detection_and_presence():
    masks = torch.full((1, 2, 2, 2), -20.0)
    masks[0, 0, 0, 0] = 20.0  # instance 0 covers pixel (0, 0)
    masks[0, 1, 1, 1] = 20.0  # instance 1 covers pixel (1, 1)
    logits = torch.tensor([[0.0, math.log(3.0)]])  # sigmoid: 0.5 and 0.75
    presence = torch.tensor([[0.0]])  # 0.5
    s = prompt_scores(masks, logits, presence)[0]
    assert s[0, 0].item() == pytest.approx(0.25, abs=1e-6) and s[1, 1].item() == pytest.approx(0.375, abs=1e-6)
    assert s[0, 1].item() < 1e-6


def test_class_scores_take_the_best_prompt_of_each_class():
    per_prompt = torch.tensor([[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]])[:, :, None]  # 3 prompts, 2 pixels
    out = class_scores(per_prompt, owners=(0, 1, 1), num_classes=3)
    assert torch.allclose(out[:, :, 0], torch.tensor([[0.1, 0.9], [0.5, 0.4], [0.0, 0.0]]))


def test_uncovered_pixels_go_to_the_catch_all_or_are_ignored():
    scores = torch.zeros(3, 1, 4)
    scores[0, 0, 0] = 0.9  # class 0
    scores[1, 0, 1] = 0.6  # class 1
    scores[1, 0, 2] = 0.04  # below the coverage threshold
    scores[0, 0, 3] = 0.06  # just above it
    assert labels_from_scores(scores, catch_all=2)[0].tolist() == [0, 1, 2, 0]
    assert labels_from_scores(scores, catch_all=None)[0].tolist() == [0, 1, IGNORE, 0]
    assert labels_from_scores(scores, catch_all=2, coverage_threshold=0.1)[0].tolist() == [0, 1, 2, 2]


def test_majority_smoothing_removes_specks_and_wraps_at_the_seam():
    labels = torch.zeros(5, 8, dtype=torch.long)
    labels[:, 0] = 1
    labels[:, 7] = 1  # one stripe across the seam (columns 7 and 0)
    labels[2, 4] = 2  # a speck
    out = majority_smooth(labels, 3, 3)
    assert out[2, 4].item() == 0  # the speck is gone
    assert (out[:, 0] == 1).all() and (out[:, 7] == 1).all()  # the stripe survives: its neighbours wrap
    assert torch.equal(majority_smooth(labels, 3, 0), labels)
    with pytest.raises(ValueError, match="odd"):
        majority_smooth(labels, 3, 4)


def test_label_logits_argmax_is_the_protocol_labels():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 6, 12, generator=g) * 0.2
    labels = labels_from_scores(scores, catch_all=3, coverage_threshold=0.1, smoothing=3)
    assert torch.equal(label_logits(scores, labels).argmax(0), labels)
    ignored = labels_from_scores(scores, catch_all=None, coverage_threshold=0.1)
    logits = label_logits(scores, ignored)
    keep = ignored >= 0
    assert (~keep).any() and torch.equal(logits.argmax(0)[keep], ignored[keep])


# ---------------------------------------------------------------------------- view geometry
def _smooth_field(h: int) -> torch.Tensor:
    from panosamic.geometry import erp_directions

    return erp_directions(h).permute(2, 0, 1).float()  # (3, H, 2H): x, y, z of each pixel's direction


@pytest.mark.parametrize("mode", ["cube", "tangent"])
def test_erp_to_views_to_erp_covers_every_pixel_and_returns_the_panorama(mode):
    layout = ViewLayout.create(mode, 48)
    h = 32
    assert layout.coverage(h).min() >= 1  # every pixel, the poles and the seam included
    field = _smooth_field(h)
    back = layout.blend(layout.render(field), h)  # weights normalised: each pixel counted once
    assert (back - field).abs().max() < 0.02
    ones = layout.blend(torch.ones(layout.num_views, 1, 48, 48), h)
    assert torch.allclose(ones, torch.ones_like(ones))


def test_a_per_view_scorer_puts_each_label_on_the_right_erp_pixels():
    """Each view labels its pixels by the octant of their direction; blended, the ERP labels are the
    octants of the ERP pixels' directions (away from octant borders, where views interpolate)."""
    from panosamic.geometry import PinholeCamera

    layout = ViewLayout.create("cube", 40)
    h = 32

    def octant(d: torch.Tensor) -> torch.Tensor:
        return ((d[..., 0] > 0).long() * 4 + (d[..., 1] > 0).long() * 2 + (d[..., 2] > 0).long())

    views = []
    for o in layout.orientations:
        camera = PinholeCamera(fov_deg=layout.fov_deg, yaw_deg=o.yaw_deg, pitch_deg=o.pitch_deg)
        rays = camera.rays(40, 40)
        views.append(torch.nn.functional.one_hot(octant(rays), 8).permute(2, 0, 1).float())
    labels = layout.blend(torch.stack(views), h).argmax(0)
    dirs = _smooth_field(h).permute(1, 2, 0)
    want = octant(dirs)
    away = dirs.abs().amin(-1) > 0.1  # not next to an octant border
    assert torch.equal(labels[away], want[away])
    assert away.float().mean() > 0.45


def test_no_step_at_the_seam():
    layout = ViewLayout.create("cube", 48)
    h = 32
    back = layout.blend(layout.render(_smooth_field(h)), h)
    seam = (back[:, :, 0] - back[:, :, -1]).abs().max()  # neighbours across ±180°
    inner = (back[:, :, 1:] - back[:, :, :-1]).abs().max()  # neighbours anywhere else
    assert seam <= inner * 1.01


def test_view_options_are_checked():
    check_views("cube", 120)
    with pytest.raises(ValueError, match="views must be one of erp, cube, tangent, got 'sphere'"):
        check_views("sphere", None)
    with pytest.raises(ValueError, match="cube views need a field of view of at least 90 degrees"):
        check_views("cube", 80)
    with pytest.raises(ValueError, match="applies to the 'cube' and 'tangent' views"):
        check_views("erp", 90)


def test_view_layout_picture(tmp_path):
    """docs/images/sam3_views.png: each view's footprint on the ERP grid (written by the helper below)."""
    from panosamic.openvocab.figures import view_layout_figure

    out = view_layout_figure(tmp_path / "views.png", erp_height=32)
    assert out.stat().st_size > 1000


# ---------------------------------------------------------------------------- the tiny SAM 3
transformers = pytest.importorskip("transformers")
FIXTURE_PANO = "tests/fixtures/real/panocontext_unlabelled/pano_asmasuxybohhcj.png"


@pytest.fixture(scope="module")
def tiny_sam3_dir(tmp_path_factory):
    from panosamic.openvocab.tiny import save_tiny_sam3

    return save_tiny_sam3(tmp_path_factory.mktemp("sam3") / "test-sam3-tiny")


def test_tiny_sam3_saved_by_transformers_loads_through_load_model(tiny_sam3_dir):
    from panosamic import load_model
    from panosamic.openvocab.segmenter import Sam3Segmenter
    from panosamic.openvocab.tiny import build_tiny_sam3

    assert (tiny_sam3_dir / "config.json").is_file() and (tiny_sam3_dir / "tokenizer.json").is_file()
    model = load_model(str(tiny_sam3_dir), classes=["floor", "wall", "lamp"])
    assert isinstance(model, Sam3Segmenter) and not model.training
    assert model.class_names == ("floor", "wall", "lamp") and model.num_classes == 3 and model.palette.shape == (3, 3)
    built, _ = build_tiny_sam3()
    loaded = model.sam.state_dict()
    assert all(torch.equal(t, loaded[k]) for k, t in built.state_dict().items())  # the same weights came back
    by_name = load_model("test-sam3-tiny", classes="floor, wall, lamp", views="cube")
    assert by_name.config.views == "cube" and by_name.class_names == model.class_names


def test_a_sam3_checkpoint_without_classes_is_refused_before_loading(tiny_sam3_dir):
    from panosamic import load_model

    with pytest.raises(ValueError, match=r"a SAM 3 checkpoint segments the classes you name: pass classes=\[\.\.\.\]"):
        load_model(str(tiny_sam3_dir))
    with pytest.raises(ValueError, match="names 'wall' twice"):
        load_model("test-sam3-tiny", classes=["wall", "wall"])


def test_forward_gives_class_logits_at_the_panorama_size_for_each_view_mode():
    from panosamic.openvocab import load_sam3

    model = load_sam3("test-sam3-tiny", classes=["floor", "wall", "clutter"])
    image = torch.rand(3, 32, 64) * 255
    for views in ("erp", "cube"):
        model.configure(views=views)
        with torch.no_grad():
            out = model([{"image": image}])[0]
        assert out["sem_preds"].shape == (3, 32, 64) and out["labels"].shape == (32, 64)
        assert torch.equal(out["sem_preds"].argmax(0), out["labels"])  # a catch-all: nothing ignored
        assert out["class_scores"].min() >= 0 and out["class_scores"].max() <= 1


def test_text_embeddings_are_computed_once_per_class_list():
    from panosamic.openvocab import load_sam3

    model = load_sam3("test-sam3-tiny", classes={"floor": [], "lamp": ["light"]})
    calls = []
    encode = model.sam.get_text_features

    def counted(*a, **k):
        calls.append(k["input_ids"].shape[0])
        return encode(*a, **k)

    model.sam.get_text_features = counted
    image = torch.rand(3, 16, 32) * 255
    with torch.no_grad():
        model([{"image": image}, {"image": image}])  # 2 panoramas: one text pass
        model([{"image": image}])
        assert calls == [3]  # floor, lamp, light in one batch
        model.configure(classes=["bed"])
        model([{"image": image}])
        model.configure(classes={"floor": [], "lamp": ["light"]})
        model([{"image": image}])
    assert calls == [3, 1] and model.text_cache.calls == 2


def test_gated_and_offline_hub_failures_are_one_line(monkeypatch, tmp_path):
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, LocalEntryNotFoundError

    from panosamic import load_model
    from panosamic.errors import PanosamicError, describe_error

    def gated(*a, **k):
        err = GatedRepoError.__new__(GatedRepoError)  # as the Hub raises it, without an HTTP response
        Exception.__init__(err, "403 Client Error. Cannot access gated repo for url https://huggingface.co/facebook/sam3")
        raise err

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", gated)
    with pytest.raises(PanosamicError) as e:
        load_model("sam3", classes=["floor"])
    assert describe_error(e.value) == ("facebook/sam3 is gated: accept its licence at https://huggingface.co/facebook/sam3 "
                                       "(logged in), then log in here with `hf auth login` or set HF_TOKEN")

    def offline(*a, **k):
        raise LocalEntryNotFoundError("not in cache and outgoing traffic has been disabled")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(PanosamicError, match=r"^facebook/sam3 is not in the Hugging Face cache and the Hub cannot be "
                                             r"reached \(offline mode or no network\)"):
        load_model("sam3", classes=["floor"], local_files_only=True)


# ---------------------------------------------------------------------------- the command line
def test_predict_cli_with_the_tiny_sam3_writes_the_usual_outputs_with_the_given_names(tiny_sam3_dir, tmp_path):
    import json

    from PIL import Image

    from panosamic.cli import main

    out = tmp_path / "out"
    code = main(["predict", FIXTURE_PANO, "--checkpoint", str(tiny_sam3_dir), "--classes", "floor, wall, lamp",
                 "--out", str(out), "--no-progress"])
    assert code == 0
    name = "pano_asmasuxybohhcj"
    for f in (f"{name}_labels.png", f"{name}_color.png", f"{name}_overlay.jpg", "legend.png", "summary.json"):
        assert (out / f).is_file(), f
    summary = json.loads((out / "summary.json").read_text())
    assert summary["class_names"] == ["floor", "wall", "lamp"]
    labels = Image.open(out / f"{name}_labels.png")
    assert labels.size == (1024, 512) and np.asarray(labels).max() <= 2
    assert sum(summary["predictions"][name]["class_fractions"].values()) == pytest.approx(1.0)


def test_predict_cli_with_cube_views_and_a_classes_file(tmp_path):
    import json

    from panosamic.cli import main

    classes = tmp_path / "classes.txt"
    classes.write_text("floor\nlamp: light\nclutter\n", encoding="utf-8")
    out = tmp_path / "out"
    code = main(["predict", FIXTURE_PANO, "--checkpoint", "test-sam3-tiny", "--classes-file", str(classes),
                 "--views", "cube", "--fov", "95", "--out", str(out), "--no-progress"])
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["class_names"] == ["floor", "lamp", "clutter"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--classes", " "], '--classes is empty: give class names separated by commas, e.g. "floor, wall, lamp"'),
    (["--classes", "lamp, lamp"], "--classes names 'lamp' twice"),
    ([], "a SAM 3 checkpoint segments the classes you name: pass classes=[...] (command line: --classes"),
    (["--classes", "floor", "--views", "cube", "--fov", "60"], "cube views need a field of view of at least 90"),
    (["--classes", "floor", "--fov", "100"], "--fov applies to --views cube or tangent"),
    (["--classes", "floor", "--smoothing", "4"], "--smoothing must be 0 (off) or an odd window size, got 4"),
])
def test_predict_cli_refusals_come_before_any_model_loads(tmp_path, capsys, monkeypatch, extra, message):
    from panosamic.cli import main
    from panosamic.openvocab import loading

    monkeypatch.setattr(loading, "load_sam3", lambda *a, **k: pytest.fail("a model was loaded"))
    code = main(["predict", FIXTURE_PANO, "--checkpoint", "test-sam3-tiny", "--out", str(tmp_path / "o"), *extra])
    assert code != 0
    assert message in capsys.readouterr().err


def test_evaluate_sam3_zero_shot_with_the_dataset_class_names(tmp_path, capsys):
    import json

    from conftest import prepared_synthetic

    from panosamic.cli import main
    from panosamic.data import get_dataset_info

    data = prepared_synthetic(tmp_path / "data", rooms_per_area=1, size=(32, 64), seed=1)
    out = tmp_path / "results.json"
    args = ["evaluate", "--dataset-path", str(data), "--dataset", "stanford2d3ds", "--workers", "0", "--device", "cpu",
            "--no-progress", "--checkpoint", "test-sam3-tiny", "--fold", "1", "--output", str(out),
            "--plots", str(tmp_path / "plots")]
    assert main([*args, "--views", "cube"]) == 0
    fold = json.loads(out.read_text())["folds"][0]
    names = get_dataset_info("stanford2d3ds").class_names
    assert fold["num_samples"] >= 1 and list(fold["iou_per_class"]) == list(names)
    assert (tmp_path / "plots" / "fold1_iou.png").is_file()
    assert "fold 1: mIoU" in capsys.readouterr().out
    assert main([*args, "--classes", "floor, wall"]) == 1
    assert "--classes gives 2 classes but stanford2d3ds has 13 (beam, board," in capsys.readouterr().err


def test_distill_a_sam3_teacher_into_a_student_for_your_classes(tmp_path):
    import json

    from PIL import Image

    from panosamic.cli import main

    panos = tmp_path / "panos"
    panos.mkdir()
    g = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray(g.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(panos / f"p{i}.png")
    out = tmp_path / "runs"
    code = main(["distill", "--teacher", "test-sam3-tiny", "--classes", "floor, wall, lamp", "--panoramas", str(panos),
                 "--backbone", "mobilenetv3_small_100", "--native-size", "32x64", "--epochs", "1", "--batch-size", "2",
                 "--no-validate", "--out", str(out), "--device", "cpu", "--no-progress"])
    assert code == 0
    students = list(out.rglob("student/config.json"))
    assert len(students) == 1
    config = json.loads(students[0].read_text())
    assert config["class_names"] == ["floor", "wall", "lamp"] and config["num_classes"] == 3
    assert main(["distill", "--teacher", "test-sam3-tiny", "--panoramas", str(panos), "--out", str(out)]) == 1


def test_predict_api_returns_the_usual_result_object(tmp_path):
    from panosamic import load_model
    from panosamic.inference import predict

    model = load_model("test-sam3-tiny", classes=["floor", "wall", "lamp", "clutter"], smoothing=3)
    result = predict(model, FIXTURE_PANO)
    assert result.class_names == ("floor", "wall", "lamp", "clutter") and result.size == (512, 1024)
    assert result.logits.shape == (4, 512, 1024) and result.labels.max() <= 3
    files = result.save(tmp_path)
    assert {"labels", "color", "overlay", "legend"} <= set(files)


@pytest.mark.parametrize("views", ["erp", "cube", "tangent"])
def test_each_view_mode_puts_a_constructed_scorer_labels_on_the_right_panorama_pixels(views):
    """A stand-in for SAM 3 scores each class by one colour channel of what it sees; through the
    segmenter (squashed panorama, or views rendered, scored and blended back), the labels are the
    colours' regions of the panorama: red west of the seam-crossing meridian, blue east, green caps."""
    import torch.nn.functional as F

    from panosamic.openvocab import load_sam3

    model = load_sam3("test-sam3-tiny", classes=["red", "green", "blue"], views=views)

    def colour_scores(pixel_values: torch.Tensor) -> torch.Tensor:
        rgb = pixel_values * model.image_std + model.image_mean  # back to [0, 1]
        return F.interpolate(rgb[:, [0, 1, 2]], size=(16, 16), mode="bilinear", align_corners=False)

    model.image_scores = colour_scores
    h = 32
    lon, lat = torch.meshgrid(torch.linspace(-180, 180, 2 * h + 1)[:-1] + 180 / (2 * h),
                              torch.linspace(90, -90, h + 1)[:-1] - 90 / h, indexing="xy")
    want = torch.where(lat.abs() > 50, 1, torch.where(lon < 0, 0, 2))
    image = F.one_hot(want, 3).permute(2, 0, 1).float() * 255
    with torch.no_grad():
        labels = model([{"image": image}])[0]["labels"]
    border = (lat.abs() - 50).abs() < 12
    border |= (lon.abs() < 12) | (lon.abs() > 168)  # the meridians where red meets blue (one at the seam)
    assert labels.shape == (h, 2 * h)
    assert torch.equal(labels[~border], want[~border])


def test_a_transformers_sam3_config_names_the_sam3_kind(tiny_sam3_dir):
    import json

    from panosamic.hub.metadata import architecture_of
    from panosamic.model.loading import detect_kind

    assert architecture_of(json.loads((tiny_sam3_dir / "config.json").read_text())) == "sam3"
    assert architecture_of({"model_type": "sam3_video"}) == "sam3"
    assert architecture_of({"model_type": "bert"}) == "panosamic"  # others: as before
    assert detect_kind(str(tiny_sam3_dir)) == detect_kind("sam3") == detect_kind("test-sam3-tiny") == "sam3"


def test_adapt_takes_sam3_as_a_fixed_pseudo_label_source(tmp_path):
    from conftest import make_tiny_model
    from PIL import Image

    from panosamic.adapt.api import _labeller
    from panosamic.adapt.data import TargetPanoramas
    from panosamic.adapt.settings import AdaptSettings
    from panosamic.adapt.trainer import AdaptTrainer

    model = make_tiny_model()  # 13 classes
    (tmp_path / "target").mkdir()
    g = np.random.default_rng(0)
    Image.fromarray(g.integers(1, 256, (64, 128, 3), dtype=np.uint8)).save(tmp_path / "target" / "p.png")
    labeller = _labeller("test-sam3-tiny", model, torch.device("cpu"), {})
    from panosamic.inference.result import class_info

    assert labeller.class_names == class_info(model)[0]  # prompted with the adapted model's class names
    target = TargetPanoramas(tmp_path / "target", model.modalities, model.native_size)
    settings = AdaptSettings(epochs=1, batch_size=1, progress=False, max_threshold=0.0)  # keep every pixel
    trainer = AdaptTrainer(model, target, tmp_path / "out", settings, labeller=labeller)
    inputs = [target[0][0]]
    with torch.no_grad():
        want = labeller(inputs)[0]["sem_preds"].argmax(0)
        got = trainer.pseudo_labels(inputs, [0])[0]
    assert torch.equal(got, want)  # the pseudo-labels are SAM 3's, not the mean teacher's
    with pytest.raises(ValueError, match="has 3 classes but the model adapted 13"):
        _labeller("test-sam3-tiny", model, torch.device("cpu"), {"classes": ["a", "b", "c"]})


def test_adapt_cli_refuses_open_vocabulary_flags_without_a_pseudo_label_model(tmp_path, capsys):
    from panosamic.cli import main

    code = main(["adapt", str(tmp_path), "--checkpoint", "x", "--out", str(tmp_path / "o"), "--classes", "floor"])
    assert code != 0
    assert "describe the pseudo-label model: give --pseudo-labels-from CHECKPOINT" in capsys.readouterr().err
