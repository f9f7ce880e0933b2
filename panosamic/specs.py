"""Facts of the PanoSAMic family, each named once: ViT sizes, modality sets, SAM files, frozen
prefixes and the variant naming scheme (dataset names and classes: :mod:`panosamic.data.classes`).

Everything here is plain data (no torch): the model, the Hub code, the registry, the CLI and the
benchmarks all read these tables instead of spelling the facts again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from panosamic.constants import MODALITIES


# ---------------------------------------------------------------------------- ViT sizes
@dataclass(frozen=True)
class ViTSpec:
    """Size of a SAM ViT image encoder."""

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


#: Meta's three SAM encoders, plus ``vit_tiny``: the small test architecture (like timm's
#: ``test_vit``), for tests, tutorials and benchmarks on a CPU; no Meta checkpoint exists for it,
#: so its encoder weights travel with its exports.
VIT_SPECS: dict[str, ViTSpec] = {
    "vit_b": ViTSpec(768, 12, 12, (2, 5, 8, 11)),
    "vit_l": ViTSpec(1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": ViTSpec(1280, 32, 16, (7, 15, 23, 31)),
    "vit_tiny": ViTSpec(32, 5, 2, (1, 2, 3, 4)),
}
#: The encoders Meta published weights for.
SAM_VITS: tuple[str, ...] = ("vit_b", "vit_l", "vit_h")
#: The test architecture: random, trainable encoder; runs on a small canvas.
TEST_VIT = "vit_tiny"


def get_vit_spec(vit: str) -> ViTSpec:
    """The size of a ViT by name (ValueError naming the known ones)."""
    if vit not in VIT_SPECS:
        raise ValueError(f"unknown ViT {vit!r}; expected one of {', '.join(VIT_SPECS)}")
    return VIT_SPECS[vit]


def vit_from_embed_dim(embed_dim: int) -> str | None:
    """The ViT whose embedding width is ``embed_dim`` (None if unknown)."""
    return next((name for name, s in VIT_SPECS.items() if s.embed_dim == embed_dim), None)


# ---------------------------------------------------------------------------- modalities
#: Short names of the modality sets (published names use rgb, rgbd, rgbdn).
MODALITY_SETS: dict[str, tuple[str, ...]] = {
    "rgb": ("image",),
    "rgbd": ("image", "depth"),
    "rgbn": ("image", "normals"),
    "rgbdn": ("image", "depth", "normals"),
}


def canonical_modalities(modalities: Sequence[str] | str) -> tuple[str, ...]:
    """Modality names in canonical order (image, depth, normals).

    Accepts a sequence of names, a comma-separated string such as ``"image,depth"`` or a short
    name such as ``"rgbd"``.
    """
    if isinstance(modalities, str):
        if modalities in MODALITY_SETS:
            return MODALITY_SETS[modalities]
        modalities = [m.strip() for m in modalities.split(",") if m.strip()]
    names = list(modalities)
    if not all(isinstance(m, str) for m in names):
        raise ValueError(f"modalities must be names, got {names!r}")
    unknown = [m for m in names if m not in MODALITIES]
    if unknown:
        raise ValueError(
            f"unknown modality {unknown!r}; expected a subset of {', '.join(MODALITIES)} "
            f"or one of {', '.join(MODALITY_SETS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate modality in {names!r}")
    if "image" not in names:
        raise ValueError(f"modalities {names!r} must include 'image' (RGB)")
    return tuple(m for m in MODALITIES if m in names)


def modality_set_name(modalities: Sequence[str] | str) -> str:
    """The short name of a modality set: ``("image", "depth") -> "rgbd"``."""
    mods = canonical_modalities(modalities)
    return next(name for name, value in MODALITY_SETS.items() if value == mods)


# ---------------------------------------------------------------------------- datasets
#: The supported datasets (each plugs in once, in :mod:`panosamic.data.registry`: its loader, how it
#: is prepared and its classes). ``folder``: your own panoramas and classes (``panosamic prepare folder``).
DATASET_NAMES: tuple[str, ...] = ("stanford2d3ds", "matterport3d", "structured3d", "tof360", "folder")

# ---------------------------------------------------------------------------- SAM files
#: Where Meta publishes the SAM checkpoints.
SAM_BASE_URL = "https://dl.fbaipublicfiles.com/segment_anything"
#: Meta's checkpoint per ViT: (file name, MD5).
SAM_FILES: dict[str, tuple[str, str]] = {
    "vit_h": ("sam_vit_h_4b8939.pth", "4b8939a88964f0f4ff5f5b2642c598a6"),
    "vit_l": ("sam_vit_l_0b3195.pth", "0b3195507c641ddb6910d2bb5adee89c"),
    "vit_b": ("sam_vit_b_01ec64.pth", "01ec64d29a2fca3f0661936605ae66f8"),
}

# ---------------------------------------------------------------------------- state dict
#: Parameters that come from Meta's SAM checkpoint and are never trained or published.
FROZEN_PREFIXES: tuple[str, ...] = ("image_encoder.", "prompt_encoder.", "_cached_prompt_encoder.", "mask_decoder.")
#: The trainable parts, the only tensors of a published checkpoint.
TRAINABLE_PREFIXES: tuple[str, ...] = ("feature_fuser.", "semantic_decoder.")
#: Where published variants live.
PUBLISHED_REPO = "dfki-av/PanoSAMic"


# ---------------------------------------------------------------------------- variant names
@dataclass(frozen=True)
class VariantName:
    """The parts of a variant name ``{dataset}-vit{size}-{modality set}[-fold{n}]``."""

    dataset: str
    vit: str
    modalities: tuple[str, ...]
    fold: int | None = None

    def __str__(self) -> str:
        return variant_name(self.dataset, self.vit, self.modalities, self.fold)


_VIT_SHORT = {name: name.removeprefix("vit_") for name in VIT_SPECS}
_VARIANT_RE = re.compile(
    r"(?P<dataset>[a-z0-9]+)-vit(?P<vit>[a-z]+)-(?P<mods>[a-z]+)(?:-fold(?P<fold>\d+))?"
)


def variant_name(dataset: str, vit: str, modalities: Sequence[str] | str, fold: int | None = None) -> str:
    """``("stanford2d3ds", "vit_h", ("image", "depth"), 1) -> "stanford2d3ds-vith-rgbd-fold1"``."""
    if not re.fullmatch(r"[a-z0-9]+", dataset):
        raise ValueError(f"a variant's dataset must be lowercase letters and digits, got {dataset!r}")
    get_vit_spec(vit)
    name = f"{dataset}-vit{_VIT_SHORT[vit]}-{modality_set_name(modalities)}"
    if fold is not None:
        if isinstance(fold, bool) or not isinstance(fold, int) or fold < 1:
            raise ValueError(f"fold must be a positive integer, got {fold!r}")
        name += f"-fold{fold}"
    return name


def parse_variant_name(name: str) -> VariantName | None:
    """The inverse of :func:`variant_name`; None for a string that is not a variant name."""
    m = _VARIANT_RE.fullmatch(name.strip().strip("/").rsplit("/", 1)[-1])
    if m is None:
        return None
    vit = "vit_" + m["vit"]
    if vit not in VIT_SPECS or m["mods"] not in MODALITY_SETS:
        return None
    fold = int(m["fold"]) if m["fold"] is not None else None
    if fold is not None and fold < 1:
        return None
    return VariantName(m["dataset"], vit, MODALITY_SETS[m["mods"]], fold)
