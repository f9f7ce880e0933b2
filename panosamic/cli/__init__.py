"""The panosamic command line: one program, one subcommand per job.

Each subcommand's flags live in a module that imports no torch (``--help`` answers at once) and
that exposes ``add_arguments(parser)``, ``run(args) -> int`` (which imports the heavy code) and
optionally ``check(args)`` (cheap checks of the flags and output locations, run before any work).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable
from types import ModuleType

from panosamic.flags import HelpFormatter, flag_names

#: subcommand -> (module with add_arguments/run, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "info": ("panosamic.cli.info", "show the installed versions, devices and known model variants"),
    "download-sam": ("panosamic.cli.download_sam", "download and verify one of Meta's SAM checkpoints"),
    "synth": ("panosamic.cli.synth", "render a synthetic dataset in the raw Stanford2D3DS layout"),
    "prepare": ("panosamic.cli.prepare", "turn a raw dataset download into the processed layout"),
    "train": ("panosamic.cli.train", "train the fusion and decoder on a prepared dataset"),
    "evaluate": ("panosamic.cli.evaluate", "evaluate checkpoints on one or several folds"),
    "plot-log": ("panosamic.cli.plot_log", "draw the training curves (loss, lr, val mIoU) of a training run"),
    "export": (
        "panosamic.cli.export",
        "turn a training checkpoint into a Hub folder (weights, config, card)",
    ),
    "predict": ("panosamic.cli.predict", "segment panoramas (files or folders) and write coloured results"),
    "push": ("panosamic.cli.push", "upload a Hub folder to a repository subfolder"),
    "adapt": ("panosamic.adapt.cli", "adapt a model to unlabelled panoramas (mean-teacher self-training)"),
    "distill": ("panosamic.distill.cli", "distil a teacher checkpoint into a compact student"),
    "demo": ("panosamic.apps.demo.cli", "serve the web demo (Gradio) for one checkpoint"),
}
EPILOG = "Run `panosamic COMMAND --help` for the flags of one command; every command takes --debug."


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def build_parser(commands: Iterable[str] | str | None = None) -> argparse.ArgumentParser:
    """The parser; only the flag modules of ``commands`` (default: all) are imported."""
    from panosamic.version import __version__

    wanted = set(COMMANDS) if commands is None else {commands} if isinstance(commands, str) else set(commands)
    parser = argparse.ArgumentParser(
        prog="panosamic", description=__doc__.splitlines()[0], epilog=EPILOG, formatter_class=HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"panosamic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
        if name in wanted:
            module = importlib.import_module(module_name)
            module.add_arguments(p)
            p.set_defaults(_module=module)
    return parser


def _unknown_flags(parser: argparse.ArgumentParser, command: str, extras: list[str]) -> None:
    """The subcommand's own usage error for flags it does not take (naming the commands that do)."""
    others: dict[str, list[str]] = {}
    flags = [e.split("=", 1)[0] for e in extras if e.startswith("--")]
    if flags:
        for name, p in _subparsers(build_parser(set(COMMANDS) - {command})).items():
            for flag in flags:
                if flag in p._option_string_actions:
                    others.setdefault(flag, []).append(name)
    hint = "".join(f"; {f} is a flag of {', '.join(names)}" for f, names in others.items())
    _subparsers(parser)[command].error(f"unrecognized arguments: {' '.join(extras)}{hint}")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse ``argv``, importing only the chosen subcommand's flag module."""
    command = next((a for a in argv if not a.startswith("-")), None)
    command = command if command in COMMANDS else None
    parser = build_parser([command] if command else [])
    args, extras = parser.parse_known_args(argv)
    if extras:
        if args.command is None:
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        _unknown_flags(parser, args.command, extras)
    if args.command is None:
        parser.print_help()
    return args


def run_command(module: ModuleType, args: argparse.Namespace) -> int:
    """The subcommand's checks, then its work; errors as one line (``--debug``: the traceback)."""
    try:
        if hasattr(module, "check"):
            module.check(args)
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if getattr(args, "debug", False):
            raise
        print(f"\npanosamic {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (e.g. `panosamic info | head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    except Exception as e:  # every error a user can meet ends in one line
        if getattr(args, "debug", False):
            raise
        from panosamic.errors import describe_error

        print(f"panosamic {args.command}: error: {flag_names(describe_error(e))}", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else [str(a) for a in argv])
    if args.command is None:
        return 2
    return run_command(args._module, args)


def run_script(command: str, argv: list[str] | None = None) -> int:
    """Entry point of a subcommand run as a script (``python panosamic/evaluation/train.py ...``)."""
    return main([command, *(sys.argv[1:] if argv is None else argv)])
