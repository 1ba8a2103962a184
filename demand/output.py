"""Where the CLI's tables go: a terminal's own width, or, when the output is a file or a pipe, wide enough that no
column is cut (rich would assume 80 columns). Scripts should still read `--json` / `--format csv|json`."""

from __future__ import annotations

import os
import sys

from rich.console import Console

PIPE_WIDTH = 240  # columns of a table written to a file or a pipe (COLUMNS wins when set)


def stdout() -> Console:
    if sys.stdout.isatty():
        return Console()
    return Console(width=int(os.environ.get("COLUMNS") or PIPE_WIDTH))
