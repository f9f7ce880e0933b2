"""The Gradio page of ``panosamic demo``: upload a panorama, see the overlay, legend, class chart,
timings and a 360° view.

Python::

    from panosamic.apps.demo.app import build_demo, launch_demo
    demo = build_demo(model)          # a loaded PanoSAMic, or a DemoModel
    launch_demo(demo, host="127.0.0.1", port=7860)
"""

from __future__ import annotations

import functools
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gradio as gr
import gradio.utils
import pandas as pd
from PIL import Image, UnidentifiedImageError

from panosamic.apps.demo.backend import (
    DEFAULT_ALPHA,
    DemoModel,
    Segmentation,
    Shown,
    format_timings,
    hex_color,
    load_image,
    reblend,
)
from panosamic.apps.demo.examples import example_rows
from panosamic.apps.demo.viewer import PANNELLUM_VERSION, STATIC_DIR, ResultStore, viewer_html

if TYPE_CHECKING:
    from panosamic.modeling.protocol import SegmentationModel

#: Errors that mean "this upload / setting is wrong"; shown in the page, the server keeps serving.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, OSError, RuntimeError)
#: Depth / normals files the upload boxes take.
AUX_FILE_TYPES = [".png", ".jpg", ".jpeg", ".webp", ".tif", ".tiff", ".npy"]
#: Largest upload Gradio accepts.
MAX_FILE_SIZE = "100mb"
CSS = "#panosamic-viewer { min-height: 420px; } footer { display: none !important; }"


def panorama_input(**kwargs: Any) -> gr.Image:
    """The panorama upload box (``type="filepath"``); unreadable uploads get the library's message
    instead of Pillow's. (The wrapper sits on the instance: a ``gr.Image`` subclass would make
    Gradio write a ``.pyi`` stub next to this file.)"""
    box = gr.Image(type="filepath", **kwargs)
    gradio_preprocess = box.preprocess

    def preprocess(payload: Any) -> Any:
        try:
            return gradio_preprocess(payload)
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as e:
            try:
                load_image(payload.path)
            except (ValueError, FileNotFoundError) as err:
                raise page_error(str(err)) from err
            raise page_error(f"cannot read the uploaded panorama: {e}") from e

    box.preprocess = preprocess  # type: ignore[method-assign]
    return box


def page_error(message: str) -> gr.Error:
    """The error shown in the page (kept until closed), without Gradio's upload folders; the server log gets
    one line (no traceback: a bad upload is the user's, not the server's, problem)."""
    message = tidy_message(message)
    print(f"panosamic demo: refused a request: {message}", file=sys.stderr, flush=True)
    return gr.Error(message, duration=None, print_exception=False)


def tidy_message(message: str) -> str:
    """Drop Gradio's upload folders from paths in a message: ``/tmp/gradio/<hash>/pano.png`` -> ``pano.png``."""
    return re.sub(re.escape(gradio.utils.get_upload_folder()) + r"/[^/\s]+/", "", message)


def _user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``fn``; library errors become one line in the page, library warnings become toasts."""

    @functools.wraps(fn)
    def wrapped(*args: Any) -> Any:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                out = fn(*args)
            except gr.Error:
                raise
            except USER_ERRORS as e:
                raise page_error(str(e) or type(e).__name__) from e
        for w in caught:
            gr.Warning(tidy_message(str(w.message)))
        return out

    return wrapped


class Handlers:
    """The page's event handlers, usable without a browser (unit tests call them directly)."""

    def __init__(self, demo_model: DemoModel, store: ResultStore) -> None:
        self.demo_model = demo_model
        self.store = store

    def segment(
        self,
        image: str | None,
        depth: str | None,
        normals: str | None,
        depth_scale: float | None,
        alpha: float,
        refine: bool,
    ) -> tuple[Image.Image, Image.Image, pd.DataFrame, str, str, Shown]:
        seg: Segmentation = self.demo_model.segment(
            image,
            depth,
            normals,
            refine=bool(refine),
            alpha=float(alpha),
            depth_scale=float(depth_scale) if depth_scale else None,
            store=self.store,
        )
        chart = pd.DataFrame(seg.fractions, columns=["class", "percent", "colour"])
        return (
            seg.overlay,
            seg.legend,
            chart,
            format_timings(seg.timings, seg.num_masks),
            viewer_html(seg.viewer),
            seg.shown,
        )

    def reblend(self, shown: Shown | None, alpha: float) -> tuple[Any, Any]:
        if shown is None:
            return gr.skip(), gr.skip()
        overlay, files = reblend(shown, float(alpha))
        return overlay, viewer_html(files)


def _as_demo_model(model: SegmentationModel | DemoModel) -> DemoModel:
    return model if isinstance(model, DemoModel) else DemoModel(model)


def build_demo(
    model: SegmentationModel | DemoModel,
    *,
    cache_dir: str | Path | None = None,
    examples: bool = True,
) -> gr.Blocks:
    """The demo page for one loaded model (loaded once, reused by every request).

    ``cache_dir`` holds the viewer's images and the synthetic example (default: a new temp folder).
    Launch it with :func:`launch_demo` (queue of one, the static paths allowed).
    """
    demo_model = _as_demo_model(model)
    root = Path(cache_dir) if cache_dir is not None else Path(tempfile.mkdtemp(prefix="panosamic-demo-"))
    handlers = Handlers(demo_model, ResultStore(root / "results"))
    gr.set_static_paths([STATIC_DIR, root])
    with gr.Blocks(title="PanoSAMic demo") as demo:
        gr.Markdown(
            "# PanoSAMic: semantic segmentation of 360° panoramas\n"
            "Upload an equirectangular panorama (width = 2 x height), press **Segment**, then drag in the "
            "360° view to look around.\n\n" + demo_model.describe()
        )
        with gr.Row():
            with gr.Column(scale=1):
                ins = _input_widgets(demo_model)
                run = gr.Button("Segment", variant="primary", elem_id="segment-button")
                if examples:
                    threshold = getattr(demo_model.model, "depth_threshold", None)
                    gr.Examples(
                        example_rows(demo_model.modalities, root / "examples", threshold),
                        inputs=[ins["image"], ins["depth"], ins["normals"]],
                        label="Examples",
                    )
            with gr.Column(scale=2):
                outs = _output_widgets(demo_model)
        state = gr.State(None, time_to_live=1800)
        # progress on the overlay alone: an error is one message, not a red badge on every output
        run.click(
            _user_errors(handlers.segment),
            inputs=[ins[k] for k in ("image", "depth", "normals", "depth_scale", "alpha", "refine")],
            outputs=[*(outs[k] for k in ("overlay", "legend", "chart", "timings", "viewer")), state],
            show_progress_on=[outs["overlay"]],
        )
        ins["alpha"].release(
            _user_errors(handlers.reblend), inputs=[state, ins["alpha"]], outputs=[outs["overlay"], outs["viewer"]],
            show_progress_on=[outs["overlay"]],
        )
    demo.panosamic_paths = [str(STATIC_DIR), str(root)]  # type: ignore[attr-defined]
    demo.panosamic_handlers = handlers  # type: ignore[attr-defined]
    return demo


def _input_widgets(demo_model: DemoModel) -> dict[str, gr.components.Component]:
    """Upload boxes and settings; depth / normals only show when the model takes them."""
    mods = demo_model.modalities
    w: dict[str, gr.components.Component] = {}
    w["image"] = panorama_input(label="Panorama (equirectangular, 2:1)", sources=["upload"], elem_id="panorama")
    with gr.Row(visible=len(mods) > 1):
        for kind in ("depth", "normals"):
            w[kind] = gr.File(
                label=f"{kind.capitalize()} image", file_types=AUX_FILE_TYPES, visible=kind in mods, height=120
            )
    w["depth_scale"] = gr.Number(
        value=0,
        label="Depth scale: metres per stored unit (0 = the depth is pseudo-disparity, 0..255)",
        visible="depth" in mods,
    )
    w["alpha"] = gr.Slider(0.0, 1.0, value=DEFAULT_ALPHA, step=0.05, label="Overlay opacity")
    w["refine"] = gr.Checkbox(
        value=False,
        label="Refine with SAM masks",
        interactive=demo_model.can_refine,
        info="majority vote inside SAM's automatic masks (slower)"
        if demo_model.can_refine
        else "needs SAM's instance branch: start the demo with --refine",
    )
    return w


def _output_widgets(demo_model: DemoModel) -> dict[str, gr.components.Component]:
    """Overlay, 360° view, legend, class chart and timings."""
    w: dict[str, gr.components.Component] = {}
    w["overlay"] = gr.Image(label="Overlay", type="pil", format="png", interactive=False, elem_id="overlay")
    w["viewer"] = gr.HTML(viewer_html(None), label=f"360° view (Pannellum {PANNELLUM_VERSION})")
    with gr.Row(equal_height=True):
        w["legend"] = gr.Image(label="Legend", type="pil", format="png", interactive=False, scale=1)
        # no colour legend of its own: the x axis names each bar and the legend image beside it gives the
        # colours (a 13-entry Vega legend under this chart was cut off)
        w["chart"] = gr.BarPlot(
            x="class",
            y="percent",
            color="class",
            color_map=dict(zip(demo_model.class_names, _hex_palette(demo_model))),
            colors_in_legend=[],
            sort=list(demo_model.class_names),
            y_title="% of pixels",
            x_label_angle=-45,
            label="Pixels per class",
            elem_id="fractions",
            scale=2,
        )
    w["timings"] = gr.Markdown(elem_id="timings")
    return w


def _hex_palette(demo_model: DemoModel) -> list[str]:
    return [hex_color(c) for c in demo_model.palette]


def launch_demo(
    demo: gr.Blocks,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    share: bool = False,
    block: bool = True,
    **launch_kwargs: Any,
) -> Any:
    """Queue requests one at a time (one model, never loaded twice) and serve the page."""
    demo.queue(default_concurrency_limit=1)
    return demo.launch(
        server_name=host,
        server_port=port,
        share=share,
        allowed_paths=list(getattr(demo, "panosamic_paths", [])),
        max_file_size=MAX_FILE_SIZE,
        show_error=True,
        prevent_thread_lock=not block,
        css=CSS,
        **launch_kwargs,
    )
