"""Progress of a long job: one tqdm bar on a terminal; elsewhere (a log file, a pipe, or with
``bar=False``, i.e. ``--no-progress``) one plain line every few seconds, never a long silence and
never a bar redrawn into a log. Messages go through :meth:`Progress.write`, so they are not glued
to the bar.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any, Self

__all__ = ["LINE_EVERY_S", "Progress", "count"]

#: Seconds between two progress lines when no bar is shown.
LINE_EVERY_S = 10.0


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 step``, ``2 steps`` (``plural``: when not ``noun + "s"``)."""
    return f"{n} {noun if n == 1 else (plural or noun + 's')}"


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, s = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {s:02d} s"
    hours, m = divmod(minutes, 60)
    return f"{hours} h {m:02d} min"


class Progress:
    """``with Progress(total, "predict", "pano", bar=args.progress) as p: ... p.update(1)``.

    ``silent=True`` (e.g. DDP ranks other than 0) prints nothing at all; ``every_s`` is the time
    between progress lines when no bar is shown.
    """

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, bar: bool = True, silent: bool = False,
                 initial: int = 0, every_s: float = LINE_EVERY_S, file: IO[str] | None = None) -> None:  # fmt: skip
        self.total, self.desc, self.unit, self.silent, self.every_s = total, desc, unit, silent, every_s
        self.file = file if file is not None else sys.stderr
        self.n = self._start_n = self._shown_n = initial
        self.postfix = ""
        self._start = self._last = time.monotonic()
        self._bar: Any = None
        if bar and not silent and _is_terminal(self.file):
            from tqdm import tqdm

            self._bar = tqdm(
                total=total, initial=initial, desc=desc, unit=unit, file=self.file, dynamic_ncols=True
            )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self._bar is not None:
            self._bar.update(n)
        elif not self.silent and time.monotonic() - self._last >= self.every_s:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        """Values shown after the count (e.g. ``loss=0.42``)."""
        self.postfix = ", ".join(f"{k} {v}" for k, v in values.items())
        if self._bar is not None:
            self._bar.set_postfix(values, refresh=False)

    def write(self, message: str) -> None:
        """Print a message on its own line (above the bar)."""
        if self.silent:
            return
        if self._bar is not None:
            self._bar.write(message, file=self.file)
        else:
            print(message, file=self.file, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif not self.silent and self.n > self._shown_n and self._last != -1.0:
            self._line(final=True)  # the count as it ends, unless the last line already showed it
        self._last = -1.0  # closed: no further lines

    def _line(self, final: bool = False) -> None:
        now = time.monotonic()
        elapsed, done = now - self._start, self.n - self._start_n
        count = f"{_num(self.n)}/{_num(self.total)}" if self.total is not None else _num(self.n)
        rate = f"{done / elapsed:.2f} {self.unit}/s" if elapsed > 0 and done else ""
        parts = [f"{count} {self.unit}", _duration(elapsed), rate]
        if not final and self.total is not None and done and self.n < self.total:
            parts.append(f"about {_duration((self.total - self.n) * elapsed / done)} left")
        if self.postfix:
            parts.append(self.postfix)
        print(f"{self.desc}: " + ", ".join(p for p in parts if p), file=self.file, flush=True)
        self._last, self._shown_n = now, self.n


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:.1f}"


def _is_terminal(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):
        return False
