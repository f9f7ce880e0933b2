"""README.md as tests: every fenced block is run by a test or marked, and marked blocks are checked.

A block is preceded by an HTML comment saying how it is covered:

* ``<!-- TAG: ... -->`` ... ``<!-- /TAG -->``: a test runs it as written; it reads the block with
  ``readme_block("TAG")`` (``TAG_RUNNERS`` names the test file, checked to read that tag);
* ``<!-- needs ...: ... -->`` (real weights, real data, a GPU, the Hub): checked here for syntax and
  names: shell lines are parsed by ``panosamic``'s own parser (subcommand and every ``--flag``),
  ``uv`` / ``pytest`` / script paths must exist; Python blocks are parsed and every ``panosamic``
  module and name they import or use (``panosamic.X``) must exist;
* ``<!-- not code: ... -->``: a layout listing, not run.

Also here: the quick start offline fails at once, in one line naming every missing file.
"""

from __future__ import annotations

import ast
import importlib
import os
import re
import shlex
import socket
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_tutorial import block_commands, readme_block

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

#: Tags of blocks run as written by other tests -> the test file that runs them.
TAG_RUNNERS = {
    "tutorial": "tests/test_tutorial.py",
    "your-own-data": "tests/test_folder_dataset.py",
    "your-own-data-python": "tests/test_folder_dataset.py",
    "space-front-matter": "tests/test_readme.py",
    "speed": "tests/test_readme.py",
}


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    marker: str  # the HTML comment just above the fence ("" when none)
    line: int


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md with the comment line just above it."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = re.match(r"```(\S*)\s*$", lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while not lines[j].startswith("```"):
            j += 1
        k = i - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        marker = lines[k].strip() if k >= 0 and lines[k].strip().startswith("<!--") else ""
        blocks.append(Block(m.group(1), "\n".join(lines[i + 1 : j]) + "\n", marker, i + 1))
        i = j + 1
    return blocks


def _ids(blocks: list[Block]) -> list[str]:
    return [f"line{b.line}-{b.lang or 'text'}" for b in blocks]


BLOCKS = readme_blocks()
CHECKED = [b for b in BLOCKS if b.marker.startswith(("<!-- needs ", "<!-- checked:"))]


def _tag(marker: str) -> str | None:
    m = re.match(r"<!-- ([a-z0-9-]+):", marker)
    return m.group(1) if m else None


def test_every_block_is_run_or_marked():
    assert len(BLOCKS) > 20
    unmarked = [f"README.md:{b.line} ({b.lang or 'text'})" for b in BLOCKS if not b.marker]
    assert not unmarked, f"blocks with no coverage comment just above them: {unmarked}"
    for b in BLOCKS:
        tag = _tag(b.marker)
        if b.marker.startswith(("<!-- needs ", "<!-- checked:", "<!-- not code:")):
            assert b.lang in ("bash", "python", "") or b.marker.startswith("<!-- not code:"), b
            continue
        assert tag in TAG_RUNNERS, (
            f"README.md:{b.line}: marker {b.marker!r} names no known runner (TAG_RUNNERS)"
        )
        runner = (ROOT / TAG_RUNNERS[tag]).read_text(encoding="utf-8")
        assert f'readme_block("{tag}"' in runner, f"{TAG_RUNNERS[tag]} does not run the README block {tag!r}"
        assert readme_block(tag, b.lang) == b.code


def test_one_way_to_run_it():
    text = README.read_text(encoding="utf-8")
    for b in BLOCKS:
        if b.lang != "bash":
            continue
        for command in _commands(b.code):
            assert command[0] in ("uv", "torchrun"), (
                f"README.md:{b.line}: {shlex.join(command)} (use uv run ...)"
            )
    assert not re.search(r"(?<!uv )pip install", text), (
        "README.md: pip install (use uv sync --extra / uv run --extra)"
    )
    bare = [c for c in re.findall(r"`(panosamic [^`]*)`", text) if len(c.split()) > 2]
    assert not bare, f"README.md: commands without uv run: {bare}"
    for path in ("/tmp/", "/work/", "/root/"):
        assert path not in text, f"README.md names a developer path {path}"


# ---------------------------------------------------------------------------------------- shell
def _commands(code: str) -> list[list[str]]:
    out = []
    for line in block_commands(code):
        argv = shlex.split(line, comments=True)
        while argv and re.fullmatch(r"[A-Z_]+=\S*", argv[0]):  # VAR=value prefix
            argv = argv[1:]
        if argv:
            out.append(argv)
    return out


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _check_uv(argv: list[str], where: str) -> list[str]:
    """``uv run [--extra X] REST`` -> REST (extras checked); ``uv sync/pip ...`` checked and -> []."""
    extras = _pyproject()["project"]["optional-dependencies"]
    sub, rest = argv[1], argv[2:]
    i = 0
    while i < len(rest) and rest[i].startswith("-"):
        if rest[i] == "--extra":
            assert rest[i + 1] in extras, f"{where}: no extra {rest[i + 1]!r} in pyproject.toml"
            i += 2
        else:
            i += 1
    assert sub in ("run", "sync", "pip", "venv"), f"{where}: uv {sub}"
    if sub == "pip" and "--group" in rest:
        group = rest[rest.index("--group") + 1]
        assert group in _pyproject()["dependency-groups"], f"{where}: no dependency group {group!r}"
    return rest[i:] if sub == "run" else []


def _check_panosamic(argv: list[str], where: str) -> None:
    from panosamic.cli import COMMANDS, build_parser

    assert argv and argv[0] in COMMANDS, f"{where}: no subcommand {argv[:1]} (have {sorted(COMMANDS)})"
    parser = build_parser(argv[0])
    sub = next(a for a in parser._actions if a.dest == "command").choices[argv[0]]
    for token in argv[1:]:
        if token.startswith("--"):
            flag = token.split("=", 1)[0]
            assert flag in sub._option_string_actions, f"{where}: panosamic {argv[0]} has no {flag}"
    try:
        parser.parse_args(argv)
    except SystemExit:
        pytest.fail(f"{where}: panosamic {shlex.join(argv)} does not parse")


def _check_command(argv: list[str], where: str) -> None:
    if argv[0] == "uv":
        argv = _check_uv(argv, where)
        if not argv:
            return
    elif argv[0] == "torchrun":
        i = argv.index("-m")
        assert argv[i + 1] == "panosamic.cli", where
        argv = ["panosamic", *argv[i + 2 :]]
    if argv[0] == "panosamic":
        _check_panosamic(argv[1:], where)
    elif argv[0] == "pytest":
        markers = {m.split(":")[0] for m in _pyproject()["tool"]["pytest"]["ini_options"]["markers"]}
        for i, token in enumerate(argv[1:], 1):
            if token.startswith("tests/"):
                assert (ROOT / token).is_file(), f"{where}: no {token}"
            if argv[i - 1] == "-m":
                used = set(re.findall(r"[a-z_]+", token)) - {"not", "and", "or"}
                assert used <= markers, f"{where}: unknown markers {used - markers}"
    elif argv[0] == "python":
        assert (ROOT / argv[1]).is_file(), f"{where}: no {argv[1]}"
    else:
        pytest.fail(f"{where}: {shlex.join(argv)} is not run through uv run / torchrun")


# ---------------------------------------------------------------------------------------- python
def _module_file(module: str) -> Path:
    path = ROOT.joinpath(*module.split("."))
    assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), f"no module {module}"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else path / "__init__.py"


def _has(module: str, name: str) -> bool:
    """Whether ``module`` defines, imports or (lazily) exports ``name``: read from its source, so that
    checking a block costs no import of gradio, onnxruntime, ...; a module-level ``__getattr__`` is asked."""
    path = ROOT.joinpath(*module.split("."))
    if (path / name).is_dir() or (path / f"{name}.py").is_file():  # a sub-module
        return True
    tree = ast.parse(_module_file(module).read_text(encoding="utf-8"))
    defined = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            defined.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            defined.update(t.id for t in targets if isinstance(t, ast.Name))
    if name in defined:
        return True
    if "__getattr__" not in defined:
        return False
    lazy = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    return name in lazy or hasattr(importlib.import_module(module), name)  # a lazy export table names it


def _check_python(code: str, where: str) -> None:
    tree = ast.parse(code, filename=where)
    modules: dict[str, str] = {}  # local name -> panosamic module
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "panosamic":
                    _module_file(alias.name)
                    modules[alias.asname or "panosamic"] = alias.name if alias.asname else "panosamic"
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "panosamic":
            for alias in node.names:
                assert _has(node.module, alias.name), f"{where}: {node.module} has no {alias.name}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            module = modules[node.value.id]
            assert _has(module, node.attr), f"{where}: {module} has no {node.attr}"


@pytest.mark.parametrize("block", CHECKED, ids=_ids(CHECKED))
def test_marked_block_names_exist(block: Block):
    where = f"README.md:{block.line}"
    if block.lang == "bash":
        for argv in _commands(block.code):
            _check_command(argv, where)
    elif block.lang == "python":
        _check_python(block.code, where)
    else:
        pytest.fail(f"{where}: a 'needs' marker on a {block.lang or 'text'} block")


def test_the_checks_catch_a_renamed_api():
    with pytest.raises(AssertionError, match="has no --output-file"):
        _check_command(["uv", "run", "panosamic", "evaluate", "--output-file", "x.json"], "probe")
    with pytest.raises(AssertionError, match="no subcommand"):
        _check_command(["uv", "run", "panosamic", "segment", "x.jpg"], "probe")
    with pytest.raises(AssertionError, match="has no load_modell"):
        _check_python("import panosamic\npanosamic.load_modell('x')\n", "probe")
    with pytest.raises(AssertionError, match="has no predict_all"):
        _check_python("from panosamic.inference import predict_all\n", "probe")


# ---------------------------------------------------------------------------------------- run here
def test_space_front_matter_block_is_the_spaces_readme():
    block = readme_block("space-front-matter", "yaml")
    space = (ROOT / "spaces/README.md").read_text(encoding="utf-8")
    assert space.startswith(block)


def test_speed_block_runs_on_the_test_architecture():
    import panosamic

    code = readme_block("speed", "python")
    model = panosamic.create_model("test-vittiny-rgb")
    exec(compile(code, "README.md:speed", "exec"), {"model": model})
    from panosamic.modeling.inference import InferenceOptions

    assert model.inference_options == InferenceOptions.for_path("exact")  # the block's last path
    assert model.gradient_checkpointing is True


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_quick_start_offline_fails_at_once_naming_every_missing_file(tmp_path):
    """The quick start's predict line without network: one line naming the checkpoint and the SAM
    weights, no retries (the Hub endpoint is a closed local port; caches are empty temp folders)."""
    quick = next(b for b in BLOCKS if "--checkpoint stanford2d3ds-vith-rgb-fold1" in b.code)
    argv = next(a for a in _commands(quick.code) if a[2:4] == ["panosamic", "predict"])
    env = {
        **os.environ,
        "HF_HOME": str(tmp_path / "hf"),
        "PANOSAMIC_CACHE": str(tmp_path / "cache"),
        "HF_ENDPOINT": f"http://127.0.0.1:{_closed_port()}",
    }
    env.pop("HF_HUB_OFFLINE", None)
    argv = [a if a != "predictions/" else str(tmp_path / "predictions") for a in argv]
    done = subprocess.run(
        [sys.executable, "-m", "panosamic.cli", *argv[3:]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Retrying" not in done.stderr and "Traceback" not in done.stderr
    line = lines[0]
    assert line.startswith("panosamic predict: error: stanford2d3ds-vith-rgb-fold1 needs 2 files"), line
    assert "dfki-av/PanoSAMic/stanford2d3ds-vith-rgb-fold1/model.safetensors" in line
    assert "sam_vit_h_4b8939.pth" in line and "127.0.0.1 cannot be reached" in line
    assert not (tmp_path / "predictions").exists()


def test_offline_check_names_what_is_missing(tmp_path, monkeypatch):
    from panosamic.hub.loading import HubOfflineError
    from panosamic.model.downloads import check_downloads, missing_downloads

    monkeypatch.setenv("PANOSAMIC_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub = dict(cache_dir=tmp_path / "hf")
    with pytest.raises(
        HubOfflineError,
        match=r"needs 2 files .* HF_HUB_OFFLINE is set: the checkpoint "
        r"dfki-av/PanoSAMic/stanford2d3ds-vitb-rgbdn-fold2/model.safetensors.*sam_vit_b_01ec64.pth",
    ):
        check_downloads("stanford2d3ds-vitb-rgbdn-fold2", **hub)
    with pytest.raises(HubOfflineError, match="--local-files-only is set"):
        check_downloads(
            "dfki-av/PanoSAMic", subfolder="stanford2d3ds-vith-rgb-fold1", local_files_only=True, **hub
        )
    sam = tmp_path / "sam"
    sam.mkdir()
    (sam / "sam_vit_b_01ec64.pth").write_bytes(b"x")
    missing = missing_downloads("stanford2d3ds-vitb-rgbdn-fold2", sam_weights=sam, **hub)
    assert [m.what for m in missing] == [
        "the checkpoint dfki-av/PanoSAMic/stanford2d3ds-vitb-rgbdn-fold2/model.safetensors"
    ]
    for other in (
        "test-vittiny-rgb",
        "sam3",
        "facebook/sam3",
        str(tmp_path),
    ):  # not published variants: the loader's job
        assert missing_downloads(other, **hub) == []


def test_evaluate_out_flag_with_the_earlier_spelling_hidden():
    from panosamic.cli import build_parser

    parser = build_parser("evaluate")
    common = ["evaluate", "--dataset", "stanford2d3ds", "--dataset-path", "d"]
    assert parser.parse_args([*common, "--out", "a.json"]).output == "a.json"
    assert (
        parser.parse_args([*common, "--output", "b.json"]).output == "b.json"
    )  # the earlier spelling still works
    sub = next(a for a in parser._actions if a.dest == "command").choices["evaluate"]
    assert "--out FILE" in sub.format_help() and "--output" not in sub.format_help()
