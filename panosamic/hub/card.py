"""Model cards (``README.md``) for PanoSAMic Hub folders, in the Hub's format.

The front matter carries ``library_name: panosamic``, the license, tags, datasets,
``pipeline_tag: image-segmentation`` and, when metrics are given, a ``model-index`` with mIoU /
mAcc per dataset and fold; the body shows how to load the variant and how it was trained.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from panosamic.config import ModelConfig, TrainingConfig
from panosamic.data.registry import REGISTRY
from panosamic.hub.metadata import EvaluationResult
from panosamic.published import SOURCE, Reported, reported_for
from panosamic.specs import SAM_FILES

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

#: Pretty names of the datasets (their titles in the dataset registry, where datasets plug in).
_DATASET_NAMES = {name: entry.title for name, entry in REGISTRY.items()}
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
import panosamic
from panosamic.inference import predict

model = panosamic.load_model("{{ repo_id }}",{{ subfolder_line }}
                             sam_weights="./sam_weights")  # omit to download Meta's SAM checkpoint (MD5-verified)
result = predict(model, "pano.jpg"{{ predict_extra }})  # result.labels: (H, W) class indices
outputs = model([{ {{- inputs_example -}} }])   # or the raw forward: float 3xHxW on the 0..255 scale, W = 2H
logits = outputs[0]["sem_preds"]              # ({{ num_classes }}, H, W)
```

The architecture is stored in `config.json` beside the weights, so nothing else needs to be given;
`PanoSAMic.from_pretrained_panosamic("{{ repo_id }}"{{ subfolder_arg }})` works too.
From the command line: `panosamic predict --checkpoint {{ repo_id }}{{ subfolder_cli }} PANORAMA.png`.

## What is in this folder

| file | content |
|---|---|
| `model.safetensors` | {{ tensors_text }} ({{ num_tensors }} tensors, {{ num_params }} values, {{ dtype }}) |
| `config.json` | ViT size, modalities, classes (names and palette), fusion settings, native input size{{ depth_line }} |

{{ sam_text }}

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


def _published_section(published: Reported | None, config: ModelConfig, results: Sequence[EvaluationResult]) -> str:
    """The published numbers of this configuration, and this model's results beside them (difference in points)."""
    if published is None:
        return ""
    macc = "–" if published.macc is None else f"{100 * published.macc:.2f}"
    params = "" if published.trainable_parameters_m is None else f", {published.trainable_parameters_m:g} M trainable parameters"
    rows = ["", "## Published numbers", "",
            f"The {SOURCE} reports for this configuration ({_DATASET_NAMES.get(config.dataset or '', config.dataset)}, "
            f"{config.vit}, {', '.join(config.modalities)}; {published.over}{params}):", "",
            "| | mIoU (%) | mAcc (%) | mIoU − published (points) |", "|---|---|---|---|",
            f"| published ({published.over}) | {100 * published.miou:.2f} | {macc} | |"]  # fmt: skip
    for r in results:
        if r.dataset not in (None, config.dataset):
            continue
        ours_macc = "–" if r.macc is None else f"{100 * r.macc:.2f}"
        where = f"fold {r.fold}" if r.fold is not None else r.split
        rows.append(f"| this model ({where}) | {100 * r.miou:.2f} | {ours_macc} | {100 * (r.miou - published.miou):+.2f} |")
    return "\n".join(rows) + "\n"


def _training_rows(training: TrainingConfig | None) -> dict[str, str]:
    if training is None:
        return {"loss": "not recorded", "optimizer": "not recorded", "lr": "not recorded"}
    loss = training.loss.to_dict()
    loss_text = ", ".join(f"{k} × {v:g}" for k, v in loss.items() if isinstance(v, (int, float)) and v is not None)
    if "ScheduledLoss" in loss:
        s = loss["ScheduledLoss"]
        loss_text += f", scheduled ({s['transition_start_ratio']:g} → {s['transition_finish_ratio']:g})"
    lr = dataclasses.asdict(training.lr_scheduler)
    return {"loss": loss_text or "–", "optimizer": training.optimizer,
            "lr": ", ".join(f"{k} {v:g}" for k, v in lr.items() if v is not None)}


def _model_rows(config: ModelConfig) -> dict[str, Any]:
    """The card's fields that describe the model itself."""
    h, w = config.native_size
    tensors_text, sam_text = _sam_text(config)
    extra = {"depth": ', depth="pano_depth.png"', "normals": ', normals="pano_normals.png"'}
    dataset = _DATASET_NAMES.get(config.dataset, config.dataset) if config.dataset else None
    return dict(
        predict_extra="".join(extra[m] for m in config.modalities if m in extra),
        inputs_example=", ".join(f'"{m}": {m}' for m in config.modalities),
        vit_pretty=config.vit.replace("vit_", "ViT-").upper().replace("VIT-", "ViT-"),
        modalities_pretty=", ".join(_MODALITY_NAMES[m] for m in config.modalities),
        views_pretty="dual-view" if config.num_views == 2 else "single-view",
        num_classes=config.num_classes,
        dataset_pretty=f" ({dataset})" if dataset else "",
        dataset_full=(dataset or "–") + (f", fold {config.fold}" if config.fold is not None else ""),
        tensors_text=tensors_text,
        sam_text=sam_text,
        depth_line=", depth normalisation threshold" if config.depth_threshold is not None else "",
        depth_row="" if config.depth_threshold is None else f"| depth normalisation threshold | {config.depth_threshold:g} m |",
        canvas=config.canvas_size,
        native_h=h,
        native_w=w,
        channel_attention=_attention(config.channel_attention),
        spatial_attention=_attention(config.spatial_attention),
        dual_view="yes" if config.num_views == 2 else "no",
        class_list=", ".join(config.class_names) if config.class_names else f"{config.num_classes} (unnamed)",
    )


def _sam_text(config: ModelConfig) -> tuple[str, str]:
    """(what model.safetensors holds, where the frozen parts come from)."""
    if config.vit not in SAM_FILES:
        return ("the trainable tensors and the encoder (`image_encoder.*`, the test architecture has no Meta weights)",
                "This folder is self-contained: the test architecture's encoder was trained with the rest.")
    return ("the trainable tensors only: `feature_fuser.*` and `semantic_decoder.*`",
            "The frozen SAM parts (`image_encoder.*`, and `prompt_encoder.*` / `mask_decoder.*` for instance\n"
            f"masks) are **not** in this folder: they come from Meta's `{SAM_FILES[config.vit][0]}` "
            "and are combined at load time.")


def generate_model_card(
    config: ModelConfig,
    *,
    metrics: Any = None,
    training: TrainingConfig | None = None,
    repo_id: str | None = None,
    subfolder: str | None = None,
    license: str | None = None,
    tags: Sequence[str] = (),
    card_data: ModelCardData | None = None,
    num_tensors: int | None = None,
    num_params: int | None = None,
    dtype: str = "float32",
    library_version: str = "",
) -> ModelCard:
    """The model card of one variant; ``card_data`` (e.g. the mixin's class metadata) is the base."""
    results = EvaluationResult.coerce_all(metrics, config)
    base = card_data.to_dict() if card_data is not None else {}
    all_tags = sorted(set(base.get("tags") or []) | set(TAGS) | set(tags))
    # a folder dataset (your own data, `panosamic prepare folder`) is no Hub dataset id
    datasets = sorted({d for d in [config.dataset, *(r.dataset for r in results)] if d and d != "folder"})
    name = config.variant_name
    data = ModelCardData(
        library_name=base.get("library_name") or LIBRARY_NAME,
        license=license or base.get("license") or DEFAULT_LICENSE,
        pipeline_tag=base.get("pipeline_tag") or PIPELINE_TAG,
        tags=all_tags,
        datasets=datasets or None,
        model_name=f"PanoSAMic {name}",
        eval_results=_eval_results(results, name) or None,
    )
    return ModelCard.from_template(
        data,
        template_str=CARD_TEMPLATE,
        variant=name,
        paper_url=PAPER_URL,
        repo_id=repo_id or "<namespace>/<repo>",
        subfolder_line=f' subfolder="{subfolder}",' if subfolder else "",
        subfolder_arg=f', subfolder="{subfolder}"' if subfolder else "",
        subfolder_cli=f" --subfolder {subfolder}" if subfolder else "",
        num_tensors="?" if num_tensors is None else num_tensors,
        num_params="?" if num_params is None else f"{num_params:,}",
        dtype=dtype,
        results_section=_results_section(results)
        + _published_section(reported_for(config.dataset, config.vit, config.modalities), config, results),
        library_version=library_version,
        **_model_rows(config),
        **_training_rows(training),
    )
