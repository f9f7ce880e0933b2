"""The PanoSAMic model: preprocess -> encode -> fuse -> decode -> postprocess."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import fields, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from panosamic.config import ModelConfig
from panosamic.config.forwarded import Forwarded
from panosamic.constants import (
    NEAREST_MODALITIES,
    NECK_DIM,
    NUM_STAGES,
    PIXEL_MEAN,
    PIXEL_STD,
    output_grid,
    token_grid,
)
from panosamic.modeling.decoder import BaselineDecoder, ConvDecoder
from panosamic.modeling.encoder import MultiStageImageEncoder
from panosamic.modeling.fusion import BasicFusion, FeatureFusion, FusionBlock
from panosamic.modeling.inference import InferenceOptions, InferencePath
from panosamic.modeling.inputs import check_sample
from panosamic.modeling.instance import InstanceSettings, instance_masks_for_sample
from panosamic.modeling.positional import HorizontalPositionalEncoding
from panosamic.modeling.sam_import import sam_module
from panosamic.modeling.state_dict import infer_vit_size, load_state_dict_checked
from panosamic.specs import FROZEN_PREFIXES, get_vit_spec

_sam = sam_module("modeling")
MaskDecoder, PromptEncoder, TwoWayTransformer = _sam.MaskDecoder, _sam.PromptEncoder, _sam.TwoWayTransformer


class PanoSAMicNet(nn.Module):
    """Semantic segmentation of equirectangular panoramas from RGB, depth and normals.

    The frozen SAM encoder runs on every (view, modality) image padded to the square canvas;
    the outputs of its four global-attention blocks are fused per stage by MCBAM blocks and
    decoded to class logits; with dual view the panorama rolled by half its width is processed
    too and the two views are blended at logit level.

    Built from a :class:`~panosamic.config.ModelConfig` alone; the trainable parts are freshly
    initialised and the encoder holds no SAM weights until :meth:`load_sam_weights` fills it.
    Users build models with :func:`panosamic.create_model` / :func:`panosamic.load_model`, which
    return :class:`panosamic.model.PanoSAMic` (this network plus the Hub mixin).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        if not isinstance(config, ModelConfig):
            raise TypeError(f"config must be a ModelConfig, got {type(config).__name__}")
        self.config = config
        spec = get_vit_spec(config.vit)
        canvas = config.canvas_size
        grid, out_grid = token_grid(canvas), output_grid(canvas)
        m = len(config.modalities)

        # Registration order is the published state-dict order.
        self.image_encoder = MultiStageImageEncoder(spec, canvas)
        if not config.semantic_only:
            self.prompt_encoder = PromptEncoder(
                embed_dim=NECK_DIM,
                image_embedding_size=(grid, grid),
                input_image_size=(canvas, canvas),
                mask_in_chans=16,
            )
            self.mask_decoder = MaskDecoder(
                num_multimask_outputs=3,
                transformer=TwoWayTransformer(depth=2, embedding_dim=NECK_DIM, mlp_dim=2048, num_heads=8),
                transformer_dim=NECK_DIM,
                iou_head_depth=3,
                iou_head_hidden_dim=256,
            )
            # The published full-model state dict lists the prompt encoder twice.
            self._cached_prompt_encoder = self.prompt_encoder
        else:
            self.prompt_encoder = None
            self.mask_decoder = None
        if config.basic_fusion is None:
            self.feature_fuser: nn.Module = FeatureFusion(
                FusionBlock(spec.embed_dim, m, grid, config.channel_attention, config.spatial_attention)
                for _ in range(NUM_STAGES)
            )
            self.semantic_decoder: nn.Module = ConvDecoder(config.num_classes, out_grid, config.dual_view)
        else:
            self.feature_fuser = BasicFusion(config.basic_fusion, m)
            self.semantic_decoder = BaselineDecoder(
                NECK_DIM * self.feature_fuser.out_channels_factor, config.num_classes, out_grid
            )
        self.positional_encoding = HorizontalPositionalEncoding()
        self._freeze_sam_parts()
        self._inference = InferenceOptions.fast()
        #: Settings of SAM's automatic mask generator (instance branch only).
        self.instance_settings = InstanceSettings()
        # Not a submodule: the compiled wrapper must not appear in the state dict.
        self._compiled: dict[str, Callable[..., Any]] = {}
        #: Optional ``name -> context manager`` wrapped around each stage of :meth:`forward`
        #: (preprocess, encoder, fusion, decoder, postprocess, instance); used by the benchmarks.
        self.stage_hook: Callable[[str], AbstractContextManager[Any]] | None = None

    def _freeze_sam_parts(self) -> None:
        """SAM's parts are frozen (the test architecture's encoder too, unless a caller unfreezes
        it with ``model.image_encoder.requires_grad_(True)``; :meth:`encode` then keeps gradients)."""
        for prefix, module in self.named_children():
            if prefix + "." in FROZEN_PREFIXES and module is not None:
                module.requires_grad_(False)

    # ------------------------------------------------------------------ the config's facts
    modalities = Forwarded[tuple[str, ...]]()
    num_classes = Forwarded[int]()
    semantic_only = Forwarded[bool]()
    class_names = Forwarded[tuple[str, ...] | None]()
    palette = Forwarded[tuple[tuple[int, int, int], ...] | None]()
    depth_threshold = Forwarded[float | None]()
    canvas_size = Forwarded[int]()
    #: (height, width) the model runs at; other 2:1 inputs are resized to it and back.
    native_size = Forwarded[tuple[int, int]]()
    num_views = Forwarded[int]()

    @property
    def dual_view(self) -> bool:
        return self.config.num_views == 2

    @property
    def device(self) -> torch.device:
        return self.image_encoder.patch_embed.proj.weight.device

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The tensors a PanoSAMic checkpoint holds: everything but the frozen SAM parts."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(FROZEN_PREFIXES)}

    def load_sam_weights(self, state_dict: Mapping[str, torch.Tensor]) -> None:
        """Fill the frozen SAM parts from one of Meta's checkpoints, given as a state dict
        (:func:`panosamic.weights.sam.load_sam_state_dict` reads the file).

        Refuses a checkpoint of another ViT size, naming the size it is.
        """
        sd = dict(state_dict)
        found = infer_vit_size(sd)
        if found != self.config.vit:
            raise ValueError(f"the SAM checkpoint is for {found}, but the model was built for {self.config.vit}")
        parts = ("image_encoder.", "prompt_encoder.", "mask_decoder.")
        wanted = ("image_encoder.",) if self.semantic_only else parts
        foreign = sorted(k for k in sd if not k.startswith(parts))
        if foreign:
            raise ValueError(
                f"not a SAM checkpoint: {len(foreign)} key(s) outside image_encoder/prompt_encoder/"
                f"mask_decoder, e.g. {foreign[:3]}"
            )
        load_state_dict_checked(self, {k: v for k, v in sd.items() if k.startswith(wanted)}, only_prefixes=wanted)

    # ------------------------------------------------------------------ speed and memory
    @property
    def inference_options(self) -> InferenceOptions:
        """The current options (``attention`` as the encoder has it, even if set there directly)."""
        if self._inference.attention != self.image_encoder.attention_impl:
            self._inference = replace(self._inference, attention=self.image_encoder.attention_impl)
        return self._inference

    def configure_inference(self, options: InferenceOptions | str | None = None, **changes: Any) -> InferenceOptions:
        """Set how the forward runs: an :class:`InferenceOptions`, a path name ("exact" or
        "fast"), or None (keep the current options), with field ``changes`` applied on top."""
        if options is None:
            opts = self.inference_options
        elif isinstance(options, InferenceOptions):
            opts = options
        elif isinstance(options, str):
            opts = InferenceOptions.for_path(options)
        else:
            raise TypeError(f"options must be InferenceOptions, 'exact', 'fast' or None, got {type(options).__name__}")
        unknown = sorted(set(changes) - {f.name for f in fields(InferenceOptions)})
        if unknown:
            raise TypeError(f"unknown inference option(s) {unknown}; expected {[f.name for f in fields(InferenceOptions)]}")
        opts = replace(opts, **changes)
        self._inference = opts
        self.image_encoder.attention_impl = opts.attention
        if not opts.compile:
            self._compiled.clear()
        return opts

    @contextlib.contextmanager
    def inference_options_applied(self, **changes: Any) -> Iterator[InferenceOptions]:
        """Temporarily change inference options, e.g. ``with model.inference_options_applied(precision="bf16"):``."""
        previous = self.inference_options
        try:
            yield self.configure_inference(None, **changes)
        finally:
            self.configure_inference(previous)

    def set_inference_path(self, path: InferencePath, **changes: Any) -> InferenceOptions:
        """``"exact"``: the reference's computation; ``"fast"``: SDPA, batched encoder (default)."""
        return self.configure_inference(InferenceOptions.for_path(path, **changes))

    def set_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute the fusion blocks' activations in backward instead of storing them."""
        if isinstance(self.feature_fuser, FeatureFusion):
            self.feature_fuser.gradient_checkpointing = bool(enabled)

    @property
    def gradient_checkpointing(self) -> bool:
        return bool(getattr(self.feature_fuser, "gradient_checkpointing", False))

    def _stage(self, name: str) -> AbstractContextManager[Any]:
        return self.stage_hook(name) if self.stage_hook is not None else contextlib.nullcontext()

    def _autocast(self) -> AbstractContextManager[Any]:
        if self._inference.precision == "bf16":
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _encoder_fn(self) -> Callable[..., Any]:
        if not self._inference.compile:
            return self.image_encoder
        if "encoder" not in self._compiled:
            self._compiled["encoder"] = torch.compile(self.image_encoder)
        return self._compiled["encoder"]

    def _encoder_chunk(self, num_images: int) -> int:
        eb = self._inference.encoder_batch
        if eb == "all":
            return max(1, num_images)
        if eb == "per_view":
            return len(self.modalities)
        return int(eb)

    # ------------------------------------------------------------------ pipeline
    def preprocess(self, batched_input: Sequence[Mapping[str, torch.Tensor]]) -> torch.Tensor:
        """Resize to the native size, build the views, normalise, pad to the canvas.

        Returns the encoder batch (B*V*M, 3, canvas, canvas), ordered sample, view, modality.
        """
        h, w = self.native_size
        canvas = self.canvas_size
        dev = self.device
        mean = torch.tensor(PIXEL_MEAN, device=dev).view(3, 1, 1)
        std = torch.tensor(PIXEL_STD, device=dev).view(3, 1, 1)
        images = []
        for sample in batched_input:
            mods = []
            for m in self.modalities:
                x = sample[m].to(device=dev, dtype=torch.float32)
                if x.shape[-2:] != (h, w):
                    mode = "nearest" if m in NEAREST_MODALITIES else "bilinear"
                    kw = {} if mode == "nearest" else {"align_corners": False, "antialias": x.shape[-1] > w}
                    x = F.interpolate(x[None], size=(h, w), mode=mode, **kw)[0]
                mods.append(x)
            for view in range(self.num_views):
                for x in mods:
                    if view == 1:
                        x = torch.roll(x, w // 2, dims=-1)
                    x = (x - mean) / std
                    images.append(F.pad(x, (0, canvas - w, 0, canvas - h)))
        return torch.stack(images)

    def encode(self, images: torch.Tensor, with_neck: bool = False) -> tuple[torch.Tensor | None, list[torch.Tensor]]:
        """Frozen encoder, without gradients (unless unfrozen), in calls of at most the configured
        ``encoder_batch`` images (one call per (sample, view) on the exact path)."""
        encoder = self._encoder_fn()
        chunk = self._encoder_chunk(images.shape[0])
        trains = torch.is_grad_enabled() and self.image_encoder.patch_embed.proj.weight.requires_grad
        with contextlib.nullcontext() if trains else torch.no_grad():
            if images.shape[0] <= chunk:
                return encoder(images, with_neck=with_neck)
            necks, stages = [], []
            for start in range(0, images.shape[0], chunk):
                neck, st = encoder(images[start : start + chunk], with_neck=with_neck)
                necks.append(neck)
                stages.append(st)
            neck = torch.cat(necks) if with_neck else None
            return neck, [torch.cat(s) for s in zip(*stages)]

    def fuse(self, stages: list[torch.Tensor], neck: torch.Tensor | None = None) -> torch.Tensor:
        """(B*V*M, E, g, g) x 4 -> (B*V, 1024, G, G), with the longitude encoding for dual view."""
        if isinstance(self.feature_fuser, BasicFusion):
            assert neck is not None
            return self.feature_fuser(neck)
        if self._inference.channels_last:
            stages = [s.contiguous(memory_format=torch.channels_last) for s in stages]
        fused = self.feature_fuser(stages)
        fused = self.positional_encoding(fused) if self.dual_view else fused
        return fused.contiguous(memory_format=torch.channels_last) if self._inference.channels_last else fused

    def decode(self, fused: torch.Tensor) -> torch.Tensor:
        """(B*V, C, G, G) -> (B, K, G, G) logits."""
        return self.semantic_decoder(fused)

    def postprocess(self, logits: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[torch.Tensor]:
        """Upsample to the canvas, crop the panorama, resize to each input's size: list of (K, H, W)."""
        h, w = self.native_size
        canvas = self.canvas_size
        logits = logits.float().contiguous()
        # Rows below the panorama are cropped away: upsample only the rows that reach it.
        scale = canvas // logits.shape[-1]
        rows = min(logits.shape[-2], -(-h // scale) + 1)  # ceil(h / scale) + 1 source rows suffice
        up = F.interpolate(logits[..., :rows, :], scale_factor=scale, mode="bilinear", align_corners=False)
        up = up[..., :h, :w]
        outs = []
        for i, size in enumerate(sizes):
            x = up[i]
            if tuple(size) != (h, w):
                x = F.interpolate(x[None], size=tuple(size), mode="bilinear", align_corners=False)[0]
            outs.append(x)
        return outs

    def forward(self, batched_input: Sequence[Mapping[str, torch.Tensor]]) -> list[dict[str, Any]]:
        """``batched_input``: list of dicts modality -> float (3, H, W) on the 0-255 scale, H:W = 1:2.

        Returns one dict per sample: ``sem_preds`` (num_classes, H, W) logits and
        ``instance_masks`` (SAM automatic masks; empty for a semantic-only model).
        """
        if isinstance(batched_input, Mapping):
            batched_input = [batched_input]
        if len(batched_input) == 0:
            raise ValueError("batched_input is empty")
        sizes = [check_sample(i, s, self.modalities) for i, s in enumerate(batched_input)]
        use_inference_mode = self._inference.inference_mode and not self.training and not torch.is_grad_enabled()
        mode = torch.inference_mode() if use_inference_mode else contextlib.nullcontext()
        need_neck = not self.semantic_only or isinstance(self.feature_fuser, BasicFusion)
        with mode:
            with self._stage("preprocess"):
                images = self.preprocess(batched_input)
            with self._stage("encoder"):
                with self._autocast():  # bf16 for the encoder only: see InferenceOptions
                    neck, stages = self.encode(images, with_neck=need_neck)
                neck = None if neck is None else neck.float()
                stages = [s.float() for s in stages]  # no-op: the residual stream stays fp32
            with self._stage("fusion"):
                fused = self.fuse(stages, neck)
            with self._stage("decoder"):
                logits = self.decode(fused)
            del stages, fused
        # Outside inference mode: the returned logits are ordinary tensors.
        with self._stage("postprocess"):
            sem = self.postprocess(logits, sizes)
        instances: list[list[dict[str, Any]]] = [[] for _ in sizes]
        if not self.semantic_only:
            assert neck is not None
            with self._stage("instance"):
                instances = self._instance_masks(neck, sizes)
        return [{"sem_preds": s, "instance_masks": inst} for s, inst in zip(sem, instances)]

    def _instance_masks(self, neck: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> list[list[dict[str, Any]]]:
        per_sample = self.num_views * len(self.modalities)
        settings = self.instance_settings
        out = []
        with torch.no_grad():
            for i, size in enumerate(sizes):
                out.append(
                    instance_masks_for_sample(
                        self.prompt_encoder,
                        self.mask_decoder,
                        neck[i * per_sample : (i + 1) * per_sample],
                        num_views=self.num_views,
                        num_modalities=len(self.modalities),
                        native_hw=self.native_size,
                        canvas_size=self.canvas_size,
                        out_hw=tuple(size),
                        settings=settings,
                    )
                )
        return out

    def extra_repr(self) -> str:
        return (
            f"vit={self.config.vit!r}, modalities={self.modalities}, num_classes={self.num_classes}, "
            f"dual_view={self.dual_view}, canvas_size={self.canvas_size}, semantic_only={self.semantic_only}"
        )
