"""Reading panoramas for prediction: files, PIL images, arrays or tensors, and the depth /
normals that go with them (matched by file name).

Inputs must be equirectangular (width = 2 x height), any size. Depth is either a
*pseudo-disparity image* (what the model was trained on: 1 or 3 channels, 0..255, near = bright,
missing = 0), used as is, or *metric depth* when ``depth_scale`` is given (metres per stored
unit: 1.0 for float metres, 0.001 for millimetre PNGs, 128/65535 for Stanford2D3DS' raw PNGs).
Metric depth ``d`` is converted as in training: ``(1 - clip(d, 0, T) / T) * valid * 255`` where
``T`` is the checkpoint's depth threshold and ``valid`` excludes non-finite values, values <= 0
and the 16-bit "missing" value 65535. Normals are the colour-coded normal image, used as is.

Size limit: inputs above :data:`MAX_PIXELS` pixels (default 2**27 = 8192 x 16384) are refused up
front, from the file header before any decoding. Override it per call (``max_pixels=`` of
:func:`load_image` / :func:`panosamic.inference.predict`, CLI ``--max-pixels``) or for the process
(``panosamic.inference.inputs.MAX_PIXELS = ...``). PIL's own decompression-bomb check is replaced by
this one while our files are opened.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image, UnidentifiedImageError

if TYPE_CHECKING:
    import torch

#: Suffixes of panorama files picked up from folders.
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
#: Suffixes accepted for depth / normals files (``.npy``: a numpy array, e.g. float metres).
AUX_SUFFIXES: tuple[str, ...] = IMAGE_SUFFIXES + (".tif", ".tiff", ".npy")
#: Metres per unit of Stanford2D3DS' raw 16-bit depth PNGs.
STANFORD_DEPTH_SCALE: float = 128.0 / 65535.0
#: The "missing" value of 16-bit depth PNGs (Stanford2D3DS).
DEPTH_MISSING_U16: int = 65535

#: Largest input accepted, in pixels (H x W), unless ``max_pixels`` says otherwise; see the module doc.
MAX_PIXELS: int = 2**27
#: Inputs of more pixels than this (2**23 = 2048 x 4096) are predicted on the banded path: logits kept
#: at the model's native size, labels upsampled in row bands (see :mod:`panosamic.inference.predict`).
FULL_LOGITS_MAX_PIXELS: int = 2**23

_PathLike = (str, os.PathLike)


def pixel_limit(max_pixels: int | None = None) -> int:
    """``max_pixels`` checked, or the current :data:`MAX_PIXELS`."""
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {limit!r}")
    return limit


def check_pixels(h: int, w: int, source: Any, max_pixels: int | None = None, what: str = "image") -> None:
    """Refuse an input of more than ``max_pixels`` (default :data:`MAX_PIXELS`) pixels, in one line."""
    limit = pixel_limit(max_pixels)
    if h * w > limit:
        raise ValueError(
            f"{what} {_describe(source)} is {w}x{h} (WxH) = {h * w:,} pixels, above the limit of {limit:,} "
            "pixels; to predict it anyway raise the limit: max_pixels=N (CLI: --max-pixels N) or "
            "panosamic.inference.inputs.MAX_PIXELS"
        )


def _is_tensor(x: Any) -> bool:
    """Whether ``x`` is a torch tensor (without importing torch: a tensor exists only if torch is loaded)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _as_tensor(arr: np.ndarray) -> torch.Tensor:
    import torch

    return torch.from_numpy(arr)


def _describe(source: Any) -> str:
    if isinstance(source, _PathLike):
        return str(source)
    if isinstance(source, np.ndarray) or _is_tensor(source):
        return f"{type(source).__name__} of shape {tuple(source.shape)}"
    return type(source).__name__


def _read_file(path: str | os.PathLike, what: str, max_pixels: int | None = None) -> np.ndarray:
    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False, mmap_mode="r")  # the header only, until read
        except (ValueError, OSError) as e:
            raise ValueError(f"cannot read {what} array {p}: {e}") from e
        if arr.ndim >= 2:
            channels_first = arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3)
            shape = arr.shape[1:] if channels_first else arr.shape
            check_pixels(int(shape[0]), int(shape[1]), p, max_pixels, what)
        return np.array(arr)
    limit = pixel_limit(max_pixels)
    previous = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # ours is checked below, from the header, before decoding
        with Image.open(p) as img:
            check_pixels(img.size[1], img.size[0], p, limit, what)
            img.load()
            return np.asarray(img.convert(_convert_mode(img.mode)) if _convert_mode(img.mode) else img)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, SyntaxError) as e:
        kind = what if what == "image" else f"{what} image"  # never "image image"
        raise ValueError(f"cannot decode {kind} {p}: {e}") from e
    finally:
        Image.MAX_IMAGE_PIXELS = previous


def _convert_mode(mode: str) -> str | None:
    """The mode an image of ``mode`` is converted to before becoming an array (None: kept)."""
    if mode in ("P", "PA", "LA", "RGBA", "CMYK", "YCbCr", "HSV", "1"):
        return "L" if mode in ("LA", "1") else "RGB"
    return None


def _to_array(source: Any, what: str, max_pixels: int | None = None) -> np.ndarray:
    """Path / PIL image / numpy array / tensor -> numpy array, channels last (H, W[, C]); inputs of
    more than ``max_pixels`` pixels are refused (files: from the header, before decoding)."""
    if isinstance(source, _PathLike):
        arr = _read_file(source, what, max_pixels)
        if isinstance(arr, np.ndarray) and arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[-1] not in (1, 3):
            arr = arr.transpose(1, 2, 0)
        return arr
    arr = _to_array_in_memory(source, what)
    if arr.ndim >= 2:
        check_pixels(int(arr.shape[0]), int(arr.shape[1]), source, max_pixels, what)
    return arr


def _to_array_in_memory(source: Any, what: str) -> np.ndarray:
    if isinstance(source, Image.Image):
        mode = _convert_mode(source.mode)
        return np.asarray(source.convert(mode) if mode else source)
    if _is_tensor(source):
        t = source.detach().cpu()
        if t.dtype in (sys.modules["torch"].bfloat16, sys.modules["torch"].float16):
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


#: Width off by this many pixels from twice the height is still taken as a 2:1 panorama by prediction
#: (rounding of real exports, e.g. 1025x512); the image is resized to the model's size as any other.
SIZE_TOLERANCE_PX: int = 1


def check_panorama_size(h: int, w: int, what: str = "image", tolerance: int = 0) -> None:
    """Refuse anything that is not an equirectangular 2:1 panorama (width within ``tolerance`` px of 2 x height)."""
    if h < 1 or abs(w - 2 * h) > tolerance:
        sizes = dict.fromkeys([f"{2 * max(h, 1)}x{max(h, 1)}", f"{2 * max(w // 2, 1)}x{max(w // 2, 1)}"])
        near = " or ".join(sizes)
        raise ValueError(
            f"{what} is {w}x{h} (WxH), which is not an equirectangular panorama: expected the width to be "
            f"exactly twice the height{f' (within {tolerance} px)' if tolerance else ''}; to fix it, crop or "
            f"resize it to 2:1, e.g. {near}"
        )


def note(message: str, notes: list[str] | None) -> None:
    """A remark about an input that was accepted after a change (greyscale converted, ...): appended
    to ``notes`` when given (the command line prints them as one line each), else a Python warning."""
    if notes is None:
        warnings.warn(message, stacklevel=3)
    else:
        notes.append(message)


def _to_chw(arr: np.ndarray, what: str, channels: tuple[int, ...]) -> np.ndarray:
    """(H, W[, C]) -> contiguous (3, H, W) float32 (one channel repeated), checked 2:1."""
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
    t = np.asarray(arr, dtype=np.float32).transpose(2, 0, 1)
    if t.shape[0] == 1:
        t = np.broadcast_to(t, (3, *t.shape[1:]))
    check_panorama_size(int(t.shape[1]), int(t.shape[2]), what)
    return np.ascontiguousarray(t)


def image_array(source: Any, *, max_pixels: int | None = None, notes: list[str] | None = None) -> np.ndarray:
    """An RGB panorama as decoded, (H, W, 3) channels last, without a float copy (uint8 for image
    files); checked like :func:`load_image` (size limit, 2:1 within :data:`SIZE_TOLERANCE_PX`, 0..255).
    A greyscale image is converted to RGB (grey in all three channels), with a note (see :func:`note`)."""
    arr = _to_array(source, "image", max_pixels)
    if arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 1):
        arr = arr.reshape(arr.shape[0], arr.shape[1])
        note(f"image {_describe(source)} is greyscale: converted to RGB (the grey value in all three channels)",
             notes)  # fmt: skip
        if arr.dtype == np.uint16:  # 16-bit grey: to the 0..255 scale, as PIL does for 16-bit RGB
            arr = (arr.astype(np.float32) / 257.0).round().astype(np.uint8)
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        raise ValueError(f"image: expected an H x W image with 3 or 4 channel(s), got shape {arr.shape}")
    if arr.dtype == np.bool_ or arr.dtype.kind not in "uif":
        raise TypeError(f"image: expected image values, got a {arr.dtype} array")
    check_panorama_size(int(arr.shape[0]), int(arr.shape[1]), f"image {_describe(source)}", SIZE_TOLERANCE_PX)
    arr = arr[..., :3]
    if arr.dtype != np.uint8:
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"image {_describe(source)} contains NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0 or hi > 255:
            raise ValueError(f"image {_describe(source)} has values in [{lo:g}, {hi:g}]; expected the 0..255 scale")
    return arr


def load_image(source: Any, *, max_pixels: int | None = None, notes: list[str] | None = None) -> torch.Tensor:
    """An RGB panorama (path, PIL image, uint8 array/tensor or float 0..255) -> (3, H, W) float32, exactly
    2:1. A greyscale image is converted (grey in all three channels) with a note: appended to ``notes``
    when given, else a Python warning (as :func:`panosamic.inference.predict` does).

    Inputs above ``max_pixels`` (default :data:`MAX_PIXELS`) pixels are refused before decoding.
    """
    arr = image_array(source, max_pixels=max_pixels, notes=notes)  # greyscale: converted, with a note
    t = _to_chw(arr, f"image {_describe(source)}", (3,))
    _check_range(t, "image", source)
    return _as_tensor(t)


def normals_array(source: Any, *, max_pixels: int | None = None) -> np.ndarray:
    """:func:`load_normals` as a NumPy (3, H, W) float32 array."""
    arr = _to_array(source, "normals", max_pixels)
    t = _to_chw(arr, "normals", (3, 4))
    _check_range(t, "normals", source)
    return t


def load_normals(source: Any, *, max_pixels: int | None = None) -> torch.Tensor:
    """The colour-coded normal image (3 channels, 0..255) -> (3, H, W) float32."""
    return _as_tensor(normals_array(source, max_pixels=max_pixels))


def _check_range(t: Any, what: str, source: Any) -> None:
    t = np.asarray(t)
    if not np.isfinite(t).all():
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
    from panosamic.data.depth import metres_to_disparity

    return metres_to_disparity(d, ok, threshold)


def load_depth(source: Any, **options: Any) -> torch.Tensor:
    """Depth -> the (3, H, W) float32 pseudo-disparity image the model takes (see module doc);
    ``options``: :func:`depth_array`'s (``depth_scale``, ``depth_threshold``, ``max_pixels``)."""
    return _as_tensor(depth_array(source, **options))


def depth_array(
    source: Any,
    *,
    depth_scale: float | None = None,
    depth_threshold: float | None = None,
    max_pixels: int | None = None,
) -> np.ndarray:
    """Depth -> the (3, H, W) float32 pseudo-disparity array the model takes (see module doc).

    Without ``depth_scale`` the input must already be a pseudo-disparity image (0..255).
    With ``depth_scale`` (metres per unit) it is metric depth and ``depth_threshold`` (metres)
    is required.
    """
    arr = _to_array(source, "depth", max_pixels)
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


#: File names prediction writes into its output folder (never read back as inputs).
_OUTPUT_NAME_RE = re.compile(r"(_labels\.png|_color\.png|_overlay\.(jpg|png)|_probs\.npz|^legend\.png)$", re.IGNORECASE)


def is_prediction_output(path: Path) -> bool:
    """Whether ``path``'s name is one prediction writes (``*_labels.png``, ``legend.png``, ...)."""
    return bool(_OUTPUT_NAME_RE.search(path.name))


def scan_inputs(
    paths: Iterable[str | os.PathLike], *, recursive: bool = False, exclude: str | os.PathLike | None = None
) -> tuple[list[Path], list[Path]]:
    """(panorama files, ignored entries) of files and folders: a folder gives its jpg/jpeg/png/webp files
    (and, ``recursive``, those of its sub-folders); what a folder holds besides is ``ignored``. Inside
    ``exclude`` (the output folder) the files prediction writes are skipped silently, and the output
    folder itself is never walked into."""
    out: list[Path] = []
    ignored: list[Path] = []
    skip = Path(exclude).expanduser().resolve() if exclude is not None else None

    def walk(folder: Path) -> list[Path]:
        found = []
        for q in sorted(folder.iterdir()):
            if q.is_dir():
                if recursive and q.resolve() != skip:
                    found += walk(q)
                elif q.resolve() != skip:
                    ignored.append(q)
            elif q.is_file() and q.suffix.lower() in IMAGE_SUFFIXES:
                if not (skip is not None and q.parent.resolve() == skip and is_prediction_output(q)):
                    found.append(q)
            elif not (skip is not None and q.parent.resolve() == skip):
                ignored.append(q)
        return found

    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = walk(p)
            if not found:
                hint = "" if recursive or not any(q.is_dir() for q in ignored) else " (sub-folders: add --recursive)"
                raise FileNotFoundError(f"no {'/'.join(s[1:] for s in IMAGE_SUFFIXES)} images in folder {p}{hint}")
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
    return unique, ignored


def collect_inputs(paths: Iterable[str | os.PathLike], *, recursive: bool = False) -> list[Path]:
    """Files as given, plus the image files (jpg/jpeg/png/webp) inside folders (``recursive``: and their
    sub-folders), sorted per folder; see :func:`scan_inputs` for what is ignored."""
    return scan_inputs(paths, recursive=recursive)[0]


def describe_ignored(ignored: Sequence[Path]) -> str | None:
    """One line naming what folders held besides panoramas, or None."""
    if not ignored:
        return None
    dirs = [p for p in ignored if p.is_dir()]
    files = [p for p in ignored if not p.is_dir()]
    parts = []
    if dirs:
        parts.append(f"{len(dirs)} sub-folder{'s' * (len(dirs) != 1)} ({', '.join(p.name for p in dirs[:3])}"
                     f"{', ...' if len(dirs) > 3 else ''}; add --recursive to predict them)")  # fmt: skip
    if files:
        parts.append(f"{len(files)} file{'s' * (len(files) != 1)} that {'are' if len(files) != 1 else 'is'} not "
                     f"jpg/jpeg/png/webp ({', '.join(p.name for p in files[:3])}{', ...' if len(files) > 3 else ''})")
    return "ignored " + " and ".join(parts)


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
