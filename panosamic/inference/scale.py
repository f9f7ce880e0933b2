"""Prediction at scale: shard, resume and stream many panoramas, in one process or under torchrun.

Python::

    from panosamic.inference.scale import predict_dataset
    report = predict_dataset(model, ["captures/"], "out/", outputs="labels,probs", batch_size=4, workers=4)

Shell (8 GPUs; every rank loads the model, takes every 8th input and writes its own outputs)::

    torchrun --nproc_per_node 8 -m panosamic.cli predict captures/ --checkpoint CKPT --device cuda \\
        --out out/ --outputs labels,probs --batch-size 4 --workers 6

Inputs are sorted; rank ``r`` of ``W`` takes inputs ``r, r + W, ...`` and never waits on another
rank until the end, when rank 0 merges ``summary.jsonl`` and ``failed.jsonl``. DataLoader workers
decode and resize the panoramas while the model runs; a writer thread pool encodes and writes
the files (atomically). Rerunning the same command skips what the resume log
(:mod:`panosamic.inference.manifest`) says is finished and still matches.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader

from panosamic.distributed import resolve_device
from panosamic.errors import describe_error
from panosamic.inference.manifest import (
    FINGERPRINTS,
    ProgressLog,
    checkpoint_id,
    file_fingerprint,
    is_finished,
    log_path,
    options_id,
    read_progress,
)
from panosamic.inference.pipeline import PRECISIONS, forward_each
from panosamic.inference.result import output_files
from panosamic.inference.sources import (
    Item,
    PanoramaSource,
    collate_samples,
    items_from_dataset,
    items_from_list,
    items_from_paths,
)
from panosamic.inference.writers import (
    merge_summaries,
    parse_outputs,
    write_failed,
    write_outputs,
    write_summary_part,
)

#: Outputs when none are asked for.
DEFAULT_OUTPUTS = "labels,color,overlay"
_ROW_KEYS = ("name", "size", "class_fractions", "files")


@dataclass(frozen=True)
class ScaleOptions:
    """How :func:`predict_dataset` runs (see ``panosamic predict --help`` for each flag)."""

    outputs: tuple[str, ...] = parse_outputs(DEFAULT_OUTPUTS)
    batch_size: int = 1
    workers: int = 2
    resume: bool = True
    precision: str = "fp32"
    depth_scale: float | None = None
    depth_threshold: float | None = None
    overlay_alpha: float = 0.5
    overlay_format: str = "jpg"
    fingerprint: str = "stat"
    writer_threads: int = 2
    progress: bool = True
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "outputs", parse_outputs(self.outputs))
        for name, low in (("batch_size", 1), ("workers", 0), ("writer_threads", 1)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not 0.0 <= self.overlay_alpha <= 1.0:
            raise ValueError(f"overlay_alpha must lie in [0, 1], got {self.overlay_alpha}")
        if self.overlay_format not in ("jpg", "png"):
            raise ValueError(f"overlay_format must be 'jpg' or 'png', got {self.overlay_format!r}")
        if self.max_pixels is not None and (isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int)
                                            or self.max_pixels < 1):  # fmt: skip
            raise ValueError(f"max_pixels must be a positive integer, got {self.max_pixels!r}")
        if self.fingerprint not in FINGERPRINTS:
            raise ValueError(f"fingerprint must be one of {FINGERPRINTS}, got {self.fingerprint!r}")

    def affecting_outputs(self, depth_threshold: float | None) -> dict[str, Any]:
        """The options whose change makes finished panoramas be predicted again."""
        opts: dict[str, Any] = {"outputs": list(self.outputs), "precision": self.precision,
                                "depth_scale": self.depth_scale, "depth_threshold": depth_threshold}  # fmt: skip
        if "overlay" in self.outputs:
            opts.update(overlay_alpha=self.overlay_alpha, overlay_format=self.overlay_format)
        return opts


@dataclass
class ScaleReport:
    """What one rank did (rank 0's also holds every rank's failures and the summary path)."""

    rank: int
    world_size: int
    total: int  # inputs over all ranks
    assigned: int  # this rank's share
    predicted: int = 0
    resumed: int = 0  # finished by an earlier run and still valid
    failed: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    model_seconds: float = 0.0  # time in the forward pass (incl. host <-> device copies)
    summary: Path | None = None
    totals: dict[str, int] = field(default_factory=dict)  # rank 0: predicted / resumed over all ranks


def _dist_setup(device: str | torch.device | None, model: Any) -> tuple[int, int, torch.device, bool]:
    """(rank, world size, device, whether we created the process group) from torchrun's environment."""
    if dist.is_available() and dist.is_initialized():  # a group the caller made (e.g. spawned processes)
        world, rank = dist.get_world_size(), dist.get_rank()
    else:
        world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    dev = resolve_device(device, local_rank) if device is not None else next(model.parameters()).device
    created = False
    if world > 1 and not dist.is_initialized():  # gloo: only small objects travel, once, at the end
        dist.init_process_group("gloo", rank=rank, world_size=world, timeout=timedelta(days=7))
        created = True
    return rank, world, dev, created


def collect_items(
    inputs: Sequence[str | os.PathLike] | None = None,
    *,
    manifest: str | os.PathLike | None = None,
    dataset: str | None = None,
    dataset_path: str | os.PathLike | None = None,
    split: str = "test",
    fold: int = 1,
    depth: str | os.PathLike | None = None,
    normals: str | os.PathLike | None = None,
    modalities: Sequence[str] = ("image",),
    recursive: bool = False,
    exclude: str | os.PathLike | None = None,
) -> tuple[list[Item], Any]:
    """The sorted items of exactly one source: inputs, a list file, or a dataset split (``recursive``,
    ``exclude``: see :func:`panosamic.inference.inputs.scan_inputs`)."""
    given = [k for k, v in (("inputs", inputs), ("manifest", manifest), ("dataset", dataset)) if v]
    if len(given) != 1:
        raise ValueError(f"give exactly one of inputs, --manifest or --dataset, got {given or 'none'}")
    if dataset:
        if dataset_path is None:
            raise ValueError(f"--dataset {dataset} needs --dataset-path (the prepared dataset folder)")
        return items_from_dataset(dataset, dataset_path, split, fold, modalities)
    if manifest:
        if depth or normals:
            raise ValueError("with --manifest give depth / normals as CSV columns, not --depth / --normals")
        return items_from_list(manifest), None
    return items_from_paths(list(inputs or ()), depth, normals, recursive=recursive, exclude=exclude), None


def _row(entry: dict[str, Any]) -> dict[str, Any]:
    """A summary.jsonl row from a resume-log entry."""
    return {"input": entry["key"], **{k: entry[k] for k in _ROW_KEYS if k in entry}}


def _run_rank(model: Any, dev: torch.device, todo: list[tuple[int, Item, dict[str, Any]]], source: PanoramaSource,
              out: Path, opts: ScaleOptions, log: ProgressLog, rank: int) -> tuple[dict[int, dict], list, float]:  # fmt: skip
    """Predict ``todo``: returns the summary rows by global position, the failures and the model time."""
    from tqdm import tqdm

    loader = DataLoader(source, batch_size=opts.batch_size, num_workers=opts.workers, collate_fn=collate_samples,
                        pin_memory=dev.type == "cuda", prefetch_factor=4 if opts.workers else None)  # fmt: skip
    rows: dict[int, dict] = {}
    failed: list[dict[str, str]] = []
    pending: deque[tuple[int, Future]] = deque()
    bar = tqdm(total=len(todo), unit="pano", desc="predict", disable=None if opts.progress and rank == 0 else True)

    def fail(i: int, err: BaseException | str) -> None:
        key = todo[i][1].key
        ctx = f"predicting {key}" if isinstance(err, MemoryError) else None
        msg = err if isinstance(err, str) else describe_error(err, context=ctx)
        failed.append({"input": key, "error": msg})
        bar.write(f"panosamic predict: rank {rank}: skipped {key}: {msg}", file=sys.stderr)
        bar.update(1)

    def finish(i: int, fut: Future) -> None:
        pos, item, expected = todo[i]
        try:
            facts = fut.result()
        except (OSError, ValueError, MemoryError) as e:  # nothing of this panorama is left (written all or none)
            fail(i, f"writing the outputs failed: {describe_error(e)}")
            return
        entry = {"key": item.key, "name": item.name, **expected, **facts, "time": time.time(), "rank": rank}
        log.append(entry)  # only now is the panorama finished
        rows[pos] = _row(entry)
        bar.update(1)

    busy = 0.0
    limit = 2 * opts.batch_size + opts.writer_threads  # results waiting for a writer (bounded memory)
    with ThreadPoolExecutor(opts.writer_threads, thread_name_prefix="panosamic-write") as pool:
        for batch in loader:
            for s in batch:
                if s["error"] is not None:
                    fail(s["pos"], s["error"])
            t0 = time.perf_counter()
            done = forward_each(model, [(s["pos"], s["prepared"]) for s in batch if s["error"] is None], fail,
                                device=dev, precision=opts.precision)  # fmt: skip
            busy += time.perf_counter() - t0
            for i, _, result in done:
                fut = pool.submit(write_outputs, out, todo[i][2]["files"], result, overlay_alpha=opts.overlay_alpha)
                pending.append((i, fut))
            while pending and (pending[0][1].done() or len(pending) > limit):
                finish(*pending.popleft())
        while pending:
            finish(*pending.popleft())
    bar.close()
    return rows, failed, busy


def _plan(items: Sequence[Item], mine: Sequence[int], out: Path, opts: ScaleOptions, ckpt: str, opt_id: str,
          report: ScaleReport) -> tuple[dict[int, dict], list[tuple[int, Item, dict[str, Any]]]]:  # fmt: skip
    """Split this rank's share into finished rows (from the resume log) and the work to do."""
    previous = read_progress(out, {items[p].key for p in mine}) if opts.resume else {}
    rows: dict[int, dict] = {}
    todo = []
    for p in mine:
        item = items[p]
        try:
            fp = file_fingerprint(item.files, opts.fingerprint)
        except OSError as e:
            report.failed.append({"input": item.key, "error": f"cannot read {e.filename}: {e.strerror}"})
            continue
        files = output_files(item.name, opts.outputs, opts.overlay_format)
        expected = {"fingerprint": fp, "checkpoint": ckpt, "options": opt_id, "files": files}
        entry = previous.get(item.key)
        if is_finished(entry, expected, out):
            rows[p] = _row(entry)  # type: ignore[arg-type]
            report.resumed += 1
        else:
            todo.append((p, item, expected))
    return rows, todo


def _predict_shard(model: Any, items: Sequence[Item], ds: Any, out: Path, opts: ScaleOptions, rank: int,
                   world: int, dev: torch.device, checkpoint: str | None) -> ScaleReport:  # fmt: skip
    start = time.perf_counter()
    mine = range(rank, len(items), world)  # = shard(items, rank, world), by position
    report = ScaleReport(rank, world, len(items), len(mine))
    threshold = opts.depth_threshold if opts.depth_threshold is not None else getattr(model, "depth_threshold", None)
    ckpt = checkpoint or checkpoint_id(model)
    rows, todo = _plan(items, mine, out, opts, ckpt, options_id(opts.affecting_outputs(threshold)), report)
    source = PanoramaSource([t[1] for t in todo], model.modalities, model.native_size, depth_scale=opts.depth_scale,
                            depth_threshold=threshold, keep_rgb="overlay" in opts.outputs, dataset=ds,
                            max_pixels=opts.max_pixels)  # fmt: skip
    with ProgressLog(log_path(out, rank)) as log:
        new_rows, failed, report.model_seconds = _run_rank(model, dev, todo, source, out, opts, log, rank)
    rows.update(new_rows)
    report.predicted, report.failed = len(new_rows), report.failed + failed
    write_summary_part(out, rank, [dict(rows[p], pos=p) for p in sorted(rows)])
    report.seconds = time.perf_counter() - start
    return report


def _gather(report: ScaleReport, out: Path) -> ScaleReport:
    """The end: every rank's failures and counts to rank 0, which merges the summary (the only wait)."""
    mine = {"failed": report.failed, "predicted": report.predicted, "resumed": report.resumed}
    parts = [mine]
    if report.world_size > 1:
        box: list[Any] | None = [None] * report.world_size if report.rank == 0 else None
        dist.gather_object(mine, box, dst=0)
        parts = box or []
    if report.rank != 0:
        return report
    report.failed = sorted((f for p in parts for f in p["failed"]), key=lambda f: f["input"])
    report.totals = {k: sum(p[k] for p in parts) for k in ("predicted", "resumed")}
    report.summary = merge_summaries(out, report.world_size)
    write_failed(out, report.failed)
    return report


def predict_dataset(
    model: Any,
    inputs: Sequence[str | os.PathLike] | None = None,
    out_dir: str | os.PathLike = "predictions",
    *,
    device: str | torch.device | None = None,
    checkpoint: str | None = None,
    options: ScaleOptions | None = None,
    **keywords: Any,
) -> ScaleReport:
    """Predict every panorama of one source (files/folders, a ``manifest`` list file, or a prepared
    ``dataset`` split) into ``out_dir``, sharded over torchrun's ranks and resumable.

    ``keywords``: the source's (:func:`collect_items`: ``manifest``, ``dataset``, ``dataset_path``,
    ``split``, ``fold``, ``depth``, ``normals``, ``recursive``, ``exclude``) and :class:`ScaleOptions`
    fields that change ``options`` (``outputs``, ``batch_size``, ``workers``, ``resume``, ...).
    ``checkpoint``: the id recorded in the resume log (default: a hash of the model's config and
    weights). Returns this rank's :class:`ScaleReport`.
    """
    option_names = {f.name for f in fields(ScaleOptions)}
    opts = replace(options or ScaleOptions(), **{k: v for k, v in keywords.items() if k in option_names})
    source = {k: v for k, v in keywords.items() if k not in option_names}
    if not getattr(model, "semantic_only", True):
        raise ValueError("predict_dataset runs semantic-only models; load the checkpoint with semantic_only=True")
    items, ds = collect_items(inputs, modalities=model.modalities, **source)
    rank, world, dev, created = _dist_setup(device, model)
    try:
        model.to(dev).eval()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        report = _predict_shard(model, items, ds, out, opts, rank, world, dev, checkpoint)
        return _gather(report, out)
    finally:
        if created:
            dist.destroy_process_group()
