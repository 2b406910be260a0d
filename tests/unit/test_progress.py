"""Ingest progress: documents against a total with an ETA on a terminal, a line every ~10 s anywhere else."""

from __future__ import annotations

import io

from tqdm import tqdm

from retriever.store.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_without_a_terminal_a_line_is_printed_per_interval_with_total_and_eta() -> None:
    log = io.StringIO()
    progress = Progress("docs", 40, stream=log, every_s=0.0)
    progress.advance(10, 25)
    progress.advance(10, 30)
    progress.close()

    lines = log.getvalue().splitlines()
    assert len(lines) == 3  # one per interval (every call here), and the last
    assert lines[0].startswith("docs:") and "10/40" in lines[0] and "new_chunks=25" in lines[0]
    assert "<" in lines[0]  # elapsed<remaining: the ETA
    assert "20/40" in lines[-1] and "new_chunks=55" in lines[-1]
    assert "\r" not in log.getvalue()  # a log holds lines, not a redrawn bar


def test_without_a_terminal_nothing_is_printed_before_the_interval() -> None:
    log = io.StringIO()
    progress = Progress("docs", 40, stream=log, every_s=3600.0)
    progress.advance(10)
    assert log.getvalue() == ""
    progress.close()
    assert "10/40" in log.getvalue()


def test_on_a_terminal_a_bar_shows_the_total_and_a_warning_gets_its_own_line() -> None:
    terminal = Terminal()
    progress = Progress("docs", 8, stream=terminal)
    progress.advance(4, 9)
    tqdm.write("warning: skipped docs/a.pdf: encrypted PDF", file=terminal)
    progress.advance(4, 1)
    progress.close()

    screen = terminal.getvalue()
    assert "8/8" in screen and "new_chunks=10" in screen
    assert "\nwarning: skipped docs/a.pdf: encrypted PDF\n" in screen.replace("\r", "\n")
