"""What prediction returns: :class:`PredictionResult` (labels, logits, pictures, files)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from PIL import Image

from panosamic import viz
from panosamic.io import atomic_path

if TYPE_CHECKING:
    import torch

#: Name of the legend and of the summary written by :meth:`PredictionResult.save` / the CLI.
LEGEND_FILE = "legend.png"
SUMMARY_FILE = "summary.json"
#: What a prediction can write per panorama (``--outputs``): ``NAME_labels.png`` (class index per pixel),
#: ``NAME_color.png``, ``NAME_overlay.jpg|png`` and ``NAME_probs.npz`` (``probs``: float16 softmax, ``class_names``).
OUTPUT_KINDS: tuple[str, ...] = ("labels", "color", "overlay", "probs")


def output_files(name: str, kinds: Sequence[str], overlay_format: str = "jpg") -> dict[str, str]:
    """Output file of each kind, relative to the output folder."""
    if overlay_format not in ("jpg", "png"):
        raise ValueError(f"overlay_format must be 'jpg' or 'png', got {overlay_format!r}")
    suffix = {"labels": "_labels.png", "color": "_color.png", "overlay": f"_overlay.{overlay_format}",
              "probs": "_probs.npz"}  # fmt: skip
    return {k: f"{name}{suffix[k]}" for k in kinds}


class ClassFractions(dict):
    """Class name -> fraction of the panorama's pixels; also callable (``result.class_fractions()``,
    the older spelling, returns the same dict)."""

    def __call__(self) -> ClassFractions:
        return self


@dataclass(repr=False)
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

    Attributes: ``labels``, ``logits``, ``class_names``, ``palette``, ``image`` (the RGB input),
    ``instance_masks`` (SAM's masks when refined), ``refined``, ``name``; properties ``size``,
    ``logits_size``, ``num_classes``, ``class_fractions`` (class name -> pixel fraction).
    """

    logits: torch.Tensor  # (K, H, W) float32, CPU; (K, h, w) native size for huge inputs; NumPy from an ONNX student
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
        """Softmax over classes of the logits, (K, *logits_size) (a NumPy array for NumPy logits)."""
        if isinstance(self.logits, np.ndarray):
            z = self.logits.astype(np.float32, copy=False)
            e = np.exp(z - z.max(axis=0, keepdims=True))
            return e / e.sum(axis=0, keepdims=True)
        import torch

        return torch.softmax(self.logits.float(), dim=0)

    @property
    def class_fractions(self) -> ClassFractions:
        """Class name -> fraction of the panorama's pixels predicted as that class."""
        counts = np.zeros(self.num_classes, dtype=np.int64)
        for band in _row_bands(self.labels):
            counts += np.bincount(band.ravel(), minlength=self.num_classes)[: self.num_classes]
        total = max(int(self.labels.size), 1)
        return ClassFractions((name, float(c) / total) for name, c in zip(self.class_names, counts))

    def __repr__(self) -> str:
        top = sorted(self.class_fractions.items(), key=lambda kv: -kv[1])[:3]
        shares = ", ".join(f"{n} {f:.0%}" for n, f in top if f > 0)
        return (f"PredictionResult(name={self.name!r}, size={self.size[1]}x{self.size[0]}, "
                f"classes={self.num_classes}, refined={self.refined}, masks={len(self.instance_masks)}, "
                f"top: {shares or '-'})")  # fmt: skip

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
            fractions=list(self.class_fractions.values()),
            only_present=only_present,
        )

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts: size, class pixel fractions, refinement, number of SAM masks."""
        return {
            "size": list(self.size),
            "refined": self.refined,
            "num_instance_masks": len(self.instance_masks),
            "class_fractions": dict(self.class_fractions),
        }

    def write(self, out_dir: str | os.PathLike, files: Mapping[str, str], *, overlay_alpha: float = 0.5) -> dict[str, Path]:
        """Write ``files`` (kind of :data:`OUTPUT_KINDS` -> path relative to ``out_dir``), each atomically
        and all or none: when one fails the others already written are removed. Returns the paths."""
        out = Path(out_dir)
        paths = {kind: out / rel for kind, rel in files.items()}
        bad = sorted(set(paths) - set(OUTPUT_KINDS))
        if bad:
            raise ValueError(f"unknown output kind(s) {bad}; expected some of {list(OUTPUT_KINDS)}")
        written: list[Path] = []
        try:
            for kind, path in paths.items():
                if kind == "labels":
                    _save_image(viz.label_image(self.labels), path)
                elif kind == "color":
                    _save_image(self.colorize(), path)
                elif kind == "overlay":
                    if self.image.size == 0:
                        raise ValueError("the overlay needs the input image (keep_rgb)")
                    _save_image(self.overlay(overlay_alpha), path, quality=92)
                else:
                    _save_probs(np.asarray(self.probabilities()), self.class_names, path)
                written.append(path)
        except BaseException:
            for path in written:  # all of a panorama's files or none (a full disk leaves no partial output)
                path.unlink(missing_ok=True)
            raise
        return paths

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

        Every file is written atomically, a panorama's files all or none. Returns the paths by kind.
        """
        name = name or self.name or "prediction"
        files = output_files(name, ("labels", "color", "overlay"), overlay_format)
        paths = self.write(out_dir, files, overlay_alpha=overlay_alpha)
        if legend:
            paths["legend"] = Path(out_dir) / LEGEND_FILE
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


def _save_probs(probs: np.ndarray, class_names: Sequence[str], path: Path) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, probs=probs.astype(np.float16, copy=False), class_names=np.array(class_names))


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
