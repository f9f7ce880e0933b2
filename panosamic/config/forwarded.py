"""``Forwarded``: a read-only attribute that reads the field of the same name of another attribute.

The facts a model's config states (``modalities``, ``num_classes``, ``palette``, ...) are read as
attributes of the model, one line each::

    class Model:
        num_classes = Forwarded[int]()  # model.num_classes is model.config.num_classes
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar, overload

__all__ = ["Forwarded"]

T = TypeVar("T")


class Forwarded(Generic[T]):
    """``owner.<name>`` reads ``owner.<source>.<name>`` (``source``: ``"config"`` unless given); setting
    it is refused, as for a property (the source holds the value)."""

    def __init__(self, source: str = "config") -> None:
        self.source = source
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> Forwarded[T]: ...
    @overload
    def __get__(self, obj: object, owner: type | None = None) -> T: ...
    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.source), self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"{self.name} is read from {self.source}.{self.name}: change {self.source} instead")
