"""Command-line flags shared by the subcommands, defined once: one spelling per concept, hyphenated.

Used by :mod:`panosamic.cli` and by the subcommands of the upper layers (adapt, distill, the demo). The
reference's underscore spellings (``--config_path --vit_model --sam_weights_path ...``) are
accepted as hidden aliases on ``train`` and ``evaluate``. Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import copy
import re
from collections.abc import Callable, Sequence

from panosamic.constants import PRECISIONS
from panosamic.specs import DATASET_NAMES, VIT_SPECS

#: Help of --device (the default is ``auto`` everywhere).
DEVICE_HELP = "auto (CUDA if available, else CPU), cpu, cuda, cuda:1, ..."
CHECKPOINT_HELP = (
    "a published variant name (see `panosamic info`), a Hub repo id (with --subfolder), a local Hub-layout "
    "folder, a .safetensors file, a training .pth or a training run folder"
)
SAM_WEIGHTS_HELP = "Meta's SAM .pth file or a folder holding it (default: the cache; downloaded if missing)"


class HelpFormatter(argparse.HelpFormatter):
    """Shows defaults (when they say something) and hides alias spellings kept for compatibility."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        said = "%(default)" in text or "default:" in text
        if (
            said
            or action.default is None
            or action.default is False
            or action.default is argparse.SUPPRESS
            or action.nargs == 0
        ):
            return text
        if action.option_strings or action.nargs in (argparse.OPTIONAL, argparse.ZERO_OR_MORE):
            default = action.default
            if isinstance(default, (list, tuple)):
                return f"{text} (default: {' '.join(map(str, default))})"
            return text + " (default: %(default)s)"
        return text

    def _format_action_invocation(self, action: argparse.Action) -> str:
        hidden = getattr(action, "hidden_aliases", ())
        if hidden:
            action = copy.copy(action)
            action.option_strings = [s for s in action.option_strings if s not in hidden]
        return super()._format_action_invocation(action)


def add(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *aliases: str,
    **kwargs,
) -> argparse.Action:
    """``parser.add_argument(flag, *aliases, ...)`` with the aliases left out of the help (and a metavar
    named after ``flag``, not after ``dest``)."""
    if kwargs.get("action") is None and "choices" not in kwargs:
        kwargs.setdefault(
            "metavar", "N" if kwargs.get("type") is int else flag.lstrip("-").upper().replace("-", "_")
        )
    action = parser.add_argument(flag, *aliases, **kwargs)
    action.hidden_aliases = aliases  # type: ignore[attr-defined]
    return action


def _aliases(reference: bool, *names: str) -> tuple[str, ...]:
    return names if reference else ()


def add_debug(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)


def add_progress(parser: argparse.ArgumentParser | argparse._ArgumentGroup, *aliases: str,
                 help: str = "no progress bar: one progress line every few seconds instead") -> None:  # fmt: skip
    add(parser, "--no-progress", *aliases, dest="progress", action="store_false", help=help)


def add_precision(parser: argparse.ArgumentParser | argparse._ArgumentGroup, help: str = "") -> None:
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help=help or "bf16: the encoder blocks in bfloat16, the rest float32")  # fmt: skip


def add_batch_size(parser: argparse.ArgumentParser | argparse._ArgumentGroup, reference: bool = False,
                   help: str = "panoramas per forward pass (per process)") -> None:  # fmt: skip
    add(parser, "--batch-size", *_aliases(reference, "--batch_size"), type=int, default=1, help=help)


def add_hub(parser: argparse.ArgumentParser | argparse._ArgumentGroup, fold_pattern: bool = False) -> None:
    """``--subfolder --revision``."""
    pattern = "; may hold {fold}" if fold_pattern else ""
    parser.add_argument(
        "--subfolder", help=f"variant subfolder of a Hub repo, e.g. stanford2d3ds-vith-rgbd-fold1{pattern}"
    )
    parser.add_argument("--revision", help="Hub revision (branch, tag or commit)")


def add_sam_weights(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, reference: bool = False
) -> None:
    add(parser, "--sam-weights", *_aliases(reference, "--sam_weights_path", "--sam-weights-path"),
        dest="sam_weights_path", metavar="PATH", help=SAM_WEIGHTS_HELP)  # fmt: skip


def add_architecture(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *,
    reference: bool = False,
    config_required: bool = False,
    vit_default: str | None = None,
    modalities_default: str | None = None,
) -> None:
    """``--config --vit --modalities --num-classes``: the architecture of a checkpoint or of a new run."""
    add(parser, "--config", *_aliases(reference, "--config_path", "--config-path"), dest="config_path",
        required=config_required, metavar="FILE",
        help="reference config JSON, e.g. config/config_stanford2d3ds_dv.json")  # fmt: skip
    add(parser, "--vit", *_aliases(reference, "--vit_model", "--vit-model"), dest="vit_model",
        choices=tuple(VIT_SPECS), default=vit_default,
        help="ViT size of the SAM encoder (vit_tiny: the small test architecture)")  # fmt: skip
    parser.add_argument(
        "--modalities",
        default=modalities_default,
        metavar="M",
        help="comma-separated subset of image,depth,normals (image required), or rgb/rgbd/rgbdn",
    )
    add(parser, "--num-classes", *_aliases(reference, "--num_classes"), dest="num_classes", type=int,
        metavar="K", help="number of classes")  # fmt: skip


def add_dataset(parser: argparse.ArgumentParser, *, required: bool = True, reference: bool = False) -> None:
    """``--dataset --dataset-path``."""
    add(parser, "--dataset-path", *_aliases(reference, "--dataset_path"), dest="dataset_path", required=required,
        metavar="DIR", help="processed dataset folder (see `panosamic prepare`)")  # fmt: skip
    parser.add_argument("--dataset", required=required, choices=DATASET_NAMES, help="which dataset it is")


def add_shared_arguments(parser: argparse.ArgumentParser, *, config_required: bool) -> None:
    """The flags of ``train`` and ``evaluate`` (the reference's single parser), reference aliases kept."""
    add_dataset(parser, reference=True)
    add_architecture(parser, reference=True, config_required=config_required)
    add(parser, "--experiments-path", "--experiments_path", dest="experiments_path", default="experiments",
        metavar="DIR", help="root of the training run folders")  # fmt: skip
    add_sam_weights(parser, reference=True)
    add(parser, "--num-gpus", "--num_gpus", dest="num_gpus", type=int, default=1,
        help="processes, one per GPU (under torchrun its WORLD_SIZE is used)")  # fmt: skip
    add(parser, "--workers", "--workers_per_gpu", "--workers-per-gpu", dest="workers_per_gpu", type=int,
        default=2, help="data-loading processes per GPU")  # fmt: skip
    add_batch_size(parser, reference=True, help="panoramas per process and step")
    add_device(parser)
    add_precision(parser, "bf16: the encoder blocks in bfloat16, the rest float32 (also in validation)")
    add_progress(parser)
    add_debug(parser)


# ---------------------------------------------------------------------------- messages
#: The architecture's argument names -> their flags.
_ARCHITECTURE_FLAGS = {"config_path": "--config", "vit_model": "--vit", "modalities": "--modalities",
                       "num_classes": "--num-classes"}  # fmt: skip
#: Python argument names in library messages -> the flags that set them (a string or a function of the match).
_FLAG_NAMES: Sequence[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = (
    (re.compile(r"pass config=ModelConfig\(\.\.\.\) \(command line: ([^)]*)\)"), r"give \1"),
    (re.compile(r"config=ModelConfig\(\.\.\.\)"), "--config FILE --vit VIT --modalities M --num-classes K"),
    (re.compile(r"\bas sam_weights(?:_path)?\b"), "with --sam-weights"),
    (re.compile(r"\bsam_weights(?:_path)?=<"), "--sam-weights <"),
    (re.compile(r"\bsam_weights(?:_path)?=(?=\S)"), "--sam-weights "),
    (re.compile(r"\bsubfolder=(?=\S)"), "--subfolder "),
    (re.compile(r"(?<![\w-])local_files_only(?:=True)?\b"), "--local-files-only"),
    (
        re.compile(r"give all of config_path, vit_model, modalities, num_classes \(missing \[([^\]]*)\]\)"),
        lambda m: "give all of --config, --vit, --modalities, --num-classes (missing "
        + ", ".join(_ARCHITECTURE_FLAGS.get(n.strip("'\""), n) for n in m.group(1).split(", ")) + ")",
    ),
    (re.compile(r"--batch_size\b"), "--batch-size"),
    (re.compile(r"--num_gpus\b"), "--num-gpus"),
)


def flag_names(message: str) -> str:
    """A library message with Python argument names replaced by the command line's flags."""
    for pattern, replacement in _FLAG_NAMES:
        message = pattern.sub(replacement, message)
    return message
