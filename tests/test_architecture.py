"""The package's structure: imports run one way, the registry, the naming scheme."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
import torch
from conftest import COMPAT

from panosamic.config import ModelConfig, PanoSAMicConfig
from panosamic.model import VARIANTS, create_model, get_variant, list_models
from panosamic.specs import MODALITY_SETS, VIT_SPECS, parse_variant_name, variant_name

PACKAGE = Path(__file__).resolve().parents[1] / "panosamic"

#: Layers, bottom first: a unit may import its own layer's units below it only where listed,
#: and anything of a lower layer. ``panosamic/evaluation/train.py`` and the ``__main__`` blocks
#: of scripts are entry points (the command line's layer).
LAYERS: list[set[str]] = [
    {"version", "lazy", "constants", "specs", "io", "errors", "preflight", "config", "runs", "progress", "flags", "geometry", "published"},
    {"distributed"},
    {"modeling", "data", "viz", "palettes", "student"},
    {"weights", "hub", "synth", "openvocab"},
    {"model"},
    {"inference", "evaluation"},
    {"training", "info"},
    {"adapt", "distill"},
    {"cli", "apps", "evaluation.train"},
]


def _unit(module: str) -> str | None:
    """``panosamic.model.loading`` -> ``model``; the root package itself is not a unit."""
    parts = module.split(".")
    if parts[0] != "panosamic" or len(parts) == 1:
        return None
    if parts[1:3] == ["evaluation", "train"]:
        return "evaluation.train"
    return parts[1]


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:])
    return (PACKAGE / rel).with_suffix(".py").is_file() or (PACKAGE / rel / "__init__.py").is_file()


def _modules() -> dict[str, Path]:
    """Every module of the package: ``panosamic.data.base`` -> its file."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        out[".".join(rel.parts).removesuffix(".__init__")] = path
    return out


def _import_statements(path: Path, module: str) -> list[tuple[str, list[str], int]]:
    """``(imported module, names taken from it, line)`` for every panosamic import of a file, at
    top level or inside functions (not in ``if __name__ == "__main__":`` blocks, which run only as
    a script). ``import panosamic.x.y`` gives ``("panosamic.x.y", [], line)``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = []
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.split(".")[0] == "panosamic"]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] == "panosamic":
                out.append((base, [a.name for a in node.names], node.lineno))
    return out


def _imports(path: Path, module: str) -> set[str]:
    """Every panosamic module a file imports (see :func:`_import_statements`)."""
    out = set()
    for base, names, _ in _import_statements(path, module):
        out.add(base)
        out |= {f"{base}.{n}" for n in names if _is_module(f"{base}.{n}")}
    return out


def _file_imports(path: Path, module: str) -> set[str]:
    """The modules whose code a file's imports run: ``from panosamic.x import y`` with ``y`` a
    module runs ``panosamic.x.y`` (its package is already imported: the file lives below it, or
    importing ``y`` imports it anyway), with ``y`` a name defined in ``panosamic.x`` it runs
    ``panosamic.x``."""
    out = set()
    for base, names, _ in _import_statements(path, module):
        modules = {f"{base}.{n}" for n in names if _is_module(f"{base}.{n}")}
        out |= modules
        if not names or len(modules) < len(names):
            out.add(base)
    return out


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts).removesuffix(".__init__")
        src = _unit(module)
        if src is None:
            continue
        for target in _imports(path, module):
            dst = _unit(target)
            if dst is not None and dst != src:
                edges.setdefault(src, set()).add(dst)
    return edges


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"unit {unit!r} is in no layer of tests/test_architecture.py::LAYERS: place it")


def test_no_import_cycle_between_units():
    graph = _graph()
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])


def test_imports_run_down_the_layers():
    wrong = [f"{a} -> {b}" for a, targets in _graph().items() for b in targets if _layer(b) > _layer(a)]
    assert not wrong, "imports that go up a layer: " + ", ".join(sorted(wrong))


def test_the_network_imports_nothing_above_it():
    def above(unit: str) -> set[str]:
        return {u for layer in LAYERS[_layer(unit) + 1 :] for u in layer}

    graph = _graph()
    assert not graph.get("modeling", set()) & above("modeling")  # no Hub, weights, inference, training, CLI
    assert graph.get("model", set()) and not graph["model"] & above("model")


def test_cycle_detector_sees_lazy_imports(tmp_path):
    src = "def f():\n    from panosamic.hub import mixin\n\nif __name__ == '__main__':\n    import panosamic.cli\n"
    (tmp_path / "x.py").write_text(src)
    assert _imports(tmp_path / "x.py", "panosamic.modeling.x") >= {"panosamic.hub", "panosamic.hub.mixin"}
    assert "panosamic.cli" not in _imports(tmp_path / "x.py", "panosamic.modeling.x")


# ---------------------------------------------------------------------------- files
def _package(module: str) -> str:
    """``panosamic.data.base`` -> ``data``; ``panosamic.io`` -> ``io``; the root package -> ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (``[a, b, ..., a]``) per strongly connected group of ``graph`` with two or more nodes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def connect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                top = stack.pop()
                group.append(top)
                if top == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    out = []
    for group in groups:  # walk from the group's first node back to it, inside the group
        start, members = group[0], set(group)
        path, seen = [start], {start}
        while True:
            nxt = sorted(graph[path[-1]] & members)
            back = [n for n in nxt if n == start]
            if back and len(path) > 1:
                out.append(path + [start])
                break
            step = next(n for n in nxt if n not in seen) if any(n not in seen for n in nxt) else None
            if step is None:  # dead end inside the group: fall back to listing it
                out.append(group + [group[0]])
                break
            path.append(step)
            seen.add(step)
    return out


def _file_graph() -> dict[str, set[str]]:
    """File -> the files of its own package whose code its imports run (lazy ones included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        if module == "panosamic":
            continue
        graph[module] = {
            t for t in _file_imports(path, module)
            if t in modules and t != module and t != "panosamic" and _package(t) == _package(module)
        }
    return graph


def _private_imports(path: Path, module: str) -> list[str]:
    """Imports of another package's private modules or names (``_name``; dunders are public)."""

    def private(name: str) -> bool:
        return name.startswith("_") and not name.startswith("__")

    wrong = []
    for base, names, line in _import_statements(path, module):
        if base == "panosamic" or _package(base) == _package(module):
            continue
        if any(private(part) for part in base.split(".")):
            wrong.append(f"{path.name}:{line} imports {base}")
        wrong += [f"{path.name}:{line} imports {base}.{n}" for n in names if private(n)]
    return wrong + [w for w in _private_attributes(path, module) if w not in wrong]


def _private_attributes(path: Path, module: str) -> list[str]:
    """Private names of another package's modules reached through an imported module
    (``from panosamic.x import y`` then ``y._name``; ``import panosamic.x.y`` then ``panosamic.x.y._name``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases |= {a.asname: a.name for a in node.names if a.asname and a.name.split(".")[0] == "panosamic"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            aliases |= {a.asname or a.name: f"{base}.{a.name}" for a in node.names if _is_module(f"{base}.{a.name}")}
    wrong = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        target = ast.unparse(node.value)
        owner = aliases.get(target) or (target if target.startswith("panosamic.") and _is_module(target) else None)
        if owner is not None and _package(owner) != _package(module):
            wrong.append((node.lineno, f"{path.name}:{node.lineno} imports {owner}.{node.attr}"))
    return [w for _, w in sorted(wrong)]


def _root_imports(path: Path, module: str) -> list[str]:
    """Imports of the root package ``panosamic`` (its ``__init__``) from a module below it."""
    if module == "panosamic":
        return []
    wrong = []
    for base, names, line in _import_statements(path, module):
        if base != "panosamic":
            continue
        names = [n for n in names if not _is_module(f"panosamic.{n}")] if names else ["panosamic"]
        wrong += [f"{path.name}:{line} imports {n if n == 'panosamic' else 'panosamic.' + n}" for n in names]
    return wrong


def _where(module: str) -> str:
    return str(_modules()[module].relative_to(PACKAGE.parent))


def test_no_import_cycle_between_files_of_a_package():
    cycles = _cycles(_file_graph())
    assert not cycles, "import cycles between files: " + "; ".join(" -> ".join(_where(m) for m in c) for c in cycles)


def test_no_import_of_another_package_s_private_names():
    wrong = [f"{_where(m)}: {w.split(' ', 1)[1]}" for m, p in _modules().items() for w in _private_imports(p, m)]
    assert not wrong, "imports of another package's private names (make them public or move them): " + ", ".join(wrong)


def test_no_module_imports_the_root_package():
    wrong = [f"{_where(m)}: {w.split(' ', 1)[1]}" for m, p in _modules().items() for w in _root_imports(p, m)]
    assert not wrong, "modules below panosamic import its __init__ (import the defining module): " + ", ".join(wrong)


def test_file_checks_see_what_they_refuse(tmp_path):
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    src = (
        "import panosamic\n"
        "from panosamic import io, create_model\n"
        "from panosamic.hub.loading import _private, public, __version__\n"
        "from panosamic.data._shared import helper\n"
        "from ._own import fine\n"
        "from . import base\n"
        "def f():\n    from panosamic.data.base import _ok_inside\n"
        "if __name__ == '__main__':\n    from panosamic.hub import _script\n"
    )
    (tmp_path / "x.py").write_text(src)
    x = tmp_path / "x.py"
    assert _private_imports(x, "panosamic.data.x") == ["x.py:3 imports panosamic.hub.loading._private"]
    assert _private_imports(x, "panosamic.model.x") == [
        "x.py:3 imports panosamic.hub.loading._private",
        "x.py:4 imports panosamic.data._shared",
        "x.py:8 imports panosamic.data.base._ok_inside",
    ]
    (tmp_path / "y.py").write_text("import panosamic.data.base\nfrom panosamic.hub import loading as hl\n"
                                   "hl._secret()\npanosamic.data.base._table\nhl.__name__\n")
    assert _private_imports(tmp_path / "y.py", "panosamic.model.y") == [
        "y.py:3 imports panosamic.hub.loading._secret", "y.py:4 imports panosamic.data.base._table"]
    assert _private_imports(tmp_path / "y.py", "panosamic.hub.y") == ["y.py:4 imports panosamic.data.base._table"]
    assert _root_imports(x, "panosamic.data.x") == ["x.py:1 imports panosamic", "x.py:2 imports panosamic.create_model"]
    assert _root_imports(x, "panosamic") == []
    files = _file_imports(x, "panosamic.data.x")
    assert {"panosamic.data.base", "panosamic.data._own"} <= files and "panosamic.data" not in files
    assert "panosamic.hub.loading" in files and "panosamic.io" in files and "panosamic" in files


# ---------------------------------------------------------------------------- registry
PUBLISHED = (
    [f"stanford2d3ds-vith-{m}-fold{f}" for m in ("rgb", "rgbd", "rgbdn") for f in (1, 2, 3)]
    + [f"stanford2d3ds-vit{v}-rgbdn-fold{f}" for v in ("l", "b") for f in (1, 2, 3)]
    + ["matterport3d-vith-rgb", "matterport3d-vith-rgbd"]
)


def test_list_models_names_the_17_published_variants():
    assert sorted(list_models()) == sorted(PUBLISHED)
    assert list_models("*rgbdn*") == [n for n in list_models() if "rgbdn" in n]
    assert set(list_models(include_test=True)) - set(PUBLISHED) == {f"test-vittiny-{m}" for m in ("rgb", "rgbd", "rgbdn")}
    assert all(get_variant(n).subfolder == n and get_variant(n).repo == "dfki-av/PanoSAMic" for n in PUBLISHED)
    with pytest.raises(ValueError, match="unknown model 'stanford2d3ds-vitq-rgb'"):
        get_variant("stanford2d3ds-vitq-rgb")


def _table(vit: str, mods: str) -> list[tuple[str, tuple[int, ...]]]:
    from make_weights import read_table

    return read_table(str(COMPAT / f"state_dict_{vit}_{mods}.tsv"))


@pytest.mark.parametrize("name", [n for n in PUBLISHED if n.startswith("stanford2d3ds")])
def test_every_published_variant_builds_with_the_reference_keys(name):
    v = get_variant(name)
    vit, mods = v.config.vit, v.config.modality_set
    with torch.device("meta"):
        model = create_model(name, semantic_only=False)
    assert [(k, tuple(t.shape)) for k, t in model.state_dict().items()] == _table(vit, mods)


@pytest.mark.parametrize("name", ["matterport3d-vith-rgb", "matterport3d-vith-rgbd"])
def test_matterport_variants_differ_from_the_table_only_in_the_class_count(name):
    v = get_variant(name)
    with torch.device("meta"):
        model = create_model(name, semantic_only=False)
    got = [(k, tuple(t.shape)) for k, t in model.state_dict().items()]
    want = _table("vit_h", v.config.modality_set)
    assert [k for k, _ in got] == [k for k, _ in want]
    diff = [k for (k, a), (_, b) in zip(got, want) if a != b]
    assert diff and all(k.startswith("semantic_decoder.") for k in diff)  # 20 classes instead of 13
    assert v.config.num_classes == 20 and v.config.fold is None


@pytest.mark.parametrize("path", ["config/config_stanford2d3ds_dv.json", "config/config_matterport3d_dv.json"])
def test_registry_architecture_is_the_reference_config(path):
    ref = PanoSAMicConfig.from_json(path).model_config(vit="vit_h", modalities="rgb", num_classes=13)
    reg = VARIANTS["stanford2d3ds-vith-rgb-fold1"].config
    for field in ("channel_attention", "spatial_attention", "dual_view", "basic_fusion", "canvas_size"):
        assert getattr(ref, field) == getattr(reg, field), field


def test_create_model_from_config_and_round_trip():
    cfg = VARIANTS["test-vittiny-rgbd"].config
    model = create_model(cfg)
    assert model.config == cfg and ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="no published weights"):
        create_model("test-vittiny-rgb", pretrained=True)


# ---------------------------------------------------------------------------- naming
def test_variant_names_round_trip_over_every_combination():
    datasets = ("stanford2d3ds", "matterport3d", "structured3d", "synthetic")
    for ds, vit, mods, fold in itertools.product(datasets, VIT_SPECS, MODALITY_SETS, (None, 1, 2, 3, 12)):
        name = variant_name(ds, vit, MODALITY_SETS[mods], fold)
        parsed = parse_variant_name(name)
        assert parsed is not None and (parsed.dataset, parsed.vit, parsed.modalities, parsed.fold) == (
            ds, vit, MODALITY_SETS[mods], fold)
        assert str(parsed) == name
    for bad in ("my-own-model", "stanford2d3ds-vith-rgbx-fold1", "stanford2d3ds-vitq-rgb", "x-vith-rgb-fold0"):
        assert parse_variant_name(bad) is None


def test_registered_names_follow_the_scheme():
    for name, v in VARIANTS.items():
        parsed = parse_variant_name(name)
        assert parsed is not None and parsed.vit == v.config.vit and parsed.modalities == v.config.modalities
