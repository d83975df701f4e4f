"""One parser for the two kinds of text a user types everywhere: dates and KEY=VALUE pairs."""
from __future__ import annotations

import datetime as dt
import re
from typing import Iterable

from .errors import ResearchError

__all__ = ["ParseError", "parse_date", "parse_assignments"]


class ParseError(ResearchError, ValueError):
    """A date or KEY=VALUE argument that cannot be read; the message names it."""


_MONTH = re.compile(r"\d{4}-\d{2}")


def parse_date(value: str | dt.date, what: str = "date") -> dt.date:
    """``2025-10-01`` -> date; a month ``2025-10`` -> its first day; a date passes through.

    Only ISO order (year first) is accepted, so ``01/02/2025`` is never guessed.

    Raises
    ------
    ParseError
        Naming ``what`` (the flag or parameter) and the value.
    """
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    try:
        if _MONTH.fullmatch(text):
            return dt.date.fromisoformat(text + "-01")
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ParseError(f"{what} {value!r} is not a date like 2025-10-01 (or a month like 2025-10)") from None


def parse_assignments(items: Iterable[str] | None, what: str = "-p", *, identifiers: bool = True) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}``; values stay text (typed later by whoever knows the type).

    Parameters
    ----------
    items : iterable of str
        ``KEY=VALUE`` strings; the value may itself contain ``=``.
    what : str
        The flag the items came from, for the error message.
    identifiers : bool, default True
        Require each key to be a Python identifier (notebook parameters are).
    """
    out: dict[str, str] = {}
    for item in items or ():
        if "=" not in item:
            raise ParseError(f"{what} {item!r} must look like KEY=VALUE")
        k, v = item.split("=", 1)
        k = k.strip()
        if not k or (identifiers and not k.isidentifier()):
            raise ParseError(f"{what} name {k!r} (in {item!r}) is not a valid name")
        out[k] = v
    return out
