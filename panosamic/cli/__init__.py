"""The ``panosamic`` command line: one program, one subcommand per job.

Each subcommand lives beside the code it drives and exposes two functions,
``add_arguments(parser)`` and ``run(args) -> int``; this file only lists them.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("panosamic.info", "show the installed versions, devices and known model variants"),
    "download-sam": ("panosamic.weights.sam", "download and verify one of Meta's SAM checkpoints"),
    "synth": ("panosamic.data.synthetic", "render a synthetic dataset in the raw Stanford2D3DS layout"),
    "prepare": ("panosamic.data.prepare", "turn a raw dataset download into the processed layout"),
    "predict": ("panosamic.inference.cli", "segment panoramas (files or folders) and write coloured results"),
    "evaluate": ("panosamic.evaluation.evaluate", "evaluate checkpoints on one or several folds"),
    "train": ("panosamic.training.cli", "train the fusion and decoder on a prepared dataset"),
    "export": ("panosamic.training.export", "turn a training checkpoint into a Hub folder (weights, config, card)"),
    "push": ("panosamic.hub.push", "upload a Hub folder to a repository subfolder"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with ``command``, only that subcommand's module is imported (fast start)."""
    from panosamic import __version__

    parser = argparse.ArgumentParser(prog="panosamic", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"panosamic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if command is None or name == command:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, FileNotFoundError, RuntimeError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"panosamic {args.command}: error: {e}", file=sys.stderr)
        return 1


def run_script(command: str, argv: list[str] | None = None) -> int:
    """Entry point of a subcommand run as a script (``python panosamic/evaluation/train.py ...``)."""
    return main([command, *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
