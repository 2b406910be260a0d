"""How far an ingest has got: a bar with a total and an ETA on a terminal, a line every ~10 s elsewhere."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from tqdm import tqdm

__all__ = ["Progress"]


class Progress:
    """Documents done against a total (when known), and the chunks embedded so far.

    On a terminal it is a tqdm bar (rate, elapsed, ETA); anywhere else (CI, a log file) it
    prints one line every `every_s` seconds in the same format, and a last one at `close`.
    Warnings printed meanwhile with `tqdm.write` never share a line with the bar.
    """

    def __init__(
        self,
        label: str,
        total: int | None,
        *,
        stream: TextIO | None = None,
        every_s: float = 10.0,
        unit: str = " docs",
    ) -> None:
        self.stream = stream or sys.stderr
        self.unit = unit
        self.total = total
        self.label = label
        self.every_s = every_s
        self.documents = 0
        self.chunks = 0
        self._started = self._printed = time.monotonic()
        self._bar = (
            tqdm(total=total, unit=unit, desc=label, file=self.stream, dynamic_ncols=True)
            if self.stream.isatty()
            else None
        )

    def advance(self, documents: int, new_chunks: int = 0) -> None:
        """Count `documents` more as done (embedded and queued for writing, or unchanged)."""
        self.documents += documents
        self.chunks += new_chunks
        if self._bar is not None:
            self._bar.set_postfix(new_chunks=self.chunks, refresh=False)
            self._bar.update(documents)
        elif time.monotonic() - self._printed >= self.every_s:
            self._line()

    def close(self) -> None:
        """End the bar, or print the last line."""
        if self._bar is not None:
            self._bar.close()
        else:
            self._line()

    def _line(self) -> None:
        self._printed = time.monotonic()
        meter = tqdm.format_meter(
            self.documents,
            self.total,
            self._printed - self._started,
            prefix=self.label,
            unit=self.unit,
            postfix=f"new_chunks={self.chunks}",
            ncols=0,  # no bar: a line a log can hold
        )
        print(meter, file=self.stream, flush=True)
