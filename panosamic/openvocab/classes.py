"""The user's class list: names, optional synonyms (extra prompts) per class, the catch-all class.

``--classes "floor, bed, lamp"`` or a file with one class per line, ``name: synonym, synonym``
(``#`` starts a comment). Pure Python: the command line checks a list before any model loads.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from panosamic.constants import MAX_CLASSES

__all__ = ["CATCH_ALL_NAMES", "MAX_CLASSES", "ClassPrompts", "parse_class_file", "parse_class_list"]

#: Class names taken as the catch-all of the baseline protocol (Stanford2D3DS: clutter, Matterport3D: objects).
CATCH_ALL_NAMES: tuple[str, ...] = ("clutter", "objects")


@dataclass(frozen=True)
class ClassPrompts:
    """Class names (label ``k`` is ``names[k]``) and the text prompts of each (the name first)."""

    names: tuple[str, ...]
    prompts: tuple[tuple[str, ...], ...]

    @classmethod
    def create(cls, classes: Sequence[str] | Mapping[str, Sequence[str]] | ClassPrompts, *,
               where: str = "classes") -> ClassPrompts:
        """From names, or a mapping name -> synonyms; checked (see :func:`check_names`)."""
        if isinstance(classes, ClassPrompts):
            return classes
        if isinstance(classes, str):
            return parse_class_list(classes, where=where)
        if isinstance(classes, Mapping):
            pairs = [(str(k).strip(), tuple(str(s).strip() for s in v if str(s).strip())) for k, v in classes.items()]
        else:
            pairs = [(str(k).strip(), ()) for k in classes]
        check_names([n for n, _ in pairs], where)
        return cls(tuple(n for n, _ in pairs), tuple(_unique((n, *syn)) for n, syn in pairs))

    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def catch_all(self) -> int | None:
        """Index of the catch-all class (the first of :data:`CATCH_ALL_NAMES` in the list), or None."""
        lower = [n.lower() for n in self.names]
        return next((lower.index(c) for c in CATCH_ALL_NAMES if c in lower), None)

    def flat_prompts(self) -> tuple[tuple[str, ...], tuple[int, ...]]:
        """Every prompt once, in order, and the class index of each."""
        texts = tuple(p for ps in self.prompts for p in ps)
        owners = tuple(k for k, ps in enumerate(self.prompts) for _ in ps)
        return texts, owners

    def to_dict(self) -> dict[str, list[str]]:
        return {n: list(p[1:]) for n, p in zip(self.names, self.prompts)}


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


def check_names(names: Sequence[str], where: str = "classes") -> None:
    """Refuse an empty list, an empty name, a name given twice, or more classes than a label PNG holds."""
    if not names:
        raise ValueError(f"{where} is empty: give class names separated by commas, e.g. \"floor, wall, lamp\"")
    empty = [i for i, n in enumerate(names) if not n]
    if empty:
        raise ValueError(f"{where}: class {empty[0] + 1} has an empty name (two commas in a row?)")
    seen: set[str] = set()
    for n in names:
        if n.lower() in seen:
            raise ValueError(f"{where} names {n!r} twice: give each class once (synonyms: a classes file "
                             f"with lines like 'lamp: light, lantern')")
        seen.add(n.lower())
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{where} has {len(names)} classes but a label PNG holds at most {MAX_CLASSES} (16-bit)")


def parse_class_list(text: str, *, where: str = "--classes") -> ClassPrompts:
    """``"floor, bed, lamp"`` -> :class:`ClassPrompts` (checked)."""
    names = [p.strip() for p in str(text).split(",")]
    if names == [""]:
        names = []
    return ClassPrompts.create(names, where=where)


def parse_class_file(path: str | os.PathLike) -> ClassPrompts:
    """One class per line, ``name`` or ``name: synonym, synonym``; blank lines and ``#`` comments skipped."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"classes file not found: {p}")
    classes: dict[str, list[str]] = {}
    names: list[str] = []
    for number, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, rest = line.partition(":")
        name = name.strip()
        if not name:
            raise ValueError(f"{p}, line {number}: no class name before ':'")
        names.append(name)
        classes.setdefault(name, [s.strip() for s in rest.split(",") if s.strip()])
    check_names(names, str(p))
    return ClassPrompts.create(classes, where=str(p))
