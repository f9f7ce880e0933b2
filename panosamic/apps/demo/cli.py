"""``panosamic demo``: serve the web demo (Gradio) for one checkpoint.

Needs the optional extra: ``uv sync --extra demo`` (or ``uv run --extra demo panosamic demo --checkpoint
...``; an installed package: ``pip install 'panosamic[demo]'``). Importing this module imports neither Gradio nor torch, so
``panosamic --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from typing import Any

from panosamic import flags

#: Where the command listens by default (Gradio's usual port).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
#: Largest panorama width the page accepts by default.
DEFAULT_MAX_WIDTH = 4096
GRADIO_MISSING = (
    "the demo needs Gradio, which is not installed: uv sync --extra demo (or uv run --extra demo panosamic demo "
    "...; an installed package: pip install 'panosamic[demo]')"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help=flags.CHECKPOINT_HELP)
    flags.add_hub(parser)
    parser.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    flags.add_device(parser)
    parser.add_argument(
        "--refine", action="store_true", help="also build SAM's instance branch so the page offers SAM refinement"
    )
    g = parser.add_argument_group("server")
    g.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (0.0.0.0: every interface)")
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    g.add_argument("--share", action="store_true", help="also serve through a temporary public gradio.live link")
    g.add_argument("--max-width", type=int, default=DEFAULT_MAX_WIDTH, metavar="N",
                   help="widest panorama the page accepts")  # fmt: skip
    g.add_argument("--cache-dir", metavar="DIR", help="folder for the viewer's images and the examples "
                   "(default: a new temporary folder)")  # fmt: skip
    g = parser.add_argument_group("checkpoints without a config.json that are not published variants")
    flags.add_architecture(g)
    flags.add_sam_weights(g)
    flags.add_debug(parser)


def check_gradio() -> None:
    """Raise a one-line error naming the install command when Gradio is missing."""
    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError(GRADIO_MISSING)


def check_host(host: str, port: int) -> None:
    """Raise a one-line error naming --host when it resolves to no address to listen on."""
    import socket

    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as e:
        reason = e.strerror if isinstance(e, socket.gaierror) and e.strerror else str(e)
        raise ValueError(f"--host {host!r} is not an address to listen on ({reason}): give an IP address "
                         f"such as {DEFAULT_HOST} or 0.0.0.0 (every interface), or a host name that resolves") from e


def check(args: argparse.Namespace) -> None:
    """Cheap checks before loading anything."""
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {args.port}")
    if args.max_width < 2:
        raise ValueError(f"--max-width must be at least 2, got {args.max_width}")
    check_host(args.host, args.port)
    check_gradio()


def run(args: argparse.Namespace) -> int:
    check(args)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from panosamic.apps.demo.app import build_demo
    from panosamic.apps.demo.backend import load_demo_model
    from panosamic.inference.cli import config_from_args

    demo_model = load_demo_model(
        args.checkpoint,
        subfolder=args.subfolder,
        revision=args.revision,
        config=config_from_args(args),
        sam_weights=args.sam_weights_path,
        device=args.device,
        refine=args.refine,
        local_files_only=args.local_files_only,
        max_width=args.max_width,
    )
    print(f"panosamic demo: {demo_model.describe()}")
    serve(build_demo(demo_model, cache_dir=args.cache_dir), host=args.host, port=args.port, share=args.share)
    return 0


def serve(demo: Any, *, host: str, port: int, share: bool, block: bool = True) -> None:
    """Launch ``demo`` with this command's own lines: the URL(s), and ``--share`` (not Gradio's
    "set share=True in launch()", which speaks to Python callers) as the way to a public link."""
    from panosamic.apps.demo.app import launch_demo

    launch_demo(demo, host=host, port=port, share=share, block=False, quiet=True)
    print(f"panosamic demo: serving on {demo.local_url}", flush=True)  # Gradio prints a public link itself
    if not share:
        print("panosamic demo: add --share for a temporary public gradio.live link", flush=True)
    if block:
        demo.block_thread()
