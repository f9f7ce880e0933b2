"""What the demo page does, without Gradio: hold one loaded model, check uploads, segment, and
turn a result into the pictures, chart data and timings the page shows.

Every use of the library's prediction API goes through the imports below (the app and the examples
import these names from here).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from PIL import Image, UnidentifiedImageError

from panosamic.apps.demo.viewer import ResultStore, ViewerFiles, write_viewer_images
from panosamic.inference import PredictionResult, class_info, load_depth, load_image, load_normals, predict
from panosamic.inference.inputs import depth_to_disparity

if TYPE_CHECKING:
    from panosamic.modeling.protocol import SegmentationModel

__all__ = [
    "DemoModel",
    "Segmentation",
    "Shown",
    "check_upload_size",
    "depth_to_disparity",
    "format_timings",
    "fractions",
    "hex_color",
    "load_demo_model",
    "load_image",
    "reblend",
]

#: Largest panorama the demo segments (width; the height is half of it).
MAX_WIDTH = 4096
#: Opacity of the overlay before the user moves the slider.
DEFAULT_ALPHA = 0.5


@dataclass(frozen=True)
class Shown:
    """One request's result as the page keeps it: the prediction (without logits and masks, to keep
    the session small) and the folder with its viewer images."""

    result: PredictionResult
    folder: Path


@dataclass(frozen=True)
class Segmentation:
    """Everything the page shows for one panorama."""

    overlay: Image.Image
    legend: Image.Image
    fractions: list[tuple[str, float, str]]  # (class, percent of pixels, colour "#rrggbb"), classes present
    timings: dict[str, float]  # seconds per step
    viewer: ViewerFiles
    shown: Shown
    num_masks: int | None = None  # SAM masks used for refinement (None: not refined)


def hex_color(rgb: Any) -> str:
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"


def check_upload_size(path: str | Path, max_width: int = MAX_WIDTH) -> None:
    """Refuse panoramas wider than ``max_width`` from the file header, before decoding the pixels.

    Unreadable files pass here; the library's reader then names what is wrong with them.
    """
    try:
        with Image.open(path) as img:
            w, h = img.size
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError, ValueError):
        return
    if w > max_width:
        raise ValueError(
            f"the panorama is {w}x{h} (WxH), larger than this demo accepts: at most {max_width}x{max_width // 2}; "
            "downscale it first"
        )


class DemoModel:
    """One loaded model, reused by every request (Gradio's queue runs one request at a time)."""

    def __init__(
        self,
        model: SegmentationModel,
        *,
        checkpoint: str = "(in-process model)",
        load_seconds: float = 0.0,
        max_width: int = MAX_WIDTH,
    ) -> None:
        self.model = model.eval()
        self.checkpoint = str(checkpoint)
        self.load_seconds = float(load_seconds)
        self.max_width = int(max_width)
        self.class_names, self.palette = class_info(model)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.model.modalities)

    @property
    def can_refine(self) -> bool:
        """True when the model has SAM's instance branch (automatic masks for refinement)."""
        return not bool(getattr(self.model, "semantic_only", True))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def describe(self) -> str:
        """One Markdown line about the loaded model."""
        name = getattr(getattr(self.model, "config", None), "name", None)
        parts = [
            f"**Checkpoint** `{self.checkpoint}`" + (f" ({name})" if name else ""),
            f"**inputs** {', '.join(self.modalities)}",
            f"**{len(self.class_names)} classes**",
            f"**device** {self.device}",
            f"loaded in {self.load_seconds:.1f} s",
            "SAM refinement available" if self.can_refine else "semantic-only (no SAM refinement)",
        ]
        return " · ".join(parts)

    def read_inputs(
        self, image: Any, depth: Any = None, normals: Any = None, *, depth_scale: float | None = None
    ) -> dict[str, torch.Tensor]:
        """Check and read the uploads the model needs; ValueError with one clear line otherwise."""
        if image is None:
            raise ValueError("upload an equirectangular panorama first (width = 2 x height, e.g. 1024x512)")
        if isinstance(image, (str, Path)):
            check_upload_size(image, self.max_width)
        inputs = {"image": load_image(image)}
        for kind, value in (("depth", depth), ("normals", normals)):
            if kind not in self.modalities:
                continue
            if value is None:
                raise ValueError(
                    f"this model uses {' + '.join(self.modalities)}: upload the {kind} image of the panorama too"
                )
            if kind == "depth":
                threshold = getattr(self.model, "depth_threshold", None)
                inputs[kind] = load_depth(value, depth_scale=depth_scale or None, depth_threshold=threshold)
            else:
                inputs[kind] = load_normals(value)
        return inputs

    def segment(
        self,
        image: Any,
        depth: Any = None,
        normals: Any = None,
        *,
        refine: bool = False,
        alpha: float = DEFAULT_ALPHA,
        depth_scale: float | None = None,
        store: ResultStore,
    ) -> Segmentation:
        """Segment one panorama and make everything the page shows."""
        if refine and not self.can_refine:
            raise ValueError("this model is semantic-only: start the demo with --refine to get SAM refinement")
        t0 = time.perf_counter()
        inputs = self.read_inputs(image, depth, normals, depth_scale=depth_scale)
        t1 = time.perf_counter()
        result = predict(self.model, inputs["image"], inputs.get("depth"), inputs.get("normals"), refine=refine)
        t2 = time.perf_counter()
        kept = dataclasses.replace(result, logits=result.logits[:0], instance_masks=[])
        shown = Shown(kept, store.new_folder())
        overlay = kept.overlay(alpha)
        viewer = write_viewer_images(shown.folder, Image.fromarray(kept.image), overlay)
        legend = kept.legend()
        t3 = time.perf_counter()
        timings = {"read inputs": t1 - t0, "model": t2 - t1, "pictures": t3 - t2, "total": t3 - t0}
        masks = len(result.instance_masks) if refine else None
        return Segmentation(overlay, legend, fractions(kept), timings, viewer, shown, masks)


def load_demo_model(
    checkpoint: str,
    *,
    subfolder: str | None = None,
    revision: str | None = None,
    config: Any = None,
    sam_weights: str | None = None,
    device: str = "auto",
    refine: bool = False,
    local_files_only: bool = False,
    max_width: int = MAX_WIDTH,
) -> DemoModel:
    """Load any checkpoint :func:`panosamic.load_model` takes, once; ``refine`` also builds SAM's
    instance branch; ``device="auto"``: CUDA when available, else the CPU."""
    from panosamic.distributed import resolve_device
    from panosamic.model import load_model

    t0 = time.perf_counter()
    model = load_model(
        checkpoint,
        subfolder=subfolder,
        config=config,
        sam_weights=sam_weights,
        device=str(resolve_device(device)),
        semantic_only=not refine,
        revision=revision,
        local_files_only=local_files_only,
    )
    label = str(checkpoint) + (f" / {subfolder}" if subfolder else "")
    return DemoModel(model, checkpoint=label, load_seconds=time.perf_counter() - t0, max_width=max_width)


def fractions(result: PredictionResult) -> list[tuple[str, float, str]]:
    """(class, percent of the pixels, colour) of the classes present, in class order."""
    return [
        (name, 100.0 * frac, hex_color(result.palette[k]))
        for k, (name, frac) in enumerate(result.class_fractions().items())
        if frac > 0
    ]


def reblend(shown: Shown, alpha: float) -> tuple[Image.Image, ViewerFiles]:
    """The overlay of a kept result at another opacity, and the viewer images for it."""
    overlay = shown.result.overlay(alpha)
    return overlay, write_viewer_images(shown.folder, Image.fromarray(shown.result.image), overlay)


def format_timings(timings: dict[str, float], num_masks: int | None = None) -> str:
    """A small Markdown table of the timings, plus the number of SAM masks when refined."""
    rows = ["| step | time |", "|---|---|"]
    rows += [f"| {step} | {seconds * 1000:.0f} ms |" for step, seconds in timings.items()]
    if num_masks is not None:
        rows.append(f"| SAM masks used | {num_masks} |")
    return "\n".join(rows)
