"""``panosamic plot-log`` flags: training curves (loss, learning rate, validation mIoU) of a run."""

from __future__ import annotations

import argparse
from pathlib import Path

from panosamic import flags

#: File written into the run folder when --out is not given.
DEFAULT_NAME = "train_log.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "run", metavar="RUN", help="training run folder (holding train_log.jsonl) or the .jsonl file"
    )
    parser.add_argument(
        "--out", default=None, metavar="PNG", help=f"figure to write (default: RUN/{DEFAULT_NAME})"
    )
    parser.add_argument("--title", default=None, help="figure title (default: none)")
    flags.add_debug(parser)


def _out(args: argparse.Namespace) -> Path:
    if args.out is not None:
        return Path(args.out)
    run = Path(args.run)
    return (run if run.is_dir() else run.parent) / DEFAULT_NAME


def check(args: argparse.Namespace) -> None:
    from panosamic.preflight import check_output_file

    if not Path(args.run).exists():
        raise FileNotFoundError(
            f"RUN {args.run} does not exist (give a training run folder or its train_log.jsonl)"
        )
    check_log_readable(args.run)
    check_output_file(_out(args), what="--out")


def check_log_readable(run: str) -> None:
    """Refuse a training log that is not text (a binary or corrupt ``train_log.jsonl``), naming the file."""
    from panosamic.evaluation.report import log_path

    path = log_path(run)
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        binary = True
    else:
        binary = b"\x00" in data
    if binary:
        raise ValueError(f"{path} is unreadable as a training log: it holds binary data, not JSON lines "
                         "(give the train_log.jsonl a training run wrote)")


def run(args: argparse.Namespace) -> int:
    from panosamic.evaluation.plots import plot_training_log

    path = plot_training_log(args.run, _out(args), title=args.title)
    print(f"wrote {path}")
    return 0
