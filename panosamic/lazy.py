"""Lazy exports of a package (PEP 562): public names imported from their module on first use.

A package's ``__init__`` keeps ``import panosamic.x`` (and the command line's ``--help``) free of
torch by naming where each public name lives instead of importing it::

    _LAZY = {"panosamic.inference": ("predict", "predict_batch")}
    __all__ = lazy_names(_LAZY)
    __getattr__ = lazy_getattr(__name__, _LAZY)
    __dir__ = lazy_dir(__name__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any


def _is_submodule(value: Any, package: str) -> bool:
    return isinstance(value, ModuleType) and value.__name__.startswith(f"{package}.")


def lazy_names(table: Mapping[str, Iterable[str]]) -> list[str]:
    """The public names of a lazy table (module -> the names it defines), in order."""
    return [name for names in table.values() for name in names]


def lazy_getattr(package: str, table: Mapping[str, Iterable[str]]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``table`` maps a module (absolute, or relative to
    ``package``: ``".base"``) to the public names it defines; a name is imported on first use and
    kept in the package (later lookups skip this function)."""
    where = {name: module for module, names in table.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module, package), name)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


def lazy_dir(package: str) -> Callable[[], list[str]]:
    """The module ``__dir__`` of ``package`` (tab completion): its ``__all__``, dunders and
    sub-modules, not the helpers its ``__init__`` imports (``Any``, ``annotations``, ...)."""

    def __dir__() -> list[str]:
        namespace = vars(sys.modules[package])
        shown = {n for n, v in namespace.items() if n.startswith("__") or _is_submodule(v, package)}
        return sorted(shown | set(namespace.get("__all__", ())))

    return __dir__
