"""The ``research`` command line: a thin typer layer that parses and calls the library.

One module per group of commands: :mod:`.data` (sample, info, query, schema, import, verify,
repair), :mod:`.fetch` (``research fetch <source>``), :mod:`.runs` (run, grid, report, lab).
"""
from __future__ import annotations

import typer

app = typer.Typer(
    help="Treadmill: test claims about Bitcoin's perpetual-futures liquidation treadmill with data.",
    no_args_is_help=True,
    add_completion=False,
    # plain click help: rich markup would eat every bracketed default ("[fundingRate,klines]",
    # "[https://...]") and show boolean flags as "<bool>"
    rich_markup_mode=None,
)

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: $RESEARCH_DATA_DIR, else data/ in the project checkout, else ./data).")


def main() -> None:  # pragma: no cover - console entry point
    app()


def _parse_params(pairs: list[str] | None) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="-p")
        k, v = pair.split("=", 1)
        params[k.strip()] = None if v.strip().lower() in ("null", "none") else v
    return params



def _bad_input(exc) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


# the command modules register themselves on ``app`` (imported last: they import ``app`` from here)
from . import data, fetch, runs  # noqa: E402,F401
