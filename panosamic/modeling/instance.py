"""The SAM instance branch: automatic masks from the SAM neck, merged across modalities and views.

Spec: reference-architecture §5.1-5.2. For every (view, modality) SAM neck embedding we run
SAM's automatic mask generation with the reference's fixed settings (a grid of foreground
points, batches of 64, predicted-IoU and stability filters, box NMS), then

* merge the modalities of one view: greedy NMS on *mask* IoU ordered by
  ``predicted_iou * stability_score``;
* merge the two views: view-1 masks are rolled back by half the panorama width; a view-1
  mask that overlaps a view-0 mask (mask IoU > 0.7) replaces it when its predicted IoU is
  higher by more than 0.01, or within 0.01 and it is larger, and is dropped otherwise; a
  view-1 mask overlapping nothing is added.

Deviation (documented, allowed by the issue): by default (``grid="image"``) only the grid
points that fall on the panorama are prompted, not those on the canvas padding (for a
512x1024 panorama on the 1024 canvas that is the upper 16 of the 32 grid rows, half the
work). ``grid="canvas"`` prompts the whole canvas as the reference does. ``sem_preds`` never
depends on this branch.

Masks are computed and merged at the resolution the model ran at (``native_hw``) and resized
to the caller's size (``out_hw``) with nearest neighbour at the end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from panosamic.modeling.sam_import import sam_module

_amg = sam_module("utils.amg")
batched_mask_to_box, build_point_grid = _amg.batched_mask_to_box, _amg.build_point_grid
calculate_stability_score = _amg.calculate_stability_score

__all__ = [
    "InstanceSettings",
    "MaskSet",
    "generate_masks",
    "instance_masks_for_sample",
    "mask_nms",
    "merge_modalities",
    "merge_views",
    "point_grid",
    "remove_small_regions",
]

GridMode = Literal["image", "canvas"]
#: Masks upsampled to the canvas at once (bounds memory: 16 x 1024 x 1024 float32 = 64 MiB).
_UPSAMPLE_CHUNK = 16


@dataclass(frozen=True)
class InstanceSettings:
    """Settings of the automatic mask generation; defaults are the reference's (§5.1-5.2)."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    #: "image": prompt only the grid points on the panorama (default, our deviation);
    #: "canvas": the whole padded canvas, as the reference.
    grid: GridMode = "image"
    #: Mask-IoU threshold of the merge across modalities and of the merge across views.
    merge_iou_thresh: float = 0.7
    #: Predicted-IoU margin under which two overlapping masks of both views count as equal.
    view_quality_margin: float = 0.01
    #: Logit threshold that binarises a mask (SAM's ``mask_threshold``).
    mask_threshold: float = 0.0

    def __post_init__(self) -> None:
        if self.grid not in ("image", "canvas"):
            raise ValueError(f"grid must be 'image' or 'canvas', got {self.grid!r}")
        for name in ("points_per_side", "points_per_batch"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.min_mask_region_area < 0:
            raise ValueError(f"min_mask_region_area must be >= 0, got {self.min_mask_region_area}")


@dataclass
class MaskSet:
    """A set of binary masks with their scores (all tensors share the first dimension N)."""

    masks: torch.Tensor  # (N, H, W) bool
    predicted_iou: torch.Tensor  # (N,) float32
    stability_score: torch.Tensor  # (N,) float32

    def __post_init__(self) -> None:
        n = self.masks.shape[0]
        if self.predicted_iou.shape != (n,) or self.stability_score.shape != (n,):
            raise ValueError("masks, predicted_iou and stability_score must have the same length")

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @property
    def areas(self) -> torch.Tensor:
        return self.masks.flatten(1).sum(1)

    def select(self, index: torch.Tensor | list[int]) -> MaskSet:
        index = torch.as_tensor(index, dtype=torch.long, device=self.masks.device)
        return MaskSet(self.masks[index], self.predicted_iou[index], self.stability_score[index])

    def sorted_by_area(self) -> MaskSet:
        order = torch.sort(self.areas, descending=True, stable=True).indices
        return self.select(order)

    @classmethod
    def empty(cls, hw: tuple[int, int], device: torch.device | str = "cpu") -> MaskSet:
        return cls(
            torch.zeros((0, *hw), dtype=torch.bool, device=device),
            torch.zeros(0, device=device),
            torch.zeros(0, device=device),
        )

    @classmethod
    def cat(cls, sets: list[MaskSet]) -> MaskSet:
        if not sets:
            raise ValueError("MaskSet.cat needs at least one set")
        return cls(
            torch.cat([s.masks for s in sets]),
            torch.cat([s.predicted_iou for s in sets]),
            torch.cat([s.stability_score for s in sets]),
        )

    def to_records(self, out_hw: tuple[int, int] | None = None) -> list[dict]:
        """The contract's list of dicts (``segmentation``, ``area``, ``predicted_iou``,
        ``stability_score``), resized to ``out_hw`` (nearest) if given, sorted by area desc."""
        masks = self.masks
        if out_hw is not None and tuple(masks.shape[-2:]) != tuple(out_hw) and len(self):
            masks = (
                F.interpolate(masks[:, None].float(), size=tuple(out_hw), mode="nearest-exact")[:, 0] > 0.5
            )
        areas = masks.flatten(1).sum(1)
        order = torch.sort(areas, descending=True, stable=True).indices.tolist()
        return [
            {
                "segmentation": masks[i],
                "area": int(areas[i]),
                "predicted_iou": float(self.predicted_iou[i]),
                "stability_score": float(self.stability_score[i]),
            }
            for i in order
            if int(areas[i]) > 0
        ]


def point_grid(
    points_per_side: int, canvas_size: int, native_hw: tuple[int, int], grid: GridMode = "image"
) -> torch.Tensor:
    """Prompt points ``(N, 2)`` as (x, y) in canvas pixels.

    SAM's grid of cell centres of the unit square scaled by the canvas; with ``grid="image"``
    only the points inside the ``native_hw`` image (top-left of the canvas) are kept.
    """
    pts = torch.as_tensor(build_point_grid(points_per_side), dtype=torch.float32) * canvas_size
    if grid == "image":
        h, w = native_hw
        pts = pts[(pts[:, 0] < w) & (pts[:, 1] < h)]
    return pts


def remove_small_regions(mask: torch.Tensor, min_area: int) -> torch.Tensor:
    """Remove 4-connected foreground components smaller than ``min_area`` pixels (not holes)."""
    if min_area <= 0 or not mask.any():
        return mask
    h, w = mask.shape
    big = torch.iinfo(torch.int64).max
    ids = torch.arange(1, h * w + 1, dtype=torch.int64, device=mask.device).view(h, w)
    comp = torch.where(mask, ids, torch.full_like(ids, big))
    # Propagate the smallest id through each component (min over 4-neighbours until stable).
    while True:
        nb = comp.clone()
        nb[1:] = torch.minimum(nb[1:], comp[:-1])
        nb[:-1] = torch.minimum(nb[:-1], comp[1:])
        nb[:, 1:] = torch.minimum(nb[:, 1:], comp[:, :-1])
        nb[:, :-1] = torch.minimum(nb[:, :-1], comp[:, 1:])
        nb = torch.where(mask, nb, comp)
        if torch.equal(nb, comp):
            break
        comp = nb
    labels = comp[mask]
    uniq, counts = torch.unique(labels, return_counts=True)
    small = uniq[counts < min_area]
    if small.numel() == 0:
        return mask
    return mask & ~torch.isin(comp, small)


def _upsample_crop(low_res: torch.Tensor, canvas_size: int, native_hw: tuple[int, int]) -> torch.Tensor:
    """(N, L, L) low-res logits -> bilinear to the canvas (align_corners False) -> crop ``native_hw``.

    Only the low-res rows that reach the panorama (plus one neighbour) are upsampled; with an
    integer scale this equals upsampling the whole canvas and cropping.
    """
    h, w = native_hw
    size = low_res.shape[-1]
    if canvas_size % size:
        up = F.interpolate(
            low_res[:, None], size=(canvas_size, canvas_size), mode="bilinear", align_corners=False
        )
        return up[:, 0, :h, :w]
    scale = canvas_size // size
    rows = min(size, -(-h // scale) + 1)
    up = F.interpolate(low_res[:, None, :rows], scale_factor=scale, mode="bilinear", align_corners=False)
    return up[:, 0, :h, :w]


@torch.no_grad()
def generate_masks(
    prompt_encoder: torch.nn.Module,
    mask_decoder: torch.nn.Module,
    embedding: torch.Tensor,
    points: torch.Tensor,
    *,
    canvas_size: int,
    native_hw: tuple[int, int],
    settings: InstanceSettings,
) -> MaskSet:
    """SAM automatic masks of one SAM neck embedding ``(256, g, g)``, at ``native_hw``.

    ``points`` ``(N, 2)`` are (x, y) in canvas pixels. Per batch of points: prompt encoder ->
    mask decoder (3 masks per point) -> predicted-IoU filter -> bilinear upsample of the kept
    low-res logits to the canvas, crop to ``native_hw`` -> stability filter -> binarise; then
    box NMS over all batches, optional small-region removal, empty masks dropped.
    """
    h, w = native_hw
    device = embedding.device
    emb = embedding[None] if embedding.ndim == 3 else embedding
    input_hw = tuple(getattr(prompt_encoder, "input_image_size", (canvas_size, canvas_size)))
    scale = torch.tensor([input_hw[1] / canvas_size, input_hw[0] / canvas_size], device=device)
    image_pe = prompt_encoder.get_dense_pe()
    kept: list[MaskSet] = []
    for start in range(0, len(points), settings.points_per_batch):
        pts = points[start : start + settings.points_per_batch].to(device=device, dtype=torch.float32)
        coords = (pts * scale)[:, None, :]
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=device)
        sparse, dense = prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        low_res, iou_pred = mask_decoder(
            image_embeddings=emb,
            image_pe=image_pe,
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=True,
        )
        low_res = low_res.flatten(0, 1).float()
        iou_pred = iou_pred.flatten(0, 1).float()
        keep = iou_pred >= settings.pred_iou_thresh
        low_res, iou_pred = low_res[keep], iou_pred[keep]
        for c in range(0, len(low_res), _UPSAMPLE_CHUNK):
            logits = _upsample_crop(low_res[c : c + _UPSAMPLE_CHUNK], canvas_size, native_hw)
            stab = calculate_stability_score(logits, settings.mask_threshold, settings.stability_score_offset)
            stab = torch.nan_to_num(stab, nan=0.0)
            ok = stab >= settings.stability_score_thresh
            if ok.any():
                kept.append(
                    MaskSet(
                        logits[ok] > settings.mask_threshold, iou_pred[c : c + _UPSAMPLE_CHUNK][ok], stab[ok]
                    )
                )
    if not kept:
        return MaskSet.empty((h, w), device)
    data = MaskSet.cat(kept)
    data = data.select(torch.nonzero(data.areas > 0).flatten())
    if len(data) == 0:
        return data
    boxes = batched_mask_to_box(data.masks).float()
    from torchvision.ops import batched_nms  # torchvision (and torch._dynamo) only when masks are made

    keep = batched_nms(
        boxes, data.predicted_iou, torch.zeros(len(data), device=device), settings.box_nms_thresh
    )
    data = data.select(keep)
    if settings.min_mask_region_area > 0:
        data.masks = torch.stack([remove_small_regions(m, settings.min_mask_region_area) for m in data.masks])
        data = data.select(torch.nonzero(data.areas > 0).flatten())
    return data


def _boxes(masks: torch.Tensor) -> list[tuple[int, int, int, int]]:
    """Inclusive (x0, y0, x1, y1) boxes as Python ints."""
    if len(masks) == 0:
        return []
    return [tuple(int(v) for v in b) for b in batched_mask_to_box(masks).tolist()]


def _ious_with(
    pool: torch.Tensor, pool_areas: torch.Tensor, mask: torch.Tensor, box, area: int
) -> torch.Tensor:
    """Mask IoU of ``mask`` with each mask of ``pool`` (intersections counted inside ``mask``'s box)."""
    x0, y0, x1, y1 = box
    inter = (pool[:, y0 : y1 + 1, x0 : x1 + 1] & mask[y0 : y1 + 1, x0 : x1 + 1]).flatten(1).sum(1)
    union = pool_areas + area - inter
    return inter.float() / union.clamp(min=1).float()


def mask_nms(masks: torch.Tensor, scores: torch.Tensor, iou_thresh: float) -> torch.Tensor:
    """Greedy NMS on mask IoU: visit masks by descending score, drop one whose IoU with a kept
    mask exceeds ``iou_thresh``. Returns the kept indices in visiting order."""
    n = len(masks)
    if n == 0:
        return torch.zeros(0, dtype=torch.long)
    order = torch.sort(scores, descending=True, stable=True).indices.tolist()
    areas = masks.flatten(1).sum(1)
    boxes = _boxes(masks)
    buffer = torch.empty_like(masks)
    kept_areas = torch.empty_like(areas)
    kept: list[int] = []
    for i in order:
        k = len(kept)
        if k:
            ious = _ious_with(buffer[:k], kept_areas[:k], masks[i], boxes[i], int(areas[i]))
            if bool((ious > iou_thresh).any()):
                continue
        buffer[k] = masks[i]
        kept_areas[k] = areas[i]
        kept.append(i)
    return torch.as_tensor(kept, dtype=torch.long)


def merge_modalities(sets: list[MaskSet], iou_thresh: float = 0.7) -> MaskSet:
    """Merge the masks of several modalities of one view (§5.2): pool, NMS on mask IoU by
    ``predicted_iou * stability_score``, then sort by area (descending)."""
    pooled = MaskSet.cat(sets)
    keep = mask_nms(pooled.masks, pooled.predicted_iou * pooled.stability_score, iou_thresh)
    return pooled.select(keep).sorted_by_area()


def merge_views(
    view0: MaskSet, view1: MaskSet, shift: int, iou_thresh: float = 0.7, quality_margin: float = 0.01
) -> MaskSet:
    """Merge the masks of the rolled view into the first view (§5.2).

    ``view1`` masks are rolled by ``-shift`` columns (back to view-0 alignment). Each one (in
    its list order) is compared with the current view-0 slots (which may already hold an
    earlier replacement); masks appended from view 1 are not compared against. Quality is the
    predicted IoU. Returns the merged set sorted by area (descending).
    """
    rolled = torch.roll(view1.masks, shifts=-shift, dims=-1)
    base_masks = view0.masks.clone()
    base_iou = view0.predicted_iou.clone()
    base_stab = view0.stability_score.clone()
    base_areas = base_masks.flatten(1).sum(1)
    boxes = _boxes(rolled)
    added: list[int] = []
    for j in range(len(rolled)):
        area = int(rolled[j].sum())
        if len(base_masks):
            ious = _ious_with(base_masks, base_areas, rolled[j], boxes[j], area)
            best = int(torch.argmax(ious))
            if float(ious[best]) > iou_thresh:
                q1, q0 = float(view1.predicted_iou[j]), float(base_iou[best])
                better = q1 > q0 + quality_margin
                tied_larger = abs(q1 - q0) <= quality_margin and area > int(base_areas[best])
                if better or tied_larger:
                    base_masks[best] = rolled[j]
                    base_iou[best] = view1.predicted_iou[j]
                    base_stab[best] = view1.stability_score[j]
                    base_areas[best] = area
                continue
        added.append(j)
    merged = MaskSet(base_masks, base_iou, base_stab)
    if added:
        extra = MaskSet(rolled[added], view1.predicted_iou[added], view1.stability_score[added])
        merged = MaskSet.cat([merged, extra])
    return merged.sorted_by_area()


@torch.no_grad()
def instance_masks_for_sample(
    prompt_encoder: torch.nn.Module,
    mask_decoder: torch.nn.Module,
    necks: torch.Tensor,
    *,
    num_views: int,
    num_modalities: int,
    native_hw: tuple[int, int],
    canvas_size: int,
    out_hw: tuple[int, int],
    settings: InstanceSettings | None = None,
) -> list[dict]:
    """Instance masks of one panorama from its SAM neck embeddings.

    ``necks``: ``(num_views * num_modalities, 256, g, g)``, view-major then modality (view 1
    = the input rolled by ``W // 2`` columns, ``W`` = native width). Returns a list of dicts
    (``segmentation`` bool ``out_hw``, ``area``, ``predicted_iou``, ``stability_score``)
    sorted by area (descending).
    """
    settings = settings or InstanceSettings()
    if num_views not in (1, 2):
        raise ValueError(f"num_views must be 1 or 2, got {num_views}")
    if necks.ndim != 4 or necks.shape[0] != num_views * num_modalities:
        raise ValueError(
            f"necks must be (num_views*num_modalities={num_views * num_modalities}, C, g, g), "
            f"got {tuple(necks.shape)}"
        )
    h, w = native_hw
    if h > canvas_size or w > canvas_size:
        raise ValueError(f"native size {native_hw} does not fit the {canvas_size} canvas")
    points = point_grid(settings.points_per_side, canvas_size, native_hw, settings.grid)
    per_view: list[MaskSet] = []
    for v in range(num_views):
        sets = [
            generate_masks(
                prompt_encoder,
                mask_decoder,
                necks[v * num_modalities + m],
                points,
                canvas_size=canvas_size,
                native_hw=native_hw,
                settings=settings,
            )
            for m in range(num_modalities)
        ]
        per_view.append(merge_modalities(sets, settings.merge_iou_thresh))
    merged = per_view[0]
    if num_views == 2:
        merged = merge_views(
            per_view[0], per_view[1], w // 2, settings.merge_iou_thresh, settings.view_quality_margin
        )
    return merged.to_records(out_hw)
