"""The web demo's handlers without a browser: what the page shows equals the library's own prediction,
bad uploads get one clear line, the viewer gets its files, the CLI module stays import-light.

Needs the ``demo`` extra (``uv run --extra demo pytest tests/test_demo.py``); skipped without Gradio.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the demo extra (gradio) is not installed: uv run --extra demo pytest")

from conftest import FIXTURES, make_tiny_model

from panosamic.apps.demo import cli
from panosamic.apps.demo.app import (
    Handlers,
    _user_errors,
    build_demo,
    launch_demo,
    panorama_input,
    tidy_message,
)
from panosamic.apps.demo.backend import DemoModel
from panosamic.apps.demo.examples import REAL_PANORAMA, example_rows
from panosamic.apps.demo.viewer import FILE_ROUTE, VIEWER_PAGE, ResultStore, ViewerFiles, viewer_html
from panosamic.inference import predict

REAL = FIXTURES / "real" / "panocontext_unlabelled" / "pano_asmasuxybohhcj.png"


@pytest.fixture(scope="module")
def rgb_model():
    return make_tiny_model()


@pytest.fixture(scope="module")
def handlers(rgb_model, tmp_path_factory) -> Handlers:
    return Handlers(DemoModel(rgb_model), ResultStore(tmp_path_factory.mktemp("results")))


@pytest.fixture(scope="module")
def shown(handlers):
    """The page's outputs for the real panorama at opacity 0.4."""
    return handlers.segment(str(REAL), None, None, 0, 0.4, False)


@pytest.fixture(scope="module")
def expected(rgb_model):
    return predict(rgb_model, REAL)


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


def viewer_paths(html: str) -> dict[str, Path]:
    src = html.split('src="')[1].split('"')[0].replace("&amp;", "&")
    url = urlparse(src)
    assert url.path.startswith(FILE_ROUTE) and Path(unquote(url.path[len(FILE_ROUTE):])) == VIEWER_PAGE.resolve()
    return {k: Path(v[0]) for k, v in parse_qs(url.query).items()}


def bad_upload(handlers: Handlers, image, depth=None, normals=None, refine=False) -> str:
    with pytest.raises(gr.Error) as info:
        _user_errors(handlers.segment)(image, depth, normals, 0, 0.5, refine)
    return info.value.message


# ---------------------------------------------------------------------------- results
def test_overlay_and_legend_are_the_librarys(shown, expected):
    overlay, legend, _, _, _, state = shown
    assert np.array_equal(pixels(overlay), pixels(expected.overlay(0.4)))
    assert np.array_equal(pixels(legend), pixels(expected.legend()))
    assert np.array_equal(state.result.labels, expected.labels)
    assert state.result.logits.numel() == 0  # the session keeps no logits


def test_chart_lists_present_classes_in_order_with_their_share(shown, expected):
    chart = shown[2]
    counts = np.bincount(expected.labels.ravel(), minlength=expected.num_classes)
    present = [expected.class_names[k] for k in np.flatnonzero(counts)]
    assert list(chart["class"]) == present
    assert chart["percent"].sum() == pytest.approx(100.0)
    top = int(np.argmax(counts))
    row = chart[chart["class"] == expected.class_names[top]].iloc[0]
    assert row["percent"] == pytest.approx(100.0 * counts[top] / expected.labels.size)
    assert row["colour"] == "#{:02x}{:02x}{:02x}".format(*(int(v) for v in expected.palette[top]))


def test_timings_and_viewer_files(shown, expected):
    timings, html = shown[3], shown[4]
    for step in ("read inputs", "model", "pictures", "total"):
        assert f"| {step} |" in timings
    files = viewer_paths(html)
    assert set(files) == {"pano", "overlay"}
    with Image.open(files["pano"]) as pano, Image.open(files["overlay"]) as over:
        assert pano.size == over.size == (1024, 512) and pano.format == over.format == "JPEG"
        # JPEG: close to, not equal to, the exact overlay
        assert np.abs(pixels(over).astype(int) - pixels(expected.overlay(0.4))).mean() < 4


def test_opacity_slider_reblends_without_the_model(handlers, shown, expected):
    overlay, html = handlers.reblend(shown[5], 0.9)
    assert np.array_equal(pixels(overlay), pixels(expected.overlay(0.9)))
    assert viewer_paths(html)["overlay"] != viewer_paths(shown[4])["overlay"]  # a fresh file, no stale cache
    assert handlers.reblend(None, 0.9)[0] is not None  # gr.skip() before the first result


# ---------------------------------------------------------------------------- bad uploads
def test_non_2to1_panorama_gets_the_librarys_message(handlers, tmp_path):
    path = tmp_path / "square.png"
    Image.new("RGB", (300, 300)).save(path)
    assert "300x300 (WxH), which is not an equirectangular panorama" in bad_upload(handlers, str(path))


def test_corrupt_and_missing_uploads(handlers, tmp_path):
    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png" * 20)
    assert "cannot decode" in bad_upload(handlers, str(path))
    assert "upload an equirectangular panorama first" in bad_upload(handlers, None)


def test_upload_box_names_unreadable_files_with_the_librarys_message(tmp_path):
    from gradio.data_classes import ImageData

    path = tmp_path / "junk.png"
    path.write_bytes(b"definitely not an image")
    with pytest.raises(gr.Error, match="cannot decode image") as info:
        panorama_input().preprocess(ImageData(path=str(path), orig_name="junk.png"))
    assert info.value.duration is None  # stays in the page until closed


def test_huge_panorama_is_refused_before_decoding(rgb_model, tmp_path):
    small = Handlers(DemoModel(rgb_model, max_width=512), ResultStore(tmp_path))
    assert "1024x512 (WxH), larger than this demo accepts: at most 512x256" in bad_upload(small, str(REAL))


def test_refine_needs_the_instance_branch(handlers):
    assert "semantic-only" in bad_upload(handlers, str(REAL), refine=True)


def test_depth_model_asks_for_missing_depth_and_refuses_other_sizes(tmp_path):
    h = Handlers(DemoModel(make_tiny_model(modalities=("image", "depth"))), ResultStore(tmp_path / "r"))
    rgb = tmp_path / "pano.png"
    Image.new("RGB", (256, 128), (90, 60, 30)).save(rgb)
    assert "upload the depth image" in bad_upload(h, str(rgb))
    depth = tmp_path / "depth.png"
    Image.new("L", (512, 256), 100).save(depth)
    assert "must have the same size" in bad_upload(h, str(rgb), str(depth))


def test_upload_folders_are_dropped_from_messages():
    folder = gr.utils.get_upload_folder()
    assert tidy_message(f"cannot decode image {folder}/0123abcd/pano.png: bad") == "cannot decode image pano.png: bad"


# ---------------------------------------------------------------------------- examples and page
def test_synthetic_example_feeds_an_rgbdn_model(tmp_path):
    model = make_tiny_model(modalities=("image", "depth", "normals"))
    rows = example_rows(model.modalities, tmp_path / "ex", size=(128, 256))
    assert len(rows) == 1 and all(Path(p).is_file() for p in rows[0])  # no real panorama: it has no depth
    out = Handlers(DemoModel(model), ResultStore(tmp_path / "r")).segment(*rows[0], 0, 0.5, False)
    assert out[0].size == (256, 128)


def test_rgb_examples_include_the_real_panorama(tmp_path):
    rows = example_rows(("image",), tmp_path, size=(64, 128))
    assert rows[0] == [str(REAL_PANORAMA), None, None] and REAL.resolve() == REAL_PANORAMA
    assert rows[1][1:] == [None, None]


def refine_box(demo) -> dict:
    (box,) = [c for c in demo.config["components"] if c.get("props", {}).get("label") == "Refine with SAM masks"]
    return box["props"]


def test_refinement_is_offered_only_with_the_instance_branch(tmp_path):
    demo = build_demo(make_tiny_model(semantic_only=False), cache_dir=tmp_path, examples=False)
    assert refine_box(demo)["interactive"] is True


def test_page_disables_refinement_for_semantic_only_and_queues_one(rgb_model, tmp_path, monkeypatch):
    demo = build_demo(rgb_model, cache_dir=tmp_path, examples=False)
    assert refine_box(demo)["interactive"] is False
    seen = {}
    monkeypatch.setattr(demo, "launch", lambda **kw: seen.update(kw))
    launch_demo(demo, host="127.0.0.1", port=7999)
    assert demo._queue.default_concurrency_limit == 1
    assert str(tmp_path) in seen["allowed_paths"] and seen["server_port"] == 7999


def test_result_store_keeps_the_newest(tmp_path):
    store = ResultStore(tmp_path, keep=2)
    folders = [store.new_folder() for _ in range(4)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in folders[-2:])
    assert "pano=" not in viewer_html(None)
    assert "overlay=" not in viewer_html(ViewerFiles(folders[-1] / "panorama.jpg", None))


# ---------------------------------------------------------------------------- CLI
def test_cli_module_imports_neither_gradio_nor_torch():
    code = "import sys, panosamic.apps.demo.cli; print(sorted({'gradio', 'torch'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_arguments():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["--checkpoint", "ck", "--subfolder", "s", "--port", "8001", "--share", "--refine"])
    assert (args.checkpoint, args.subfolder, args.port, args.share, args.refine, args.host) == (
        "ck", "s", 8001, True, True, "127.0.0.1"
    )
    assert args.device == "auto" and args.sam_weights_path is None
    with pytest.raises(ValueError, match="--port"):
        cli.check(parser.parse_args(["--checkpoint", "ck", "--port", "0"]))


def test_demo_is_a_subcommand_whose_help_needs_neither_gradio_nor_torch():
    code = (
        "import sys\nfrom panosamic.cli import main\ntry:\n    main(['demo', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted({'gradio', 'torch'} & set(sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "--checkpoint" in out.stdout and "--share" in out.stdout and out.stdout.strip().endswith("[]")


def test_cli_names_the_install_command_without_gradio(monkeypatch):
    monkeypatch.setattr(cli.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match=r"pip install 'panosamic\[demo\]'"):
        cli.check_gradio()


# ---------------------------------------------------------------------------- server log, share hint, layout
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(rgb_model, tmp_path_factory):
    """The page served on a free loopback port by the CLI's own launcher (not blocking)."""
    demo = build_demo(rgb_model, cache_dir=tmp_path_factory.mktemp("served"), examples=False)
    cli.serve(demo, host="127.0.0.1", port=free_port(), share=False, block=False)
    yield demo
    demo.close()


def test_cli_tells_command_line_users_about_share_not_launch(rgb_model, tmp_path, capfd):
    demo = build_demo(rgb_model, cache_dir=tmp_path, examples=False)
    try:
        cli.serve(demo, host="127.0.0.1", port=free_port(), share=False, block=False)
        out = capfd.readouterr()
    finally:
        demo.close()
    text = out.out + out.err
    assert "add --share for a temporary public gradio.live link" in text
    assert f"serving on {demo.local_url}" in text
    assert "share=True" not in text and "launch()" not in text


def test_bad_upload_is_one_message_in_the_page_and_one_line_in_the_log(served, tmp_path, capfd):
    from gradio_client import Client, handle_file

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not a png" * 20)
    client = Client(served.local_url, verbose=False)
    capfd.readouterr()
    with pytest.raises(Exception, match="cannot decode") as info:  # the page's one message
        client.predict(handle_file(str(broken)), None, None, 0, 0.5, False, api_name="/segment")
    assert "Traceback" not in str(info.value)
    log = capfd.readouterr()
    text = log.out + log.err
    assert "Traceback" not in text, text[-3000:]
    refused = [ln for ln in text.splitlines() if ln.startswith("panosamic demo: refused a request:")]
    assert len(refused) == 1 and "cannot decode" in refused[0] and "broken.png" in refused[0], text[-3000:]


def test_chart_has_no_cut_off_legend_and_errors_badge_one_output(rgb_model, tmp_path):
    demo = build_demo(rgb_model, cache_dir=tmp_path, examples=False)
    comps = {c["id"]: c for c in demo.config["components"]}
    (chart,) = [c for c in comps.values() if c.get("props", {}).get("elem_id") == "fractions"]
    assert chart["props"]["colors_in_legend"] == []  # the bars are named on the x axis; colours in the legend image

    def parent_of(node, target, parent=None):
        if node["id"] == target:
            return parent
        for child in node.get("children", []):
            found = parent_of(child, target, node)
            if found is not None:
                return found
        return None

    row = parent_of(demo.config["layout"], chart["id"])
    legend = next(comps[c["id"]] for c in row["children"] if comps[c["id"]]["props"].get("label") == "Legend")
    assert chart["props"]["scale"] > legend["props"]["scale"]  # the chart gets the room beside the legend image
    (overlay,) = [c["id"] for c in comps.values() if c.get("props", {}).get("elem_id") == "overlay"]
    segment = next(d for d in demo.config["dependencies"] if d.get("api_name") == "segment")
    assert segment["show_progress_on"] == [overlay] and len(segment["outputs"]) == 6
