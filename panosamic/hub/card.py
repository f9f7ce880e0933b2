"""Model cards (``README.md``) for PanoSAMic Hub folders, in the Hub's format.

The front matter carries ``library_name: panosamic``, the license, tags, datasets,
``pipeline_tag: image-segmentation`` and, when metrics are given, a ``model-index`` with mIoU /
mAcc per dataset and fold; the body shows how to load the variant and how it was trained.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from panosamic.hub.metadata import EvaluationResult, HubModelInfo

#: Front matter every PanoSAMic card carries (the mixin's class-level metadata uses these too).
LIBRARY_NAME = "panosamic"
DEFAULT_LICENSE = "apache-2.0"
PIPELINE_TAG = "image-segmentation"
TAGS: tuple[str, ...] = (
    "panoramic",
    "equirectangular",
    "spherical-images",
    "semantic-segmentation",
    "modality-fusion",
    "multimodal",
    "sam",
)
PAPER_URL = "https://arxiv.org/abs/2601.07447"

#: Pretty names of the datasets the reference was trained / evaluated on.
_DATASET_NAMES = {
    "stanford2d3ds": "Stanford2D3DS",
    "matterport3d": "Matterport3D",
    "structured3d": "Structured3D",
    "tof360": "ToF-360",
}
_MODALITY_NAMES = {"image": "RGB", "depth": "depth", "normals": "surface normals"}

CARD_TEMPLATE = """---
{{ card_data }}
---

# PanoSAMic {{ variant }}

Semantic segmentation of 360° equirectangular panoramas with
[PanoSAMic]({{ paper_url }}): a frozen SAM {{ vit_pretty }} image encoder applied to each input
modality ({{ modalities_pretty }}), MCBAM fusion of its four global-attention stages, and a
{{ views_pretty }} decoder with spherical attention. {{ num_classes }} classes{{ dataset_pretty }}.

## Usage

```python
from panosamic.model import PanoSAMic

model = PanoSAMic.from_pretrained_panosamic(
    "{{ repo_id }}",{{ subfolder_line }}
    sam_weights_path="./sam_weights",  # omit to download Meta's SAM checkpoint (MD5-verified)
    semantic_only=True,                # logits only; False adds SAM instance masks
)
outputs = model([{ {{- inputs_example -}} }])  # float 3xHxW on the 0..255 scale, W = 2H
logits = outputs[0]["sem_preds"]             # ({{ num_classes }}, H, W)
```

The architecture is stored in `config.json` beside the weights, so `config_path`, `vit_model`,
`modalities` and `num_classes` need not be given (if given, they must agree with it).
From the command line: `panosamic predict --checkpoint {{ repo_id }}{{ subfolder_cli }} PANORAMA.png`.

## What is in this folder

| file | content |
|---|---|
| `model.safetensors` | the trainable tensors only: `feature_fuser.*` and `semantic_decoder.*` ({{ num_tensors }} tensors, {{ num_params }} values, {{ dtype }}) |
| `config.json` | ViT size, modalities, classes (names and palette), model config, native input size{{ depth_line }} |

The frozen SAM parts (`image_encoder.*`, and `prompt_encoder.*` / `mask_decoder.*` for instance
masks) are **not** in this folder: they come from Meta's `{{ sam_file }}` and are combined at load time.

## Model

| | |
|---|---|
| encoder | SAM {{ vit_pretty }}, frozen, {{ canvas }}×{{ canvas }} canvas; native input {{ native_h }}×{{ native_w }} |
| modalities | {{ modalities_pretty }} |
| channel attention | {{ channel_attention }} |
| spatial attention | {{ spatial_attention }} |
| dual view | {{ dual_view }} |
| classes | {{ class_list }} |

## Training

| | |
|---|---|
| dataset | {{ dataset_full }} |
| loss | {{ loss }} |
| optimizer | {{ optimizer }} |
| learning rate | {{ lr }} |
{{ depth_row }}
{{ results_section }}
## Citation

If you use these weights, please cite the PanoSAMic paper ([arXiv:2601.07447]({{ paper_url }}), ICPR 2026)
and Segment Anything (Kirillov et al., ICCV 2023), whose frozen encoder this model builds on.

Made with [panosamic](https://pypi.org/project/panosamic/) {{ library_version }}.
"""


def _attention(att: Any) -> str:
    if att is None:
        return "none"
    kind = f"moving window {att.window_size}, stride {att.stride}" if att.moving_attention else "global"
    return f"{kind}, aggregation `{att.aggregation}`"


def _eval_results(results: Sequence[EvaluationResult], model_name: str) -> list[EvalResult]:
    out = []
    for r in results:
        ds = r.dataset or "unknown"
        name = _DATASET_NAMES.get(ds, ds) + (f" (fold {r.fold})" if r.fold is not None else "")
        common = dict(
            task_type="image-segmentation",
            task_name="Semantic Segmentation",
            dataset_type=ds,
            dataset_name=name,
            dataset_config=None if r.fold is None else f"fold{r.fold}",
            dataset_split=r.split,
        )
        out.append(EvalResult(metric_type="mean_iou", metric_name="mIoU", metric_value=round(100 * r.miou, 2), **common))
        if r.macc is not None:
            out.append(
                EvalResult(metric_type="mean_accuracy", metric_name="mAcc", metric_value=round(100 * r.macc, 2), **common)
            )
    return out


def _results_section(results: Sequence[EvaluationResult]) -> str:
    if not results:
        return ""
    rows = ["## Results", "", "| dataset | fold | split | mIoU (%) | mAcc (%) |", "|---|---|---|---|---|"]
    for r in results:
        macc = "–" if r.macc is None else f"{100 * r.macc:.2f}"
        ds = _DATASET_NAMES.get(r.dataset or "", r.dataset or "–")
        rows.append(f"| {ds} | {'–' if r.fold is None else r.fold} | {r.split} | {100 * r.miou:.2f} | {macc} |")
    return "\n".join(rows) + "\n"


def generate_model_card(
    info: HubModelInfo,
    *,
    metrics: Any = None,
    repo_id: str | None = None,
    subfolder: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
    card_data: ModelCardData | None = None,
    num_tensors: int | None = None,
    num_params: int | None = None,
    dtype: str = "float32",
) -> ModelCard:
    """The model card of one variant; ``card_data`` (e.g. the mixin's class metadata) is the base."""
    results = EvaluationResult.coerce_all(metrics, info)
    base = card_data.to_dict() if card_data is not None else {}
    all_tags = sorted(set(base.get("tags") or []) | set(TAGS) | set(tags))
    datasets = sorted({d for d in [info.dataset, *(r.dataset for r in results)] if d})
    data = ModelCardData(
        library_name=base.get("library_name") or LIBRARY_NAME,
        license=license or base.get("license") or DEFAULT_LICENSE,
        pipeline_tag=base.get("pipeline_tag") or PIPELINE_TAG,
        tags=all_tags,
        datasets=datasets or None,
        model_name=f"PanoSAMic {info.variant_name}",
        eval_results=_eval_results(results, info.variant_name) or None,
    )
    cfg = info.config
    h, w = info.native_size
    loss = cfg.loss.to_dict()
    loss_text = ", ".join(f"{k} × {v:g}" for k, v in loss.items() if isinstance(v, (int, float)) and v is not None)
    if "ScheduledLoss" in loss:
        s = loss["ScheduledLoss"]
        loss_text += f", scheduled ({s['transition_start_ratio']:g} → {s['transition_finish_ratio']:g})"
    lr = dataclasses.asdict(cfg.lr_scheduler)
    lr_text = ", ".join(f"{k} {v:g}" for k, v in lr.items() if v is not None)
    inputs = ", ".join(f'"{m}": {m}' for m in info.modalities)
    sam_file = {"vit_b": "sam_vit_b_01ec64.pth", "vit_l": "sam_vit_l_0b3195.pth", "vit_h": "sam_vit_h_4b8939.pth"}
    return ModelCard.from_template(
        data,
        template_str=CARD_TEMPLATE,
        variant=info.variant_name,
        paper_url=PAPER_URL,
        repo_id=repo_id or "<namespace>/<repo>",
        subfolder_line=f'\n    subfolder="{subfolder}",' if subfolder else "",
        subfolder_cli=f" --subfolder {subfolder}" if subfolder else "",
        inputs_example=inputs,
        vit_pretty=info.vit_model.replace("vit_", "ViT-").upper().replace("VIT-", "ViT-"),
        modalities_pretty=", ".join(_MODALITY_NAMES[m] for m in info.modalities),
        views_pretty="dual-view" if cfg.dual_view_fusion else "single-view",
        num_classes=info.num_classes,
        dataset_pretty=f" ({_DATASET_NAMES.get(info.dataset, info.dataset)})" if info.dataset else "",
        dataset_full=(_DATASET_NAMES.get(info.dataset, info.dataset) if info.dataset else "–")
        + (f", fold {info.fold}" if info.fold is not None else ""),
        num_tensors="?" if num_tensors is None else num_tensors,
        num_params="?" if num_params is None else f"{num_params:,}",
        dtype=dtype,
        depth_line=", depth normalisation threshold" if info.depth_threshold is not None else "",
        depth_row=""
        if info.depth_threshold is None
        else f"| depth normalisation threshold | {info.depth_threshold:g} m |",
        sam_file=sam_file.get(info.vit_model, "SAM checkpoint"),
        canvas=cfg.canvas_size,
        native_h=h,
        native_w=w,
        channel_attention=_attention(cfg.channel_attention),
        spatial_attention=_attention(cfg.spatial_attention),
        dual_view="yes" if cfg.dual_view_fusion else "no",
        class_list=", ".join(info.class_names) if info.class_names else f"{info.num_classes} (unnamed)",
        loss=loss_text or "–",
        optimizer=cfg.optimizer,
        lr=lr_text,
        results_section=_results_section(results),
        library_version=info.library_version or "",
    )
