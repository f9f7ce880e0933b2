"""Prediction for people: segment panoramas given as files, PIL images, arrays or tensors.

Python::

    result = model.predict("pano.jpg", depth="pano_depth.png")       # or predict(model, ...)
    result.labels            # (H, W) int64 class indices, the input's size
    result.logits            # (K, H, W) float32 logits; result.probabilities() -> softmax
    result.colorize(); result.overlay(0.5); result.legend()         # PIL images
    result.save("out/")      # label PNG, colour PNG, overlay JPG, legend PNG

Command line::

    panosamic predict pano.jpg more_panos/ --checkpoint dfki-av/PanoSAMic \
        --subfolder stanford2d3ds-vith-rgb-fold1 --out predictions/

Inputs must be equirectangular (width = 2 x height), any size; the model resizes them to
its native size and returns logits at the input's size.

Depth is either a *pseudo-disparity image* (what the model was trained on: 1 or 3 channels,
0..255, near = bright, missing = 0), used as is, or *metric depth* when ``depth_scale`` is
given (metres per stored unit: 1.0 for float metres, 0.001 for millimetre PNGs,
128/65535 for Stanford2D3DS' raw PNGs). Metric depth ``d`` is converted as in training:
``(1 - clip(d, 0, T) / T) * valid * 255`` where ``T`` is the checkpoint's depth threshold
(``model.depth_threshold``, or ``depth_threshold=``) and ``valid`` excludes non-finite values,
values <= 0 and the 16-bit "missing" value 65535. Normals are the colour-coded normal image
(3 channels, 0..255), used as is.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from panosamic import viz
from panosamic.data.depth import metres_to_disparity
from panosamic.io import atomic_path, atomic_write_text

__all__ = [
    "PredictionResult",
    "add_arguments",
    "collect_inputs",
    "depth_to_disparity",
    "load_depth",
    "load_image",
    "load_normals",
    "predict",
    "predict_batch",
    "run",
]

Precision = Literal["fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("fp32", "bf16")
#: Suffixes of panorama files picked up from folders.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
#: Suffixes accepted for depth / normals files (``.npy``: a numpy array, e.g. float metres).
AUX_SUFFIXES: tuple[str, ...] = IMAGE_SUFFIXES + (".tif", ".tiff", ".npy")
#: Metres per unit of Stanford2D3DS' raw 16-bit depth PNGs.
STANFORD_DEPTH_SCALE: float = 128.0 / 65535.0
#: The "missing" value of 16-bit depth PNGs (Stanford2D3DS).
DEPTH_MISSING_U16: int = 65535
#: Name of the legend and of the summary written by :meth:`PredictionResult.save` / the CLI.
LEGEND_FILE = "legend.png"
SUMMARY_FILE = "summary.json"

_PathLike = (str, os.PathLike)


# ============================================================================ result
@dataclass
class PredictionResult:
    """What :func:`predict` returns for one panorama.

    ``labels`` are refined by the SAM masks when ``refined`` is true; ``logits`` are always
    the model's raw semantic logits.
    """

    logits: torch.Tensor  # (K, H, W) float32, CPU
    labels: np.ndarray  # (H, W) int64
    class_names: tuple[str, ...]
    palette: np.ndarray  # (K, 3) uint8
    image: np.ndarray  # (H, W, 3) uint8, the RGB input
    instance_masks: list[dict] = field(default_factory=list)
    refined: bool = False
    name: str | None = None

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return int(self.labels.shape[0]), int(self.labels.shape[1])

    def probabilities(self) -> torch.Tensor:
        """Softmax over classes of the logits, (K, H, W)."""
        return torch.softmax(self.logits.float(), dim=0)

    def class_fractions(self) -> dict[str, float]:
        """Fraction of the panorama's pixels predicted as each class."""
        counts = np.bincount(self.labels.ravel(), minlength=self.num_classes)[: self.num_classes]
        total = max(int(self.labels.size), 1)
        return {name: float(c) / total for name, c in zip(self.class_names, counts)}

    def colorize(self) -> Image.Image:
        """The label map in the palette's colours."""
        return Image.fromarray(viz.colorize(self.labels, self.palette))

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The colour label map blended over the input panorama (``alpha`` = colour weight)."""
        return Image.fromarray(viz.overlay(self.image, self.labels, self.palette, alpha))

    def legend(self, only_present: bool = False) -> Image.Image:
        """Class colour swatches with names and this panorama's pixel percentages."""
        return viz.legend(
            self.class_names,
            self.palette,
            fractions=list(self.class_fractions().values()),
            only_present=only_present,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: size, class pixel fractions, refinement, number of SAM masks."""
        return {
            "size": list(self.size),
            "refined": self.refined,
            "num_instance_masks": len(self.instance_masks),
            "class_fractions": self.class_fractions(),
        }

    def save(
        self,
        out_dir: str | os.PathLike,
        name: str | None = None,
        *,
        overlay_alpha: float = 0.5,
        overlay_format: Literal["jpg", "png"] = "jpg",
        legend: bool = True,
    ) -> dict[str, Path]:
        """Write ``{name}_labels.png`` (class index per pixel), ``{name}_color.png``,
        ``{name}_overlay.{jpg|png}`` and (``legend=True``) ``legend.png`` into ``out_dir``.

        Every file is written atomically. Returns the paths by kind.
        """
        name = name or self.name or "prediction"
        if overlay_format not in ("jpg", "png"):
            raise ValueError(f"overlay_format must be 'jpg' or 'png', got {overlay_format!r}")
        out = Path(out_dir)
        paths = {
            "labels": out / f"{name}_labels.png",
            "color": out / f"{name}_color.png",
            "overlay": out / f"{name}_overlay.{overlay_format}",
        }
        _save_image(viz.label_image(self.labels), paths["labels"])
        _save_image(self.colorize(), paths["color"])
        _save_image(self.overlay(overlay_alpha), paths["overlay"], quality=92)
        if legend:
            paths["legend"] = out / LEGEND_FILE
            _save_image(viz.legend(self.class_names, self.palette), paths["legend"])
        return paths


def _save_image(img: Image.Image, path: Path, **kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", **kwargs)


# ============================================================================ inputs
def _describe(source: Any) -> str:
    if isinstance(source, _PathLike):
        return str(source)
    if isinstance(source, (np.ndarray, torch.Tensor)):
        return f"{type(source).__name__} of shape {tuple(source.shape)}"
    return type(source).__name__


def _read_file(path: str | os.PathLike, what: str) -> np.ndarray | Image.Image:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    if p.suffix.lower() == ".npy":
        try:
            return np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise ValueError(f"cannot read {what} array {p}: {e}") from e
    try:
        with Image.open(p) as img:
            img.load()
            return img.copy()
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        raise ValueError(f"cannot decode {what} image {p}: {e}") from e


def _to_array(source: Any, what: str) -> np.ndarray:
    """Path / PIL image / numpy array / tensor -> numpy array, channels last (H, W[, C])."""
    if isinstance(source, _PathLike):
        source = _read_file(source, what)
    if isinstance(source, Image.Image):
        img = source
        if img.mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "HSV", "1"):
            img = img.convert("L" if img.mode in ("LA", "1") else "RGB")
        return np.asarray(img)
    if isinstance(source, torch.Tensor):
        t = source.detach().cpu()
        if t.dtype == torch.bfloat16 or t.dtype == torch.float16:
            t = t.float()
        arr = t.numpy()
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)  # tensors are usually C x H x W
        return arr
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        return arr
    raise TypeError(
        f"{what}: expected a file path, PIL image, numpy array or torch tensor, got {type(source).__name__}"
    )


def check_panorama_size(h: int, w: int, what: str = "image") -> None:
    """Refuse anything that is not an equirectangular 2:1 panorama."""
    if h < 1 or w != 2 * h:
        raise ValueError(
            f"{what} is {w}x{h} (WxH), which is not an equirectangular panorama: "
            "expected the width to be exactly twice the height (e.g. 1024x512)"
        )


def _to_chw(arr: np.ndarray, what: str, channels: tuple[int, ...]) -> torch.Tensor:
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[-1] not in channels:
        raise ValueError(
            f"{what}: expected an H x W image with {' or '.join(map(str, channels))} channel(s), got shape {arr.shape}"
        )
    if arr.dtype == np.bool_:
        raise TypeError(f"{what}: expected image values, got a boolean array")
    if arr.shape[-1] == 4:
        arr = arr[..., :3]
    t = torch.from_numpy(np.ascontiguousarray(arr).astype(np.float32, copy=False)).permute(2, 0, 1)
    if t.shape[0] == 1:
        t = t.expand(3, -1, -1)
    check_panorama_size(int(t.shape[1]), int(t.shape[2]), what)
    return t.contiguous()


def load_image(source: Any) -> torch.Tensor:
    """An RGB panorama (path, PIL image, uint8 array/tensor or float 0..255) -> (3, H, W) float32."""
    arr = _to_array(source, "image")
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 1):
        raise ValueError(f"image {_describe(source)} is greyscale; expected an RGB panorama")
    t = _to_chw(arr, "image", (3, 4))
    _check_range(t, "image", source)
    return t


def load_normals(source: Any) -> torch.Tensor:
    """The colour-coded normal image (3 channels, 0..255) -> (3, H, W) float32."""
    arr = _to_array(source, "normals")
    t = _to_chw(arr, "normals", (3, 4))
    _check_range(t, "normals", source)
    return t


def _check_range(t: torch.Tensor, what: str, source: Any) -> None:
    if not torch.isfinite(t).all():
        raise ValueError(f"{what} {_describe(source)} contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < 0 or hi > 255:
        raise ValueError(
            f"{what} {_describe(source)} has values in [{lo:g}, {hi:g}]; expected the 0..255 scale"
        )
    if 0 < hi <= 1.0:
        warnings.warn(
            f"{what} {_describe(source)} has values up to {hi:g}: it looks like a 0..1 image, but 0..255 "
            "is expected (multiply by 255)",
            stacklevel=3,
        )


def depth_to_disparity(depth_m: np.ndarray, threshold: float, valid: np.ndarray | None = None) -> np.ndarray:
    """Metric depth (metres) -> pseudo-disparity, as in training; ``valid`` defaults to finite, > 0."""
    d = np.asarray(depth_m, dtype=np.float64)
    ok = np.isfinite(d) & (d > 0)
    if valid is not None:
        ok &= np.asarray(valid, dtype=bool)
    return metres_to_disparity(d, ok, threshold)


def load_depth(
    source: Any, *, depth_scale: float | None = None, depth_threshold: float | None = None
) -> torch.Tensor:
    """Depth -> the (3, H, W) float32 pseudo-disparity image the model takes (see module doc).

    Without ``depth_scale`` the input must already be a pseudo-disparity image (0..255).
    With ``depth_scale`` (metres per unit) it is metric depth and ``depth_threshold`` (metres)
    is required.
    """
    arr = _to_array(source, "depth")
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if depth_scale is None:
        if arr.dtype.kind in "iu" or arr.dtype.kind == "f":
            hi = float(np.nanmax(arr)) if arr.size else 0.0
            if hi > 255:
                raise ValueError(
                    f"depth {_describe(source)} has values up to {hi:g}, so it is not a 0..255 pseudo-disparity "
                    "image; if it is metric depth pass depth_scale (metres per unit: 1.0 for metres, 0.001 for "
                    f"millimetres, {STANFORD_DEPTH_SCALE:.8g} for Stanford2D3DS PNGs) -- CLI: --depth-scale"
                )
            if arr.dtype.kind == "f" and 0 < hi < 32:
                warnings.warn(
                    f"depth {_describe(source)} peaks at {hi:g}: a pseudo-disparity image usually reaches ~255; "
                    "if this is metric depth, pass depth_scale",
                    stacklevel=2,
                )
        t = _to_chw(arr, "depth", (1, 3))
        _check_range(t, "depth", source)
        return t
    if not isinstance(depth_scale, (int, float)) or not depth_scale > 0:
        raise ValueError(f"depth_scale must be a positive number of metres per unit, got {depth_scale!r}")
    if depth_threshold is None:
        raise ValueError(
            "metric depth needs the checkpoint's depth threshold (the 99.5% inlier depth of its training "
            "split), but the model has none: pass depth_threshold=<metres> (CLI: --depth-threshold)"
        )
    if arr.ndim == 3:
        if arr.shape[-1] == 3 and not (
            np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2])
        ):
            raise ValueError(f"metric depth {_describe(source)} must have one channel, got shape {arr.shape}")
        arr = arr[..., 0]
    valid = None
    if arr.dtype == np.uint16 or (arr.dtype.kind in "iu" and arr.size and arr.max() == DEPTH_MISSING_U16):
        valid = arr != DEPTH_MISSING_U16
    disp = depth_to_disparity(arr.astype(np.float64) * float(depth_scale), float(depth_threshold), valid)
    return _to_chw(disp, "depth", (1,))


# ============================================================================ class names
def class_info(model: Any) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and palette of a model: its own attributes, else its dataset's, else defaults."""
    k = int(model.num_classes)
    names = getattr(model, "class_names", None)
    palette = getattr(model, "palette", None)
    dataset = getattr(model, "dataset", None)
    if (names is None or palette is None) and dataset:
        try:
            from panosamic.data import get_dataset_info

            info = get_dataset_info(dataset)
        except (ImportError, ValueError, KeyError):
            info = None
        if info is not None and info.num_classes == k:
            names = info.class_names if names is None else names
            palette = info.palette if palette is None else palette
    names = tuple(str(n) for n in names) if names is not None else viz.default_class_names(k)
    palette = viz.check_palette(palette, k) if palette is not None else viz.default_palette(k)
    if len(names) != k:
        raise ValueError(f"the model has {k} classes but {len(names)} class names")
    return names, palette[:k]


# ============================================================================ running
@dataclass
class _Prepared:
    inputs: dict[str, torch.Tensor]
    rgb: np.ndarray
    name: str | None = None


def _prepare(
    model: Any,
    image: Any,
    depth: Any,
    normals: Any,
    *,
    depth_scale: float | None,
    depth_threshold: float | None,
    name: str | None = None,
) -> _Prepared:
    modalities = tuple(model.modalities)
    rgb = load_image(image)
    inputs = {"image": rgb}
    for key, value, loader in (
        ("depth", depth, lambda s: load_depth(s, depth_scale=depth_scale, depth_threshold=depth_threshold)),
        ("normals", normals, load_normals),
    ):
        if key in modalities:
            if value is None:
                flag = "--depth" if key == "depth" else "--normals"
                raise ValueError(
                    f"this model uses {list(modalities)}: pass {key}=... ({flag}) for {_describe(image)}"
                )
            t = loader(value)
            if t.shape[-2:] != rgb.shape[-2:]:
                raise ValueError(
                    f"{key} is {t.shape[-1]}x{t.shape[-2]} but the image is {rgb.shape[-1]}x{rgb.shape[-2]} (WxH); "
                    "they must have the same size"
                )
            inputs[key] = t
        elif value is not None:
            warnings.warn(f"{key} given but the model uses only {list(modalities)}: ignored", stacklevel=3)
    rgb_u8 = rgb.round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    return _Prepared(inputs, rgb_u8, name)


def _resolve_device(model: Any, device: str | torch.device | None) -> torch.device:
    current = next(model.parameters()).device
    if device is None:
        return current
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if dev != current:
        model.to(dev)
    return dev


def _run(
    model: Any,
    prepared: Sequence[_Prepared],
    *,
    refine: bool,
    device: str | torch.device | None,
    precision: str,
) -> list[PredictionResult]:
    from panosamic.model.instance_semantic_fusion import refine_labels

    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if refine and getattr(model, "semantic_only", True):
        raise ValueError(
            "refine needs the SAM instance branch, but this model is semantic-only: load it with "
            "semantic_only=False"
        )
    dev = _resolve_device(model, device)
    names, palette = class_info(model)
    was_training = model.training
    model.eval()
    try:
        # bf16: the model's own mixed-precision mode (encoder blocks in bf16, the rest fp32)
        with torch.no_grad(), model.inference_options_applied(precision=precision):
            outs = model([{k: v.to(dev) for k, v in p.inputs.items()} for p in prepared])
    finally:
        model.train(was_training)
    results = []
    for p, out in zip(prepared, outs):
        logits = out["sem_preds"].float().cpu()
        if logits.ndim == 4:
            logits = logits[0]
        masks = [
            dict(m, segmentation=torch.as_tensor(m["segmentation"]).cpu())
            for m in out.get("instance_masks", [])
        ]
        labels = logits.argmax(dim=0)
        if refine and masks:
            labels = refine_labels(labels, masks)
        results.append(
            PredictionResult(
                logits=logits,
                labels=labels.numpy().astype(np.int64),
                class_names=names,
                palette=palette,
                image=p.rgb,
                instance_masks=masks,
                refined=bool(refine),
                name=p.name,
            )
        )
    return results


def predict(
    model: Any,
    image: Any,
    depth: Any = None,
    normals: Any = None,
    *,
    refine: bool = False,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
) -> PredictionResult:
    """Segment one panorama; see the module docstring for the accepted inputs.

    ``refine``: majority-vote the labels inside SAM's automatic masks (needs a model built
    with ``semantic_only=False``). ``device``: run there (the model is moved); default: where
    the model is. ``precision``: ``"fp32"`` or ``"bf16"`` (autocast). ``depth_threshold``
    overrides ``model.depth_threshold`` for metric depth.
    """
    return predict_batch(
        model,
        [image],
        None if depth is None else [depth],
        None if normals is None else [normals],
        refine=refine,
        device=device,
        precision=precision,
        depth_scale=depth_scale,
        depth_threshold=depth_threshold,
    )[0]


def predict_batch(
    model: Any,
    images: Sequence[Any],
    depths: Sequence[Any] | None = None,
    normals: Sequence[Any] | None = None,
    *,
    refine: bool = False,
    device: str | torch.device | None = None,
    precision: Precision = "fp32",
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    batch_size: int = 1,
) -> list[PredictionResult]:
    """Segment several panoramas (sizes may differ), ``batch_size`` per forward pass.

    ``depths`` / ``normals``: sequences parallel to ``images`` (or None). Same options as
    :func:`predict`.
    """
    if isinstance(images, (*_PathLike, np.ndarray, torch.Tensor, Image.Image)):
        raise TypeError("predict_batch takes a sequence of images; use predict() for one image")
    images = list(images)
    n = len(images)
    depths = [None] * n if depths is None else list(depths)
    normals = [None] * n if normals is None else list(normals)
    if len(depths) != n or len(normals) != n:
        raise ValueError(
            f"got {n} images, {len(depths)} depths and {len(normals)} normals; expected equal counts"
        )
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    threshold = depth_threshold if depth_threshold is not None else getattr(model, "depth_threshold", None)
    prepared = [
        _prepare(model, im, d, nm, depth_scale=depth_scale, depth_threshold=threshold, name=_name_of(im))
        for im, d, nm in zip(images, depths, normals)
    ]
    results: list[PredictionResult] = []
    for start in range(0, n, batch_size):
        results += _run(
            model, prepared[start : start + batch_size], refine=refine, device=device, precision=precision
        )
    return results


def _name_of(source: Any) -> str | None:
    return Path(source).stem if isinstance(source, _PathLike) else None


# ============================================================================ CLI helpers
def collect_inputs(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """Files as given, plus the image files (jpg/jpeg/png/webp) directly inside folders, sorted."""
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise FileNotFoundError(f"no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images in folder {p}")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


_AUX_SUFFIX_WORDS = {"depth": ("depth", "disparity", "disp"), "normals": ("normals", "normal")}
_RGB_WORDS = ("rgb", "color", "colour", "image", "img")


def _aux_candidates(stem: str, kind: str) -> list[str]:
    """Stems under which the ``kind`` file of the panorama ``stem`` may be stored."""
    words = _AUX_SUFFIX_WORDS[kind]
    stems = [stem] + [f"{stem}{sep}{w}" for w in words for sep in ("_", ".", "-")]
    for rgb in _RGB_WORDS:
        m = re.match(rf"^(.*?)([_.-]){rgb}$", stem, flags=re.IGNORECASE)
        if m:
            stems += [f"{m.group(1)}{m.group(2)}{w}" for w in words] + [m.group(1)]
    return stems


def match_aux(inputs: Sequence[Path], aux: str | os.PathLike | None, kind: str) -> list[Path | None]:
    """Pair every input with its depth / normals file: ``aux`` is one file (one input only) or a
    folder searched by name (``pano.png`` -> ``pano.png``, ``pano_depth.png``, ...;
    ``x_rgb.png`` -> ``x_depth.png``). Unmatched inputs get None."""
    if aux is None:
        return [None] * len(inputs)
    a = Path(aux).expanduser()
    if a.is_file():
        if len(inputs) != 1:
            raise ValueError(
                f"--{kind} {a} is a single file but there are {len(inputs)} inputs; pass a folder"
            )
        return [a]
    if not a.is_dir():
        raise FileNotFoundError(f"--{kind} path not found: {a}")
    files = {}
    for q in sorted(a.iterdir()):
        if q.is_file() and q.suffix.lower() in AUX_SUFFIXES:
            files.setdefault(q.stem.lower(), q)
    matched: list[Path | None] = []
    for p in inputs:
        hit = None
        for stem in _aux_candidates(p.stem, kind):
            q = files.get(stem.lower())
            if q is not None and q.resolve() != p.resolve():
                hit = q
                break
        matched.append(hit)
    return matched


def _unique_names(inputs: Sequence[Path]) -> list[str]:
    names: list[str] = []
    used: set[str] = set()
    for p in inputs:
        base = p.stem
        name, i = base, 2
        if name in used:
            name = f"{p.parent.name}_{base}" if p.parent.name else base
        while name in used:
            name, i = f"{base}-{i}", i + 1
        used.add(name)
        names.append(name)
    return names


_VARIANT = re.compile(
    r"^(?P<dataset>[a-z0-9]+)-vit(?P<vit>[bhl])-(?P<mods>rgbdn|rgbd|rgb)-fold(?P<fold>\d+)$"
)
_MODS = {"rgb": ("image",), "rgbd": ("image", "depth"), "rgbdn": ("image", "depth", "normals")}


def parse_variant(subfolder: str | None) -> dict[str, Any]:
    """What a published subfolder name (``{dataset}-vit{b|l|h}-{rgb|rgbd|rgbdn}-fold{n}``) says:
    dataset, vit_model, modalities, num_classes (when the dataset is known). Empty if no match."""
    if not subfolder:
        return {}
    m = _VARIANT.match(Path(subfolder).name.lower())
    if not m:
        return {}
    out: dict[str, Any] = {
        "dataset": m["dataset"],
        "vit_model": f"vit_{m['vit']}",
        "modalities": _MODS[m["mods"]],
    }
    try:
        from panosamic.data import get_dataset_info

        out["num_classes"] = get_dataset_info(m["dataset"]).num_classes
    except (ImportError, ValueError, KeyError):
        pass
    return out


def load_model(args: argparse.Namespace) -> Any:
    """Build the model for ``panosamic predict`` from ``--checkpoint`` (Hub repo id or folder).

    The architecture comes from the checkpoint's ``config.json``; published subfolders have
    none, so it is then taken from the flags, or inferred from the subfolder's name
    (``{dataset}-vit{b|l|h}-{rgb|rgbd|rgbdn}-fold{n}``, with the library's default config).
    """
    from panosamic.model import PanoSAMic

    given: dict[str, Any] = {
        "config_path": args.config,
        "vit_model": args.vit,
        "modalities": args.modalities,
        "num_classes": args.num_classes,
    }
    common: dict[str, Any] = {
        "subfolder": args.subfolder,
        "sam_weights_path": args.sam_weights,
        "semantic_only": not args.refine,
        "revision": args.revision,
        "local_files_only": bool(args.local_files_only),
    }
    common = {k: v for k, v in common.items() if v is not None}
    inferred = parse_variant(args.subfolder)
    try:
        model = PanoSAMic.from_pretrained_panosamic(
            args.checkpoint, **common, **{k: v for k, v in given.items() if v is not None}
        )
    except ValueError as e:
        # No config.json and not all of the architecture given: fill the gaps from the name.
        if not inferred or "must be given" not in str(e):
            raise
        from panosamic.config import PanoSAMicConfig

        filled = {
            "config_path": given["config_path"] or PanoSAMicConfig(),
            "vit_model": given["vit_model"] or inferred.get("vit_model"),
            "modalities": given["modalities"] or inferred.get("modalities"),
            "num_classes": given["num_classes"] or inferred.get("num_classes"),
        }
        model = PanoSAMic.from_pretrained_panosamic(
            args.checkpoint, **common, **{k: v for k, v in filled.items() if v is not None}
        )
    if getattr(model, "dataset", None) is None and inferred.get("dataset"):
        model.dataset = inferred["dataset"]
    return model


# ============================================================================ CLI
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="panorama files or folders (jpg/png/webp)")
    parser.add_argument(
        "--checkpoint", required=True, help="Hub repo id (e.g. dfki-av/PanoSAMic) or a local folder"
    )
    parser.add_argument("--subfolder", help="variant subfolder, e.g. stanford2d3ds-vith-rgbd-fold1")
    parser.add_argument("--depth", help="depth file (one input) or folder with depth files matched by name")
    parser.add_argument(
        "--normals", help="normals file (one input) or folder with normal images matched by name"
    )
    parser.add_argument("--out", default="predictions", help="output folder (default: %(default)s)")
    parser.add_argument(
        "--refine", action="store_true", help="refine labels with SAM's automatic masks (slower)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32", help="default: %(default)s")
    parser.add_argument(
        "--batch-size", type=int, default=1, help="panoramas per forward pass (default: %(default)s)"
    )
    parser.add_argument(
        "--sam-grid",
        choices=("image", "canvas"),
        default="image",
        help="with --refine: prompt SAM only on the panorama (default) or on the whole padded canvas "
        "like the reference (twice the work, same semantic logits)",
    )
    g = parser.add_argument_group("depth")
    g.add_argument(
        "--depth-scale", type=float, help="depth files are metric: metres per stored unit (e.g. 0.001)"
    )
    g.add_argument("--depth-threshold", type=float, help="metres mapped to black (default: the checkpoint's)")
    g = parser.add_argument_group("output")
    g.add_argument(
        "--overlay-alpha", type=float, default=0.5, help="colour weight of the overlay (default: %(default)s)"
    )
    g.add_argument("--overlay-format", choices=("jpg", "png"), default="jpg", help="default: %(default)s")
    g = parser.add_argument_group(
        "checkpoints without a config.json (inferred from published subfolder names)"
    )
    g.add_argument("--config", help="model config JSON")
    g.add_argument("--vit", choices=("vit_b", "vit_l", "vit_h"), help="SAM ViT size")
    g.add_argument("--modalities", help="comma-separated, e.g. image,depth")
    g.add_argument("--num-classes", type=int)
    g.add_argument(
        "--sam-weights", help="SAM .pth file or folder (default: the cache; downloaded if missing)"
    )
    g.add_argument("--revision", help="Hub revision")
    g.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {args.batch_size}")
    if not 0.0 <= args.overlay_alpha <= 1.0:
        raise ValueError(f"--overlay-alpha must lie in [0, 1], got {args.overlay_alpha}")
    if args.precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {PRECISIONS}")
    inputs = collect_inputs(args.inputs)
    depths = match_aux(inputs, args.depth, "depth")
    normals = match_aux(inputs, args.normals, "normals")
    names = _unique_names(inputs)
    out_dir = Path(args.out)
    model = load_model(args)
    _resolve_device(model, args.device)
    if args.refine:
        from panosamic.model.instance import InstanceSettings

        model.instance_settings = InstanceSettings(grid=args.sam_grid)
    threshold = (
        args.depth_threshold if args.depth_threshold is not None else getattr(model, "depth_threshold", None)
    )
    class_names, palette = class_info(model)

    summary: dict[str, Any] = {
        "checkpoint": str(args.checkpoint),
        "subfolder": args.subfolder,
        "refine": bool(args.refine),
        "class_names": list(class_names),
        "palette": palette.tolist(),
        "predictions": {},
        "skipped": [],
    }
    failed: list[tuple[Path, str]] = []

    def fail(path: Path, err: BaseException) -> None:
        msg = str(err) or type(err).__name__
        failed.append((path, msg))
        summary["skipped"].append({"input": str(path), "error": msg})
        tqdm.write(f"panosamic predict: skipped {path}: {msg}", file=sys.stderr)

    start = time.perf_counter()
    todo = list(zip(inputs, depths, normals, names))
    with tqdm(total=len(todo), unit="pano", desc="predict", disable=None) as bar:
        for b in range(0, len(todo), args.batch_size):
            batch: list[tuple[Path, _Prepared]] = []
            for path, d, nm, name in todo[b : b + args.batch_size]:
                try:
                    for kind, found, folder in (("depth", d, args.depth), ("normals", nm, args.normals)):
                        if kind in model.modalities and found is None and folder is not None:
                            raise FileNotFoundError(f"no {kind} file matching {path.name} in {folder}")
                    prep = _prepare(
                        model, path, d, nm, depth_scale=args.depth_scale, depth_threshold=threshold, name=name
                    )
                    batch.append((path, prep))
                except (ValueError, TypeError, OSError) as e:
                    fail(path, e)
                    bar.update(1)
            if not batch:
                continue

            def infer(preps: list[_Prepared]) -> list[PredictionResult]:
                return _run(model, preps, refine=args.refine, device=None, precision=args.precision)

            done_batch: list[tuple[Path, _Prepared, PredictionResult]] = []
            try:
                results = infer([p for _, p in batch])
                done_batch = [(path, prep, res) for (path, prep), res in zip(batch, results)]
            except (ValueError, RuntimeError) as e:
                if len(batch) == 1:
                    fail(batch[0][0], e)
                    bar.update(1)
                    continue
                for path, prep in batch:  # find the panorama that fails, keep the others
                    try:
                        done_batch.append((path, prep, infer([prep])[0]))
                    except (ValueError, RuntimeError) as e1:
                        fail(path, e1)
                        bar.update(1)
            for path, prep, res in done_batch:
                try:
                    files = res.save(
                        out_dir,
                        prep.name,
                        overlay_alpha=args.overlay_alpha,
                        overlay_format=args.overlay_format,
                        legend=False,
                    )
                    summary["predictions"][prep.name] = {
                        "input": str(path),
                        "files": {k: v.name for k, v in files.items()},
                        **res.summary(),
                    }
                except OSError as e:
                    fail(path, e)
                bar.update(1)
    seconds = time.perf_counter() - start
    done = len(summary["predictions"])
    summary["seconds"] = round(seconds, 3)
    summary["seconds_per_panorama"] = round(seconds / max(done, 1), 3)
    if done:
        _save_image(viz.legend(class_names, palette), out_dir / LEGEND_FILE)
        summary["legend"] = LEGEND_FILE
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    print(f"wrote {done} prediction(s) to {out_dir}" + (f"; skipped {len(failed)}:" if failed else ""))
    for path, msg in failed:
        print(f"  {path}: {msg}", file=sys.stderr)
    return 1 if failed else 0
