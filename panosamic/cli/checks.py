"""Checks of flag values that several subcommands share (run by their ``check(args)``)."""

from __future__ import annotations


def check_at_least(*rules: tuple[str, int | float | None, int]) -> None:
    """Refuse the first ``(flag, value, minimum)`` whose value is below its minimum (an unset
    ``None`` passes): ``--batch-size must be >= 1, got 0``."""
    for flag, value, low in rules:
        if value is not None and value < low:
            raise ValueError(f"{flag} must be >= {low}, got {value}")
