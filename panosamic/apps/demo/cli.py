"""``panosamic demo``: serve the web demo (Gradio) for one checkpoint.

Needs the optional extra: ``pip install 'panosamic[demo]'`` (in a checkout: ``uv run --extra demo
panosamic demo --checkpoint ...``). Importing this module imports neither Gradio nor torch, so
``panosamic --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib.util
import os

#: Where the command listens by default (Gradio's usual port).
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860
GRADIO_MISSING = (
    "the demo needs Gradio, which is not installed: pip install 'panosamic[demo]' "
    "(in a source checkout: uv run --extra demo panosamic demo ...)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--checkpoint",
        required=True,
        help="any checkpoint the library loads: a published variant name, a Hub repo id (with --subfolder), "
        "a local Hub-layout folder, a .safetensors file, a training .pth or run folder",
    )
    parser.add_argument("--subfolder", help="variant subfolder of a Hub repo, e.g. stanford2d3ds-vith-rgb-fold1")
    parser.add_argument("--revision", help="Hub revision")
    parser.add_argument("--sam-weights", help="SAM .pth file or folder (default: the cache; downloaded if missing)")
    parser.add_argument("--local-files-only", action="store_true", help="never download (offline)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    parser.add_argument(
        "--refine", action="store_true", help="also build SAM's instance branch so the page offers SAM refinement"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default: %(default)s)")
    parser.add_argument("--share", action="store_true", help="also serve through a public gradio.live link")
    parser.add_argument("--max-width", type=int, default=4096, help="largest panorama width accepted (default: %(default)s)")
    parser.add_argument("--cache-dir", help="folder for the viewer images and examples (default: a temp folder)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")


def check_gradio() -> None:
    """Raise a one-line error naming the install command when Gradio is missing."""
    if importlib.util.find_spec("gradio") is None:
        raise RuntimeError(GRADIO_MISSING)


def run(args: argparse.Namespace) -> int:
    check_gradio()
    if not 0 < args.port < 65536:
        raise ValueError(f"--port must lie in 1..65535, got {args.port}")
    if args.max_width < 2:
        raise ValueError(f"--max-width must be at least 2, got {args.max_width}")
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from panosamic.apps.demo.app import build_demo, launch_demo
    from panosamic.apps.demo.backend import load_demo_model

    demo_model = load_demo_model(
        args.checkpoint,
        subfolder=args.subfolder,
        revision=args.revision,
        sam_weights=args.sam_weights,
        device=args.device,
        refine=args.refine,
        local_files_only=args.local_files_only,
        max_width=args.max_width,
    )
    print(f"panosamic demo: {demo_model.describe()}")
    launch_demo(build_demo(demo_model, cache_dir=args.cache_dir), host=args.host, port=args.port, share=args.share)
    return 0
