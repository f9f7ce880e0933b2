"""Pictures of label maps: colour images, overlays on the panorama, and a legend.

Everything works on numpy arrays (``H x W`` integer labels, ``H x W x 3`` uint8 images) and
returns numpy arrays or PIL images; nothing here needs torch or matplotlib. Palettes only
colour pictures; labels never depend on them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from panosamic.palettes import default_palette

__all__ = [
    "IGNORE_COLOR", "check_palette", "class_fractions", "colorize", "default_class_names", "default_palette",
    "label_image", "legend", "legend_entries", "overlay", "overlay_with_legend",
]  # fmt: skip

#: Colour of pixels whose label is outside the palette (e.g. IGNORE_INDEX).
IGNORE_COLOR: tuple[int, int, int] = (0, 0, 0)
#: Font size (px) of :func:`legend`; swatches are a bit taller than the text.
LEGEND_FONT_SIZE = 22


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


def class_fractions(labels, num_classes: int) -> np.ndarray:
    """Fraction of all pixels carrying each label ``0..num_classes-1`` (ignored pixels count in the total)."""
    lab = _as_labels(labels)
    valid = lab[(lab >= 0) & (lab < num_classes)]
    counts = np.bincount(valid.ravel(), minlength=num_classes)[:num_classes]
    return counts / max(int(lab.size), 1)


def legend_entries(
    class_names: Sequence[str],
    fractions: Sequence[float] | None = None,
    *,
    only_present: bool = False,
    sort_by_fraction: bool = False,
) -> list[tuple[int, str]]:
    """The ``(class index, text)`` rows a legend shows, in order (text has the % when given)."""
    names = [str(n) for n in class_names]
    if fractions is not None and len(fractions) != len(names):
        raise ValueError(f"got {len(fractions)} fractions for {len(names)} classes")
    rows = []
    for i, name in enumerate(names):
        if fractions is None:
            rows.append((i, name))
        elif not (only_present and fractions[i] <= 0):
            rows.append((i, f"{name} {100.0 * float(fractions[i]):.1f}%"))
    if fractions is not None and sort_by_fraction:
        rows.sort(key=lambda r: -float(fractions[r[0]]))
    return rows


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)  # scalable font (Pillow >= 10.1 with FreeType)
    except TypeError:  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _draw_legend(
    rows: list[tuple[int, str]], pal: np.ndarray, *, font_size: int, swatch_size: int | None,
    padding: int | None, columns: int | None, width: int | None = None,
) -> Image.Image:
    """Lay ``rows`` out in columns (as many as fit ``width`` when it is given) on white."""
    font = _font(font_size)
    swatch = swatch_size or round(1.3 * font_size)
    pad = font_size // 2 if padding is None else padding
    rows = rows or [(-1, "(no classes)")]
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [probe.textbbox((0, 0), text, font=font) for _, text in rows]
    text_w = max(b[2] for b in boxes)
    row_h = max(swatch, max(b[3] for b in boxes)) + pad
    cell_w = swatch + pad + text_w + 2 * pad
    if columns is None:
        columns = max(1, (width - pad) // cell_w) if width else -(-len(rows) // 20)
    if columns < 1:
        raise ValueError(f"columns must be >= 1, got {columns}")
    n_rows = -(-len(rows) // columns)
    columns = -(-len(rows) // n_rows)
    img = Image.new("RGB", (width or pad + columns * cell_w, pad + n_rows * row_h), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    for k, (cls, text) in enumerate(rows):
        col, row = divmod(k, n_rows)
        x, y = pad + col * cell_w, pad + row * row_h
        if cls >= 0:
            color = tuple(int(c) for c in pal[cls])
            draw.rectangle([x, y, x + swatch - 1, y + swatch - 1], fill=color, outline=(0, 0, 0))
        draw.text((x + swatch + pad, y + swatch / 2), text, fill=(0, 0, 0), font=font, anchor="lm")
    return img


def legend(
    class_names: Sequence[str],
    palette,
    *,
    fractions: Sequence[float] | None = None,
    only_present: bool = False,
    sort_by_fraction: bool = False,
    font_size: int = LEGEND_FONT_SIZE,
    swatch_size: int | None = None,
    padding: int | None = None,
    columns: int | None = None,
) -> Image.Image:
    """A legend image: a colour swatch and the name of each class, in a legible font.

    ``fractions`` (one per class, 0..1) are appended as percentages; with ``only_present``
    classes whose fraction is 0 are left out. ``columns`` defaults to one per 20 classes.
    """
    pal = check_palette(palette, len(class_names))
    rows = legend_entries(class_names, fractions, only_present=only_present, sort_by_fraction=sort_by_fraction)
    return _draw_legend(rows, pal, font_size=font_size, swatch_size=swatch_size, padding=padding, columns=columns)


def overlay_with_legend(
    image, labels, class_names: Sequence[str], palette, alpha: float = 0.5, *, font_size: int | None = None,
) -> Image.Image:
    """:func:`overlay` with a legend strip below it: the classes present, largest share first."""
    names = [str(n) for n in class_names]
    pal = check_palette(palette, len(names))
    blended = overlay(image, labels, pal, alpha)
    width = blended.shape[1]
    size = font_size or int(np.clip(width // 60, 12, 36))
    rows = legend_entries(names, class_fractions(labels, len(names)).tolist(), only_present=True,
                          sort_by_fraction=True)
    strip = _draw_legend(rows, pal, font_size=size, swatch_size=None, padding=None, columns=None, width=width)
    out = Image.new("RGB", (width, blended.shape[0] + strip.size[1]), (255, 255, 255))
    out.paste(Image.fromarray(blended), (0, 0))
    out.paste(strip, (0, blended.shape[0]))
    return out


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
