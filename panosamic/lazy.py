"""Lazy exports of a package (PEP 562): public names imported from their module on first use.

A package's ``__init__`` keeps ``import panosamic.x`` (and the command line's ``--help``) free of
torch by naming where each public name lives instead of importing it::

    __getattr__ = lazy_getattr(__name__, {"predict": "panosamic.inference"})
    __dir__ = lazy_dir(__name__)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


def _is_submodule(value: Any, package: str) -> bool:
    return isinstance(value, ModuleType) and value.__name__.startswith(f"{package}.")


def lazy_getattr(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``table`` maps a public name to the module that
    defines it (absolute, or relative to ``package``: ``".base"``); the value is imported on first
    use and kept in the package (later lookups skip this function)."""

    def __getattr__(name: str) -> Any:
        module = table.get(name)
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
