"""SAM instance branch (mask generation and merging, §5.1-5.2) and the refinement (§5.3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from segment_anything.modeling import MaskDecoder, PromptEncoder, TwoWayTransformer
from torch import nn

from panosamic.modeling.instance import (
    InstanceSettings,
    MaskSet,
    generate_masks,
    instance_masks_for_sample,
    mask_nms,
    merge_modalities,
    merge_views,
    point_grid,
    remove_small_regions,
)
from panosamic.modeling.refinement import refine_labels, refine_semantic_with_instances

H, W = 16, 32


def rect(y0, y1, x0, x1, hw=(H, W)) -> torch.Tensor:
    m = torch.zeros(hw, dtype=torch.bool)
    m[y0:y1, x0:x1] = True
    return m


def key(m: torch.Tensor) -> tuple[int, ...]:
    """Hashable identity of a mask: its flat pixel indices."""
    return tuple(m.flatten().nonzero().flatten().tolist())


def maskset(masks, ious, stabs=None) -> MaskSet:
    stabs = stabs if stabs is not None else [1.0] * len(masks)
    return MaskSet(
        torch.stack(masks), torch.tensor(ious, dtype=torch.float32), torch.tensor(stabs, dtype=torch.float32)
    )


# ----------------------------------------------------------------------------- settings and grid
def test_settings_defaults_are_the_reference():
    s = InstanceSettings()
    assert (s.points_per_side, s.points_per_batch) == (32, 64)
    assert (s.pred_iou_thresh, s.stability_score_thresh, s.stability_score_offset) == (0.88, 0.95, 1.0)
    assert (s.box_nms_thresh, s.min_mask_region_area, s.grid) == (0.7, 0, "image")
    with pytest.raises(ValueError, match="grid"):
        InstanceSettings(grid="padding")


def test_point_grid_canvas_and_image():
    canvas = point_grid(32, 1024, (512, 1024), "canvas")
    assert canvas.shape == (1024, 2)
    assert canvas.min() == 16 and canvas.max() == 1024 - 16  # cell centres of a 32 x 32 grid
    image = point_grid(32, 1024, (512, 1024), "image")
    assert image.shape == (512, 2)  # upper 16 rows only
    assert (image[:, 1] < 512).all() and (image[:, 0] < 1024).all()
    # the image grid is the canvas grid minus the padding points, not a new grid
    assert {tuple(p) for p in image.tolist()} <= {tuple(p) for p in canvas.tolist()}


# ----------------------------------------------------------------------------- merging
def test_mask_nms_drops_overlapping_lower_scores():
    a = rect(0, 8, 0, 10)
    a_dup = a.clone()
    a_dup[7, 9] = False  # IoU 79/80 with a
    b = rect(9, 16, 12, 30)
    half = rect(0, 8, 0, 5)  # IoU 0.5 with a: kept
    keep = mask_nms(torch.stack([a_dup, b, a, half]), torch.tensor([0.8, 0.5, 0.9, 0.7]), 0.7)
    assert keep.tolist() == [2, 3, 1]


def test_merge_modalities_keeps_best_duplicate_and_sorts_by_area():
    a = rect(0, 8, 0, 10)
    a_near = rect(0, 8, 0, 9)  # IoU 0.9 with a, other modality, better quality
    small = rect(10, 12, 20, 22)
    big = rect(8, 16, 0, 32)
    rgb = maskset([a, small], [0.90, 0.95], [0.96, 0.99])
    depth = maskset([a_near, big], [0.99, 0.90], [0.98, 0.96])
    merged = merge_modalities([rgb, depth], 0.7)
    assert len(merged) == 3
    areas = merged.areas.tolist()
    assert areas == sorted(areas, reverse=True)
    assert torch.equal(merged.masks[0], big)
    assert torch.equal(merged.masks[1], a_near)  # a (quality 0.864) lost to a_near (0.970)
    assert merged.predicted_iou[1].item() == pytest.approx(0.99)
    assert torch.equal(merged.masks[2], small)


def test_merge_views_replaces_drops_and_appends():
    shift = W // 2
    a = rect(0, 6, 0, 8)  # view 0, quality 0.90
    b = rect(8, 14, 10, 20)  # view 0, quality 0.95
    c = rect(0, 4, 20, 24)  # view 0, quality 0.93
    seam = rect(10, 16, 28, 32) | rect(10, 16, 0, 4)  # across the seam, only seen by view 1
    view0 = maskset([a, b, c], [0.90, 0.95, 0.93])

    def roll(m: torch.Tensor) -> torch.Tensor:  # view 1 sees the input rolled by W/2
        return torch.roll(m, shift, dims=-1)

    c_big = c.clone()
    c_big[4, 20:23] = True  # IoU 16/19 > 0.7 with c, larger, quality within 0.01
    view1 = maskset(
        [roll(a), roll(b), roll(c_big), roll(seam)],
        [0.97, 0.80, 0.935, 0.91],  # a: better -> replaces; b: worse -> dropped; c: tie, larger -> replaces
    )
    merged = merge_views(view0, view1, shift, 0.7, 0.01)
    assert len(merged) == 4
    got = {key(m): q for m, q in zip(merged.masks, merged.predicted_iou.tolist())}
    assert got[key(a)] == pytest.approx(0.97)
    assert got[key(b)] == pytest.approx(0.95)
    assert key(c) not in got and got[key(c_big)] == pytest.approx(0.935)
    assert got[key(seam)] == pytest.approx(0.91)
    areas = merged.areas.tolist()
    assert areas == sorted(areas, reverse=True)


def test_merge_views_keeps_view0_when_tied_and_not_larger():
    a = rect(0, 6, 0, 8)
    view0 = maskset([a], [0.90])
    view1 = maskset([torch.roll(a, W // 2, dims=-1)], [0.905])
    merged = merge_views(view0, view1, W // 2)
    assert len(merged) == 1 and merged.predicted_iou[0].item() == pytest.approx(0.90)


def test_remove_small_regions_removes_islands_not_holes():
    m = rect(0, 6, 0, 6)
    m[2:4, 2:4] = False  # a hole
    m[10, 20] = m[10, 21] = True  # a 2-pixel island
    m[12, 25] = True  # diagonal neighbour of nothing: 1-pixel island
    out = remove_small_regions(m, 3)
    assert out[:6, :6].sum() == 32 and not out[2:4, 2:4].any()
    assert not out[10:, 20:].any()
    assert torch.equal(remove_small_regions(m, 0), m)


# ----------------------------------------------------------------------------- end to end with SAM modules
class EmbeddingMaskDecoder(nn.Module):
    """A mask decoder whose masks are read off the image embedding (sign of channel 0)."""

    def forward(
        self, image_embeddings, image_pe, sparse_prompt_embeddings, dense_prompt_embeddings, multimask_output
    ):
        n = sparse_prompt_embeddings.shape[0]
        g = image_embeddings.shape[-1]
        low = F.interpolate(image_embeddings[:, :1], size=(4 * g, 4 * g), mode="nearest") * 100.0
        return low.expand(n, 3, -1, -1), torch.full((n, 3), 0.95)


def prompt_encoder(canvas: int, g: int) -> PromptEncoder:
    return PromptEncoder(
        embed_dim=256, image_embedding_size=(g, g), input_image_size=(canvas, canvas), mask_in_chans=16
    )


def test_instance_masks_for_sample_merges_modalities_and_views():
    canvas, g = 256, 16
    native = (128, 256)
    emb = torch.full((256, g, g), -1.0)
    emb[0, 2:5, 3:7] = 1.0  # an object at rows 32..80, cols 48..112 of the canvas
    emb1 = torch.roll(emb, g // 2, dims=-1)  # view 1: the input rolled by W/2 (= g/2 tokens at W = canvas)
    necks = torch.stack([emb, emb, emb1, emb1])  # view-major, two modalities
    settings = InstanceSettings(points_per_side=4)
    out = instance_masks_for_sample(
        prompt_encoder(canvas, g),
        EmbeddingMaskDecoder(),
        necks,
        num_views=2,
        num_modalities=2,
        native_hw=native,
        canvas_size=canvas,
        out_hw=native,
        settings=settings,
    )
    assert len(out) == 1  # 4 batches x 3 masks per (view, modality): all duplicates
    box = torch.zeros(native, dtype=torch.bool)
    box[32:80, 48:112] = True
    low = F.interpolate(emb[None, :1], size=(4 * g, 4 * g), mode="nearest") * 100.0
    expected = (
        F.interpolate(low, size=(canvas, canvas), mode="bilinear", align_corners=False)[0, 0, :128, :256] > 0
    )
    assert (expected & ~box).sum() == 0 and (box & ~expected).sum() == 4  # bilinear rounds the 4 corners
    assert out[0]["segmentation"].dtype == torch.bool
    assert torch.equal(out[0]["segmentation"], expected)
    assert out[0]["area"] == int(expected.sum())
    assert out[0]["predicted_iou"] == pytest.approx(0.95)
    # resized to the caller's size
    small = instance_masks_for_sample(
        prompt_encoder(canvas, g), EmbeddingMaskDecoder(), necks, num_views=2, num_modalities=2,
        native_hw=native, canvas_size=canvas, out_hw=(64, 128), settings=settings,
    )  # fmt: skip
    assert small[0]["segmentation"].shape == (64, 128)
    assert torch.equal(small[0]["segmentation"], expected[1::2, 1::2])  # nearest-exact: centre samples
    with pytest.raises(ValueError, match="necks"):
        instance_masks_for_sample(
            prompt_encoder(canvas, g), EmbeddingMaskDecoder(), necks[:3], num_views=2, num_modalities=2,
            native_hw=native, canvas_size=canvas, out_hw=native, settings=settings,
        )  # fmt: skip


def test_generate_masks_with_real_sam_decoder_filters_and_sorts():
    torch.manual_seed(0)
    canvas, g = 256, 16
    pe = prompt_encoder(canvas, g)
    dec = MaskDecoder(
        num_multimask_outputs=3,
        transformer=TwoWayTransformer(depth=1, embedding_dim=256, mlp_dim=256, num_heads=8),
        transformer_dim=256,
        iou_head_depth=3,
        iou_head_hidden_dim=64,
    ).eval()
    emb = torch.randn(256, g, g)
    pts = point_grid(4, canvas, (128, 256), "image")
    lax = InstanceSettings(pred_iou_thresh=-1e9, stability_score_thresh=0.0, box_nms_thresh=1.0)
    res = generate_masks(pe, dec, emb, pts, canvas_size=canvas, native_hw=(128, 256), settings=lax)
    assert res.masks.shape[1:] == (128, 256) and res.masks.dtype == torch.bool
    assert 0 < len(res) <= 3 * len(pts)
    assert (res.areas > 0).all()
    # a threshold above every predicted IoU leaves nothing
    strict = InstanceSettings(pred_iou_thresh=float(res.predicted_iou.max()) + 1.0)
    assert (
        len(generate_masks(pe, dec, emb, pts, canvas_size=canvas, native_hw=(128, 256), settings=strict)) == 0
    )
    # stability and IoU filters only remove masks
    mid = InstanceSettings(
        pred_iou_thresh=float(res.predicted_iou.median()), stability_score_thresh=0.0, box_nms_thresh=1.0
    )
    kept = generate_masks(pe, dec, emb, pts, canvas_size=canvas, native_hw=(128, 256), settings=mid)
    assert len(kept) < len(res) and (kept.predicted_iou >= float(res.predicted_iou.median())).all()


# ----------------------------------------------------------------------------- refinement (§5.3)
def test_refine_majority_vote_larger_first():
    labels = torch.zeros(H, W, dtype=torch.long)
    labels[:, 16:] = 1
    labels[0:4, 0:4] = 2
    big = rect(0, 8, 0, 20)  # 128 px of class 0, 32 of class 1 (cols 16..19), 16 px of class 2
    small = rect(0, 4, 0, 4)  # all class 2
    masks = [{"segmentation": small, "area": 16}, {"segmentation": big, "area": 160}]  # unsorted on purpose
    refined = refine_labels(labels, masks)
    assert (refined[small] == 2).all()  # the smaller mask is applied last
    assert (refined[big & ~small] == 0).all()
    assert (refined[~big] == labels[~big]).all()
    assert torch.equal(labels[0:4, 0:4], torch.full((4, 4), 2))  # input untouched


def test_refine_ties_go_to_smallest_class_and_one_hot_output():
    logits = torch.zeros(3, H, W)
    logits[2, :, :16] = 1.0  # class 2 on the left
    logits[1, :, 16:] = 1.0  # class 1 on the right
    tie = rect(0, 2, 14, 18)  # 4 px of each
    out = refine_semantic_with_instances(logits, [{"segmentation": tie}])
    assert out.shape == logits.shape
    assert torch.equal(out.sum(0), torch.ones(H, W))
    assert (out.argmax(0)[tie] == 1).all()
    assert refine_semantic_with_instances(logits, []) is logits
    batched = refine_semantic_with_instances(logits[None], [tie])
    assert torch.equal(batched[0], out)
    with pytest.raises(ValueError, match="instance mask 0"):
        refine_semantic_with_instances(logits, [rect(0, 2, 0, 2, hw=(4, 4))])


@pytest.mark.parametrize(
    "low, canvas, hw", [(64, 256, (128, 256)), (256, 1024, (511, 1022)), (48, 256, (128, 256))]
)
def test_upsample_crop_equals_full_canvas_upsample(low, canvas, hw):
    from panosamic.modeling.instance import _upsample_crop

    x = torch.randn(2, low, low)
    full = F.interpolate(x[:, None], size=(canvas, canvas), mode="bilinear", align_corners=False)[:, 0]
    assert torch.equal(_upsample_crop(x, canvas, hw), full[:, : hw[0], : hw[1]])


def test_the_reference_import_path_of_the_refinement_is_kept():
    """``panosamic.model.instance_semantic_fusion`` is where the reference's users import it from."""
    from panosamic.model.instance_semantic_fusion import refine_semantic_with_instances as by_reference_path

    assert by_reference_path is refine_semantic_with_instances
