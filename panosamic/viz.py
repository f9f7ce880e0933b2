"""Pictures of label maps: colour images, overlays on the panorama, and a legend.

Everything works on numpy arrays (``H x W`` integer labels, ``H x W x 3`` uint8 images) and
returns numpy arrays or PIL images; nothing here needs torch.
"""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Colour of pixels whose label is outside the palette (e.g. IGNORE_INDEX).
IGNORE_COLOR: tuple[int, int, int] = (0, 0, 0)
#: Golden-ratio hue step of :func:`default_palette` (consecutive classes get distant hues).
_GOLDEN_RATIO_CONJUGATE = 0.618033988749895


def default_palette(num_classes: int) -> np.ndarray:
    """A deterministic ``num_classes x 3`` uint8 palette of distinct, bright colours.

    Hues follow the golden-ratio sequence; saturation and value cycle over three levels so
    that large palettes (40 classes) stay distinguishable.
    """
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
    levels = ((0.65, 0.95), (0.90, 0.75), (0.45, 0.85))
    colors = []
    for i in range(int(num_classes)):
        hue = (i * _GOLDEN_RATIO_CONJUGATE) % 1.0
        sat, val = levels[i % len(levels)]
        r, g, b = colorsys.hsv_to_rgb(hue, sat, val)
        colors.append((round(r * 255), round(g * 255), round(b * 255)))
    return np.asarray(colors, dtype=np.uint8)


def default_class_names(num_classes: int) -> tuple[str, ...]:
    """``("class_0", "class_1", ...)``."""
    return tuple(f"class_{i}" for i in range(num_classes))


def check_palette(palette, num_classes: int | None = None) -> np.ndarray:
    """Return ``palette`` as a ``K x 3`` uint8 array (raises ValueError on a bad shape/range)."""
    arr = np.asarray(palette)
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"palette must have shape (num_classes, 3), got {arr.shape}")
    if num_classes is not None and arr.shape[0] < num_classes:
        raise ValueError(f"palette has {arr.shape[0]} colours but there are {num_classes} classes")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        raise ValueError("palette values must lie in 0..255")
    return arr.astype(np.uint8)


def _as_labels(labels) -> np.ndarray:
    if hasattr(labels, "detach"):  # torch tensor
        labels = labels.detach().cpu().numpy()
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"labels must be a 2-D (H, W) array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise TypeError(f"labels must be integers, got dtype {arr.dtype}")
    return arr


def _as_rgb(image) -> np.ndarray:
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
        if image.ndim == 3 and image.shape[0] == 3 and image.shape[-1] != 3:
            image = image.transpose(1, 2, 0)
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        arr = np.clip(np.rint(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    return arr


def colorize(labels, palette, ignore_color: Sequence[int] = IGNORE_COLOR) -> np.ndarray:
    """Colour an ``H x W`` label map with ``palette`` (``K x 3``) -> ``H x W x 3`` uint8.

    Labels outside ``0..K-1`` (such as IGNORE_INDEX = -1) get ``ignore_color``.
    """
    lab = _as_labels(labels)
    pal = check_palette(palette)
    table = np.concatenate([pal, np.asarray([ignore_color], dtype=np.uint8)], axis=0)
    idx = np.where((lab >= 0) & (lab < len(pal)), lab, len(pal)).astype(np.intp)
    return table[idx]


def overlay(image, labels, palette, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour label map over ``image``: ``alpha * colour + (1 - alpha) * image``.

    Pixels labelled IGNORE_INDEX (or anything outside the palette) keep the image unchanged.
    """
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
    rgb = _as_rgb(image)
    lab = _as_labels(labels)
    if rgb.shape[:2] != lab.shape:
        raise ValueError(
            f"image is {rgb.shape[0]}x{rgb.shape[1]} but labels are {lab.shape[0]}x{lab.shape[1]}"
        )
    pal = check_palette(palette)
    color = colorize(lab, pal).astype(np.float32)
    blend = alpha * color + (1.0 - alpha) * rgb.astype(np.float32)
    valid = ((lab >= 0) & (lab < len(pal)))[..., None]
    out = np.where(valid, blend, rgb.astype(np.float32))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def legend(
    class_names: Sequence[str],
    palette,
    *,
    fractions: Sequence[float] | None = None,
    only_present: bool = False,
    swatch_size: int = 16,
    padding: int = 6,
    columns: int = 1,
) -> Image.Image:
    """A legend image: one row per class with its colour swatch and name (PIL's default font).

    ``fractions`` (one per class, 0..1) are appended as percentages; with ``only_present``
    classes whose fraction is 0 are left out.
    """
    names = [str(n) for n in class_names]
    pal = check_palette(palette, len(names))
    if fractions is not None and len(fractions) != len(names):
        raise ValueError(f"got {len(fractions)} fractions for {len(names)} classes")
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    rows = []
    for i, name in enumerate(names):
        if fractions is not None:
            if only_present and fractions[i] <= 0:
                continue
            name = f"{name} ({100.0 * float(fractions[i]):.1f}%)"
        rows.append((i, name))
    if not rows:
        rows = [(-1, "(no classes)")]

    font = ImageFont.load_default()
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    text_w = max(probe.textbbox((0, 0), text, font=font)[2] for _, text in rows)
    text_h = max(probe.textbbox((0, 0), text, font=font)[3] for _, text in rows)
    row_h = max(swatch_size, text_h) + padding
    cell_w = swatch_size + padding + text_w + 2 * padding
    n_rows = -(-len(rows) // columns)
    width = padding + columns * cell_w
    height = padding + n_rows * row_h
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for k, (cls, text) in enumerate(rows):
        col, row = divmod(k, n_rows)
        x = padding + col * cell_w
        y = padding + row * row_h
        if cls >= 0:
            color = tuple(int(c) for c in pal[cls])
            draw.rectangle([x, y, x + swatch_size - 1, y + swatch_size - 1], fill=color, outline=(0, 0, 0))
        ty = y + (swatch_size - text_h) // 2
        draw.text((x + swatch_size + padding, ty), text, fill=(0, 0, 0), font=font)
    return img


def label_image(labels) -> Image.Image:
    """A lossless single-channel PIL image holding the class index of each pixel.

    8-bit ("L") when all labels fit in 0..255, else 16-bit ("I;16"); negative labels are refused.
    """
    lab = _as_labels(labels)
    if lab.size and lab.min() < 0:
        raise ValueError("label images cannot store negative labels (IGNORE_INDEX)")
    if lab.size == 0 or lab.max() <= 255:
        return Image.fromarray(lab.astype(np.uint8))
    if lab.max() > 65535:
        raise ValueError(f"labels up to {lab.max()} do not fit a 16-bit PNG")
    return Image.fromarray(lab.astype(np.uint16))
