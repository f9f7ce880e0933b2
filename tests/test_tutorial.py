"""The README's "Try it offline" block, run as written (only its output folder moves to a temp dir)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = "data/tutorial"


def readme_block(tag: str, lang: str = "bash") -> str:
    """The README's code block between ``<!-- tag: ... -->`` and ``<!-- /tag -->``."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(rf"<!-- {re.escape(tag)}:.*?-->\s*```{lang}\n(.*?)```\s*<!-- /{re.escape(tag)} -->", text, re.S)
    assert m, f"README.md has no {lang} block between <!-- {tag}: ... --> and <!-- /{tag} -->"
    return m.group(1)


def block_commands(block: str) -> list[str]:
    """The shell commands of a block (continuation lines joined, comments dropped)."""
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def tutorial_commands() -> list[str]:
    return block_commands(readme_block("tutorial"))


def test_tutorial_block_uses_only_the_cli():
    commands = tutorial_commands()
    assert [c.split()[3] for c in commands] == ["synth", "prepare", "train", "export", "evaluate", "predict"]
    assert all(c.startswith("uv run panosamic ") for c in commands)


@pytest.mark.slow
def test_tutorial_runs_and_ends_in_a_prediction(cli, tmp_path):
    """Each command a fresh ``panosamic`` process, forked by the fault suite's ``cli`` server (the same
    command line, without a new interpreter's imports)."""
    out = tmp_path / "tutorial"
    for command in tutorial_commands():
        argv = shlex.split(command.replace(OUT, str(out)))
        assert argv[:3] == ["uv", "run", "panosamic"]
        done = cli.run(argv[3:], cwd=ROOT)
        assert done.rc == 0, f"{command}\n{done.out[-2000:]}\n{done.err[-3000:]}"
        assert "Traceback" not in done.err
    pred = out / "predictions"
    stem = "pano_asmasuxybohhcj"
    for name in (f"{stem}_labels.png", f"{stem}_color.png", f"{stem}_overlay.jpg", "legend.png", "summary.json"):
        assert (pred / name).is_file(), name
    assert Image.open(pred / f"{stem}_labels.png").size == Image.open(
        ROOT / "tests/fixtures/real/panocontext_unlabelled" / f"{stem}.png").size
    assert list((out / "plots").glob("*.png")) and (out / "evaluation.json").is_file()
    assert list((out / "experiments").rglob("train_log.png"))
