"""Loading a SAM 3 segmenter: ``"sam3"`` (the gated Hub weights ``facebook/sam3``), the test
architecture ``"test-sam3-tiny"``, a folder saved by ``transformers`` or a Hub id; the class list
and view options are checked before any weights load."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from panosamic.errors import PanosamicError
from panosamic.openvocab.classes import ClassPrompts
from panosamic.openvocab.tiny import TINY_NAME

__all__ = ["SAM3_MODELS", "SAM3_REPO", "is_sam3_checkpoint", "load_sam3"]

SAM3_REPO = "facebook/sam3"
#: Names that load a SAM 3 segmenter: the published weights and the test architecture (built here).
SAM3_MODELS: dict[str, str | None] = {"sam3": SAM3_REPO, TINY_NAME: None}
#: ``model_type`` values of transformers' SAM 3 configs.
SAM3_MODEL_TYPES = ("sam3", "sam3_video")
_INSTALL = ("SAM 3 needs transformers >= 5.0 (missing or older here): uv sync --extra sam3 (or uv run --extra sam3 "
            "panosamic ...; an installed package: pip install 'panosamic[sam3]')")
NEEDS_CLASSES = ("a SAM 3 checkpoint segments the classes you name: pass classes=[...] (command line: "
                  "--classes \"floor, wall, lamp\" or --classes-file FILE)")


def _folder(checkpoint: str | os.PathLike, subfolder: str | None) -> Path:
    p = Path(str(checkpoint)).expanduser()
    return p / subfolder if subfolder else p


def is_sam3_checkpoint(checkpoint: str | os.PathLike, subfolder: str | None = None) -> bool:
    """A registered SAM 3 name (``sam3``, ``facebook/sam3``, ``test-sam3-tiny``), or a local folder
    or a Hub id already in the Hugging Face cache whose config.json is a transformers SAM 3 config."""
    spec = str(checkpoint)
    if spec in SAM3_MODELS or spec == SAM3_REPO:
        return True
    cfg = _folder(checkpoint, subfolder) / "config.json"
    if not cfg.is_file() and not Path(spec).expanduser().exists() and spec.count("/") == 1:
        cfg = _cached_hub_config(spec, subfolder) or cfg  # a Hub id already in the cache (no network here)
    if not cfg.is_file():
        return False
    try:
        d = json.loads(cfg.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(d, Mapping) and d.get("model_type") in SAM3_MODEL_TYPES


def _cached_hub_config(repo: str, subfolder: str | None) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo, f"{subfolder}/config.json" if subfolder else "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no cache: not a SAM 3 we can see
        return None
    return Path(found) if isinstance(found, str) else None


def _hub_error(repo: str, exc: BaseException) -> PanosamicError | None:
    """One line for a Hub failure while fetching SAM 3 (gated, not logged in, offline and not cached)."""
    chain, e = [], exc
    while e is not None and len(chain) < 8:
        chain.append(e)
        e = e.__cause__ or e.__context__
    names = {c.__name__ for x in chain for c in type(x).__mro__}
    text = " ".join(str(x) for x in chain).lower()
    page = f"https://huggingface.co/{repo}"
    if "GatedRepoError" in names or "gated" in text:
        return PanosamicError(f"{repo} is gated: accept its licence at {page} (logged in), then log in here "
                              "with `hf auth login` or set HF_TOKEN")
    if {"OfflineModeIsEnabled", "LocalEntryNotFoundError"} & names or "offline" in text or "cached files" in text:
        return PanosamicError(f"{repo} is not in the Hugging Face cache and the Hub cannot be reached (offline "
                              f"mode or no network): download it once online (accept its licence at {page} and "
                              "log in first), or pass a local folder saved by transformers")
    if "RepositoryNotFoundError" in names:
        return PanosamicError(f"{repo} was not found on the Hugging Face Hub (or it is private and you are not "
                              "logged in): check the id, or log in with `hf auth login`")
    return None


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No per-tensor progress bar of transformers while the weights load."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _image_stats(folder: Path) -> dict[str, Sequence[float]]:
    for name in ("processor_config.json", "preprocessor_config.json"):
        f = folder / name
        if f.is_file():
            d = json.loads(f.read_text(encoding="utf-8"))
            d = d.get("image_processor", d) if isinstance(d, Mapping) else {}
            if "image_mean" in d and "image_std" in d:
                return {"image_mean": tuple(d["image_mean"]), "image_std": tuple(d["image_std"])}
    return {}


def load_sam3(
    checkpoint: str | os.PathLike = "sam3",
    *,
    classes: Sequence[str] | Mapping[str, Sequence[str]] | ClassPrompts | str | None = None,
    views: str = "erp",
    fov_deg: float | None = None,
    coverage_threshold: float | None = None,
    smoothing: int = 0,
    erp_height: int | None = None,
    batch_size: int = 8,
    palette: Any = None,
    subfolder: str | None = None,
    device: Any = "cpu",
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    force_download: bool = False,
    semantic_only: bool = True,
    **unsupported: Any,
) -> Any:
    """A :class:`~panosamic.openvocab.segmenter.Sam3Segmenter` in ``eval()`` mode on ``device``.

    ``classes``: names (``["floor", "bed"]`` or ``"floor, bed"``) or a mapping name -> synonyms.
    ``views``: "erp", "cube" or "tangent"; the other options: see
    :class:`~panosamic.openvocab.segmenter.OpenVocabConfig`. Hub options as for
    :func:`panosamic.load_model` (offline mode and the cache are respected).
    """
    from panosamic.openvocab.protocol import COVERAGE_THRESHOLD
    from panosamic.openvocab.segmenter import OpenVocabConfig, Sam3Segmenter

    if classes is None:
        raise ValueError(NEEDS_CLASSES)
    if not semantic_only:
        raise ValueError("SAM 3 segments by text prompts: it has no automatic-mask instance branch (no --refine, "
                         "no --boundary-weight)")
    given = sorted(k for k, v in unsupported.items() if v is not None and k not in ("strict", "progress"))
    if given:
        raise ValueError(f"a SAM 3 checkpoint takes no {', '.join(given)} (those describe PanoSAMic checkpoints)")
    spec = str(checkpoint)
    config = OpenVocabConfig(ClassPrompts.create(classes), views=views, fov_deg=fov_deg, smoothing=int(smoothing),
                             coverage_threshold=COVERAGE_THRESHOLD if coverage_threshold is None else coverage_threshold,
                             erp_height=erp_height, batch_size=int(batch_size), source=spec)
    try:
        import transformers  # noqa: F401
        from transformers import AutoTokenizer, Sam3Model
    except ImportError:
        raise PanosamicError(_INSTALL) from None
    stats: dict[str, Sequence[float]] = {}
    if spec == TINY_NAME:
        from panosamic.openvocab.tiny import build_tiny_sam3

        sam, tokenizer = build_tiny_sam3()
    else:
        folder = _folder(checkpoint, subfolder)
        if folder.is_dir():
            if not (folder / "config.json").is_file():
                raise FileNotFoundError(f"{folder} has no config.json: not a SAM 3 folder saved by transformers")
            source, kw = str(folder), {}
        else:
            source = SAM3_MODELS.get(spec) or spec
            kw = {"revision": revision, "cache_dir": cache_dir, "token": token, "force_download": force_download,
                  "local_files_only": local_files_only}
            if subfolder:
                kw["subfolder"] = subfolder
        try:
            if not folder.is_dir():
                from huggingface_hub import hf_hub_download

                cfg = hf_hub_download(source, "config.json", **kw)  # gated / offline errors surface here
                folder = Path(cfg).parent
            with _quiet_loading():
                sam = Sam3Model.from_pretrained(source, **kw)
                tokenizer = AutoTokenizer.from_pretrained(source, **kw)
        except Exception as e:
            err = _hub_error(source, e) if not Path(source).is_dir() else None
            if err is None:
                raise
            raise err from None
        stats = _image_stats(folder)
    model = Sam3Segmenter(sam.eval(), tokenizer, config, palette=palette, **stats)
    return model.to(device).eval()
