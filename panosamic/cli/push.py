"""``panosamic push`` flags: upload a Hub folder into a repository subfolder, in one commit.

The token comes from HF_TOKEN or `hf auth login` (or --token-file); it is never printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from panosamic import flags


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "checkpoint_dir", metavar="FOLDER", help="folder from `panosamic export` / save_pretrained"
    )
    parser.add_argument(
        "repo_id", metavar="REPO_ID", help="Hub repository, namespace/name (created if missing)"
    )
    parser.add_argument(
        "--subfolder", default=None, help="subfolder in the repo, e.g. stanford2d3ds-vith-rgbd-fold1"
    )
    parser.add_argument("--private", action="store_true", help="create the repo as private")
    parser.add_argument(
        "--revision", default=None, help="branch to push to (created if missing; default: main)"
    )
    parser.add_argument("--create-pr", action="store_true", help="open a pull request instead of pushing")
    parser.add_argument(
        "--commit-message", default=None, help="default: 'Upload PanoSAMic VARIANT to REPO/SUB'"
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="read the Hub token from this file (default: HF_TOKEN or `hf auth login`)",
    )
    flags.add_debug(parser)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from panosamic.hub.push import push_folder

    token = None
    if args.token_file is not None:
        token = args.token_file.read_text().strip() or None
    url = push_folder(
        args.checkpoint_dir, args.repo_id, subfolder=args.subfolder, commit_message=args.commit_message,
        private=True if args.private else None, token=token, revision=args.revision, create_pr=args.create_pr,
    )  # fmt: skip
    print(url)
    return 0
