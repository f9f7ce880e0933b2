"""The registry of named PanoSAMic variants, timm-style: the published ``dfki-av/PanoSAMic``
checkpoints and the test architecture, each with its architecture, Hub location and reported
numbers.

The published architecture (MCBAM fusion with moving windows 8 / stride 4, channel aggregation
``max``, spatial ``none``, dual view, 1024 canvas) is :class:`~panosamic.config.ModelConfig`'s
default; ``config/config_stanford2d3ds_dv.json`` and ``config_matterport3d_dv.json`` say the same
(a test checks it).
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from panosamic.config import ModelConfig
from panosamic.data.registry import get_dataset_info
from panosamic.published import Reported, reported_for
from panosamic.specs import MODALITY_SETS, PUBLISHED_REPO, TEST_VIT, variant_name

#: Licence of the published weights (the library itself is Apache-2.0).
PUBLISHED_LICENSE = "cc-by-nc-sa-4.0"
#: Canvas of the test architecture (native input 128x256).
TEST_CANVAS = 256


@dataclass(frozen=True)
class Variant:
    """A named model: its :class:`ModelConfig`, where its weights are, and what was reported.

    ``reported``: the numbers the publisher reports (:class:`~panosamic.published.Reported`) or ``None`` where this
    library does not know them; ``repo`` is ``None`` for architectures without published
    weights (the test architecture).
    """

    name: str
    config: ModelConfig
    repo: str | None = PUBLISHED_REPO
    subfolder: str | None = None
    reported: Reported | None = field(default=None, compare=False)
    license: str = PUBLISHED_LICENSE

    @property
    def pretrained(self) -> bool:
        return self.repo is not None


def _labelled(dataset: str, vit: str, mods: str, fold: int | None, canvas: int = 1024) -> ModelConfig:
    info = get_dataset_info(dataset)
    return ModelConfig(
        vit=vit,
        modalities=MODALITY_SETS[mods],
        num_classes=info.num_classes,
        canvas_size=canvas,
        class_names=info.class_names,
        palette=tuple(tuple(int(v) for v in row) for row in info.palette),
        dataset=dataset,
        fold=fold,
    )


def _published() -> list[Variant]:
    combos = [("vit_h", m) for m in ("rgb", "rgbd", "rgbdn")] + [(v, "rgbdn") for v in ("vit_l", "vit_b")]
    out = []
    for vit, mods in combos:
        for fold in (1, 2, 3):
            name = variant_name("stanford2d3ds", vit, MODALITY_SETS[mods], fold)
            cfg = _labelled("stanford2d3ds", vit, mods, fold).replace(name=name)
            out.append(Variant(name, cfg, subfolder=name, reported=reported_for("stanford2d3ds", vit, mods)))
    for mods in ("rgb", "rgbd"):  # published without a fold suffix
        name = variant_name("matterport3d", "vit_h", MODALITY_SETS[mods])
        out.append(Variant(name, _labelled("matterport3d", "vit_h", mods, None).replace(name=name), subfolder=name,
                           reported=reported_for("matterport3d", "vit_h", mods)))
    return out


def _test_architectures() -> list[Variant]:
    out = []
    for mods in ("rgb", "rgbd", "rgbdn"):
        name = f"test-vittiny-{mods}"
        cfg = _labelled("stanford2d3ds", TEST_VIT, mods, None, canvas=TEST_CANVAS).replace(name=name)
        out.append(Variant(name, cfg, repo=None, license="apache-2.0"))
    return out


VARIANTS: dict[str, Variant] = {v.name: v for v in _published() + _test_architectures()}


def list_models(filter: str = "", *, pretrained: bool = False, include_test: bool = False) -> list[str]:
    """Names of the registered variants (the 17 published ones by default), like timm's.

    ``filter``: a shell-style pattern (``"*rgbdn*"``); ``pretrained``: only variants with Hub
    weights; ``include_test``: also the test architectures (``test-vittiny-*``).
    """
    names = [
        n for n, v in VARIANTS.items()
        if (include_test or v.pretrained) and (not pretrained or v.pretrained)
    ]  # fmt: skip
    return [n for n in names if not filter or fnmatch.fnmatch(n, filter)]


def get_reported(name: str) -> Reported | None:
    """The published scores of a registered variant (``None`` where none are known), e.g.
    ``get_reported("stanford2d3ds-vith-rgbdn-fold1").miou``: the 3-fold mean of that configuration."""
    return get_variant(name).reported


def get_variant(name: str) -> Variant:
    """The registry entry of a name (ValueError listing close names)."""
    if name in VARIANTS:
        return VARIANTS[name]
    close = [n for n in VARIANTS if n.split("-")[0] == name.split("-")[0]] or list(VARIANTS)
    raise ValueError(f"unknown model {name!r}; registered: {', '.join(close)}")


def find_variant(name: str | None) -> Variant | None:
    """The registry entry of a name or Hub subfolder, or None."""
    if not name:
        return None
    return VARIANTS.get(str(name).strip("/").rsplit("/", 1)[-1])
