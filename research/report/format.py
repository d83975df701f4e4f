"""How the report words and formats a verdict: effects in %, bp, pp, x or USD, window labels that say
before/after, a conclusion on every row and N with its unit.

A verdict stores its effect raw (log returns, probabilities, ratios) and describes it in
``effect_label``; the unit a researcher reads follows from that description (:func:`effect_unit`), and
the raw value stays on the page (the cell's ``title``). One number format throughout: fixed decimals,
never scientific notation.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["Unit", "effect_unit", "fmt_value", "fmt_raw", "window_label", "conclusion", "n_unit"]


@dataclass(frozen=True)
class Unit:
    """How to show a value: multiply by ``scale``, then write ``suffix``; ``name`` for the label."""

    name: str
    scale: float = 1.0
    suffix: str = ""
    transform: str = ""  # "expm1": a log difference shown as the % difference it means


_PCT = Unit("%", 100.0, " %")
_BP = Unit("bp", 1e4, " bp")
_PP = Unit("percentage points", 100.0, " pp")
_RATIO = Unit("ratio", 1.0, "×")
_LOGPCT = Unit("% (from a log difference)", 100.0, " %", "expm1")
_USD = Unit("USD", 1.0, "")
_PLAIN = Unit("", 1.0, "")


def effect_unit(label: str, hypothesis: str = "") -> Unit:
    """The display unit for an effect described by ``label`` (the verdict's ``effect_label``)."""
    text = f"{label} {hypothesis}".lower()
    lab = label.lower()
    if "odds ratio" in lab or "ratio (" in lab:
        return _RATIO
    if re.search(r"\busd\b", lab) or "$" in lab:
        return _USD
    if re.search(r"log (perp |spot )?volume", text):
        return _LOGPCT
    if "log return" in text or "car" in lab.split() or "caar" in lab:
        # hourly returns are a few basis points; cumulative ones are percent
        return _BP if "hourly" in text else _PCT
    if "autocorrelation" in lab or "hedges" in lab:
        return _PLAIN
    if any(w in lab for w in ("p(", "rate", "share", "accuracy", "precision", "probability")):
        return _PP if (" - " in lab or " minus " in lab) else _PCT
    return _PLAIN


def _plain(x: float, digits: int = 3) -> str:
    """Fixed decimals with ``digits`` significant figures (at least 2 decimals below 10), no exponent."""
    if x == 0:
        return "0"
    mag = math.floor(math.log10(abs(x)))
    decimals = max(0, digits - 1 - mag)
    out = f"{x:,.{min(decimals, 6)}f}"
    return out.replace("-", "−")


def fmt_value(x: Any, unit: Unit) -> str:
    """``x`` in ``unit`` (``None``/NaN -> an en dash)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    v = float(x)
    if unit.transform == "expm1":
        v = math.expm1(v)
    if unit is _USD:
        a = abs(v)
        for div, s in ((1e9, " bn"), (1e6, " M"), (1e3, " k")):
            if a >= div:
                return ("−" if v < 0 else "") + "$" + _plain(a / div) + s
        return ("−" if v < 0 else "") + "$" + _plain(a)
    if unit is _PLAIN and isinstance(x, int):
        return f"{x:,}"
    return _plain(v * unit.scale) + unit.suffix


def fmt_raw(x: Any) -> str:
    """The stored value, for a ``title`` attribute (full precision)."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "none"
    return repr(x) if isinstance(x, float) else str(x)


_WINDOW = re.compile(r"CAR\((?P<a>[+-]?\d+)(?:h)?,\s*(?P<b>[+-]?\d+)(?:h)?\)\s+(?:after|before|around)\s+")


def window_label(text: str) -> str:
    """``CAR(-24h,-1h) after X`` -> ``CAR(-24h,-1h) before X``; windows holding the event bar say so."""
    def fix(m: re.Match) -> str:
        a, b = int(m["a"]), int(m["b"])
        word = "before" if b < 0 else ("after" if a > 0 else ("at and after" if a == 0 else "around"))
        return f"{m.group(0).split(')')[0]}) {word} "
    return _WINDOW.sub(fix, text)


def conclusion(v) -> str:
    """The verdict's conclusion, or what a row without one means (never empty)."""
    text = (getattr(v, "conclusion", "") or "").strip()
    if text:
        return text
    if getattr(v, "effect", None) is None:
        return "not testable (no estimate)"
    if getattr(v, "pvalue", None) is None:
        return "descriptive only (no test)"
    alpha = getattr(v, "alpha", 0.05) or 0.05
    return f"{'reject' if v.pvalue < alpha else 'do not reject'} the null at {alpha:g}"


#: what N counts, where a verdict does not say (``n_unit``): (notebook stem, pattern on hypothesis/test, unit)
_N_UNITS: list[tuple[str, str, str]] = [
    ("00-data-overview", r"", "days"),
    ("20-flush-vs-exodus", r"planted", "planted episodes"),
    ("20-flush-vs-exodus", r"", "sell-offs"),
    ("21-second-leg", r"", "sell-offs with a bounce"),
    ("22-crowding-early-warning", r"", "cascades"),
    ("23-funding-settlement-hours", r"beyond spot|day fixed effects", "days"),
    ("23-funding-settlement-hours", r"", "hours"),
    ("24-liquidation-waves", r"", "prints"),
    ("25-liquidation-heatmap", r"", "tests"),
    ("26-venue-shares", r"", "sell-offs"),
]


def n_unit(stem: str, v, event_label: str = "") -> str:
    """What ``v.n_events`` counts: the verdict's own ``n_unit``, an event type's label, or the table above."""
    own = getattr(v, "n_unit", "") or ""
    if own:
        return own
    if event_label:
        return event_label
    text = f"{getattr(v, 'hypothesis', '')} {getattr(v, 'test', '')}"
    for s, pat, unit in _N_UNITS:
        if s == stem and re.search(pat, text, re.I):
            return unit
    return "events"
