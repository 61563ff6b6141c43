"""Progress of long work on stderr, for the command line and the benchmarks."""

from __future__ import annotations

import sys

__all__ = ["print_progress"]


def print_progress(done: int, total: int, name: str, status: str = "") -> None:
    """Report that ``done`` of ``total`` items are done, the last one ``name`` (``status``).

    On a terminal a bar is redrawn in place and ends its line with the last item; in a log
    (stderr not a terminal) each step is a line of its own.
    """
    if not sys.stderr.isatty():
        print(f"[{done}/{total}] {name}{': ' + status if status else ''}", file=sys.stderr,
              flush=True)
        return
    width = 24
    filled = int(width * done / max(total, 1))
    print(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {name[:40]:<40} {status:<8}",
          end="" if done < total else "\n", file=sys.stderr, flush=True)
