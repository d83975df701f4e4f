"""The ``research`` command line: a thin typer layer that parses and calls the library."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    help="Treadmill: test claims about Bitcoin's perpetual-futures liquidation treadmill with data.",
    no_args_is_help=True,
    add_completion=False,
)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: $RESEARCH_DATA_DIR or ./data).")


def main() -> None:  # pragma: no cover - console entry point
    app()
