"""What prediction returns: :class:`PredictionResult` (labels, logits, pictures, files)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from panosamic import viz
from panosamic.io import atomic_path

#: Name of the legend and of the summary written by :meth:`PredictionResult.save` / the CLI.
LEGEND_FILE = "legend.png"
SUMMARY_FILE = "summary.json"


@dataclass
class PredictionResult:
    """What :func:`predict` returns for one panorama.

    ``labels`` are refined by the SAM masks when ``refined`` is true; ``logits`` are always
    the model's raw semantic logits.

    Up to ``panosamic.inference.inputs.FULL_LOGITS_MAX_PIXELS`` pixels (2048 x 4096), ``logits``
    are (K, H, W) at the input's size and ``labels`` int64. Above it
    (the banded path of :mod:`panosamic.inference.predict`) ``logits`` stay at the model's native
    size (:attr:`logits_size` differs from :attr:`size`; :meth:`probabilities` is at that size too),
    and ``labels`` (the argmax of the bilinearly upsampled logits, computed in row bands) use the
    smallest integer dtype (uint8 for up to 256 classes). The pictures are then made in row bands.
    """

    logits: torch.Tensor  # (K, H, W) float32, CPU; (K, h, w) native size for huge inputs
    labels: np.ndarray  # (H, W) int64; uint8/int16 for huge inputs
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

    @property
    def logits_size(self) -> tuple[int, int]:
        """(height, width) of :attr:`logits`: :attr:`size`, or the model's native size for huge inputs."""
        return int(self.logits.shape[-2]), int(self.logits.shape[-1])

    def probabilities(self) -> torch.Tensor:
        """Softmax over classes of the logits, (K, *logits_size)."""
        return torch.softmax(self.logits.float(), dim=0)

    def class_fractions(self) -> dict[str, float]:
        """Fraction of the panorama's pixels predicted as each class."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for band in _row_bands(self.labels):
            counts += np.bincount(band.ravel(), minlength=self.num_classes)[: self.num_classes]
        total = max(int(self.labels.size), 1)
        return {name: float(c) / total for name, c in zip(self.class_names, counts)}

    def colorize(self) -> Image.Image:
        """The label map in the palette's colours."""
        return Image.fromarray(_banded(lambda r: viz.colorize(self.labels[r], self.palette), self.labels))

    def overlay(self, alpha: float = 0.5) -> Image.Image:
        """The colour label map blended over the input panorama (``alpha`` = colour weight)."""
        def blend(rows: slice) -> np.ndarray:
            return viz.overlay(self.image[rows], self.labels[rows], self.palette, alpha)

        return Image.fromarray(_banded(blend, self.labels))

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
        written: list[Path] = []
        try:
            for kind, make, kw in (
                ("labels", lambda: viz.label_image(self.labels), {}),
                ("color", self.colorize, {}),
                ("overlay", lambda: self.overlay(overlay_alpha), {"quality": 92}),
            ):
                _save_image(make(), paths[kind], **kw)
                written.append(paths[kind])
        except BaseException:
            for path in written:  # all of a panorama's files or none (a full disk leaves no partial output)
                path.unlink(missing_ok=True)
            raise
        if legend:
            paths["legend"] = out / LEGEND_FILE
            _save_image(viz.legend(self.class_names, self.palette), paths["legend"])
        return paths


#: Pixels per band when pictures of big label maps are made (bounded temporary memory).
_BAND_PIXELS = 1 << 22


def _row_bands(labels: np.ndarray) -> list[np.ndarray]:
    rows = max(1, _BAND_PIXELS // max(int(labels.shape[1]), 1))
    return [labels[i : i + rows] for i in range(0, max(int(labels.shape[0]), 1), rows)]


def _banded(fn: Any, labels: np.ndarray) -> np.ndarray:
    """``fn(rows)`` -> (rows, W, 3) uint8, for every band of rows, into one (H, W, 3) array."""
    h = int(labels.shape[0])
    rows = max(1, _BAND_PIXELS // max(int(labels.shape[1]), 1))
    if h <= rows:
        return fn(slice(None))
    out = np.empty((h, int(labels.shape[1]), 3), dtype=np.uint8)
    for i in range(0, h, rows):
        out[i : i + rows] = fn(slice(i, i + rows))
    return out


def _save_image(img: Image.Image, path: Path, **kwargs: Any) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG" if path.suffix.lower() in (".jpg", ".jpeg") else "PNG", **kwargs)


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
