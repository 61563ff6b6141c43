"""The command line, ``python -m monitor ...`` (``breakout-monitor`` when installed).

- :mod:`~monitor.cli.commands`: ``analyze`` and ``lesions`` (the engine on photo files) and
  the entry point that adds the clinic's commands.
- :mod:`~monitor.cli.clinic`: the clinic's commands (``demo``, ``users``, ``reanalyse``), also
  runnable on their own: ``python -m monitor.cli.clinic users add NAME --role clinician``.
"""

from __future__ import annotations

from monitor.cli.commands import main

__all__ = ["main"]
