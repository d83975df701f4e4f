"""The parameters of a notebook run: the ``parameters`` cell's names and types (read with :mod:`ast`),
checking values against them (types, dates, the ranges of :mod:`.ranges`, start before end, the span
against the lake), and the YAML used for values."""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from research.errors import GridError, NotebookError
from research.parsing import ParseError, parse_assignments as _parse_assignments, parse_date

from .ranges import range_error

#: Parameters owned by the runner; users set them with --data-dir / --out, never with -p.
RUNNER_PARAMS = ("data_dir", "output_dir")
#: String parameters that must be dates (ISO days or YYYY-MM months, :func:`research.parsing.parse_date`)
DATE_PARAMS = ("start", "end")

_ANY = object()  # default is not a literal: any value is accepted


@dataclass(frozen=True)
class Param:
    """One name of a notebook's ``parameters`` cell."""

    name: str
    default: Any  # the literal value, or the source text when not a literal
    kind: Any  # str, int, float, bool, type(None), list, dict, or _ANY
    help: str = ""  # the line's comment

    @property
    def type_name(self) -> str:
        return "any" if self.kind is _ANY else ("None" if self.kind is type(None) else self.kind.__name__)


class _YamlLoader(yaml.SafeLoader):
    """SafeLoader that leaves dates as strings (``2025-01-01`` is a ``str``, not a ``datetime.date``)
    and refuses aliases, so a small file cannot expand into a huge document (a "billion laughs" bomb)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            ev = self.peek_event()
            raise GridError(f"YAML alias *{ev.anchor} at line {ev.start_mark.line + 1}: aliases are not allowed "
                            "here (write the values out)")
        return super().compose_node(parent, index)


_YamlLoader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def yaml_load(text: str) -> Any:
    """Load YAML with dates kept as strings and aliases refused (:class:`~research.errors.GridError`)."""
    return yaml.load(text, Loader=_YamlLoader)


def _read_nb(notebook: Path):
    from research._imports import jsonschema_without_iri

    jsonschema_without_iri()
    import nbformat

    if not notebook.exists():
        raise NotebookError(f"notebook {notebook} does not exist")
    try:
        return nbformat.read(notebook, as_version=4)
    except Exception as exc:  # nbformat raises several types for broken JSON
        # the message names the error type only: nbformat's text quotes the file's contents
        raise NotebookError(f"{notebook} is not a readable notebook ({type(exc).__name__})") from None


def parameter_spec(notebook) -> dict[str, Param]:
    """Names, defaults and inferred types of the notebook's ``parameters`` cell.

    Raises
    ------
    NotebookError
        No cell is tagged ``parameters``, or it is not valid Python.
    """
    notebook = Path(notebook)
    nb = _read_nb(notebook)
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        raise NotebookError(
            f"{notebook.name} has no cell tagged 'parameters'; tag the cell that sets data_dir and "
            "output_dir (JupyterLab: property inspector > Cell Tags)")
    src = cells[0].source
    try:
        ast.parse(src)
    except SyntaxError as exc:
        raise NotebookError(f"{notebook.name}: the parameters cell is not valid Python: {exc}") from exc
    # our own reading of the cell (papermill's line regex drops any line whose comment holds "/" or
    # ">=", and with it the parameter): each top-level `name = value  # help`; the literal types are ours
    spec: dict[str, Param] = {}
    for name, text, help_ in _assignments(src):
        try:
            default = ast.literal_eval(text)
            kind = type(default)
            if kind is tuple:
                default, kind = list(default), list
            if kind not in (str, int, float, bool, type(None), list, dict):
                kind = _ANY
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            default, kind = text, _ANY
        spec[name] = Param(name, default, kind, help_)
    return spec


def _assignments(src: str) -> list[tuple[str, str, str]]:
    """``(name, value source, trailing comment)`` of each top-level ``name = value`` of ``src``."""
    import io
    import tokenize

    comments: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(src).readline):
            if tok.type == tokenize.COMMENT:
                comments[tok.start[0]] = tok.string.lstrip("#").strip()
    except (tokenize.TokenError, SyntaxError):
        pass
    out = []
    for node in ast.parse(src).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            target, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            target, value = node.target.id, node.value
        else:
            continue
        out.append((target, ast.get_source_segment(src, value) or "", comments.get(node.end_lineno, "")))
    return out


def parse_value(raw: str, param: Param | None = None) -> Any:
    """Turn a command-line string into a value of ``param``'s type (strings stay as written)."""
    if param is not None and param.kind is str:
        return raw
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    try:
        val = yaml_load(raw)
    except yaml.YAMLError:
        return raw
    # "a: b" is a YAML mapping, but on a command line it is almost surely meant as text
    return raw if isinstance(val, dict) and (param is None or param.kind is not dict) else val


def _matches(kind, value) -> tuple[bool, Any]:
    if kind is _ANY or kind is type(None):
        return True, value
    if kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return True, float(value)
        return False, value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if kind is list and isinstance(value, tuple):
        return True, list(value)
    return isinstance(value, kind), value


def check_parameters(notebook, parameters: dict[str, Any] | None, *, spec: dict[str, Param] | None = None,
                     from_strings: bool = False) -> dict[str, Any]:
    """Check ``parameters`` against the notebook's parameters cell and return them typed.

    Parameters
    ----------
    notebook : path
        The notebook (named in errors).
    parameters : dict
        Values to inject. With ``from_strings=True`` every value is a command-line string parsed
        with the type of its default (see :func:`parse_value`).

    Raises
    ------
    NotebookError
        Unknown name (with the closest known names), a value of the wrong type, a runner-owned
        name (``data_dir``/``output_dir``), or a parameters cell lacking ``data_dir``/``output_dir``.
    """
    notebook = Path(notebook)
    spec = parameter_spec(notebook) if spec is None else spec
    missing = [p for p in RUNNER_PARAMS if p not in spec]
    if missing:
        raise NotebookError(
            f"{notebook.name}: the parameters cell must define {' and '.join(missing)} "
            f"(e.g. `data_dir = None` and `output_dir = \".\"`); the runner injects them")
    out: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        if name in RUNNER_PARAMS:
            hint = "--data-dir" if name == "data_dir" else "--out"
            raise NotebookError(f"{notebook.name}: parameter {name!r} is set by the runner; use {hint} instead of -p")
        if name not in spec:
            close = difflib.get_close_matches(name, list(spec), n=3)
            known = ", ".join(p for p in spec if p not in RUNNER_PARAMS)
            raise NotebookError(
                f"{notebook.name}: unknown parameter {name!r}"
                + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")
                + f"; its parameters cell defines: {known or 'nothing besides data_dir/output_dir'}")
        out[name] = _check_value(notebook, name, value, spec[name], from_strings)
    _check_order(notebook, {**{k: p.default for k, p in spec.items()}, **out})
    return out


def _check_order(notebook: Path, values: dict[str, Any]) -> None:
    """``start`` before ``end`` (``end`` is exclusive, so equal dates select nothing)."""
    start, end = values.get("start"), values.get("end")
    if not (isinstance(start, str) and isinstance(end, str)):
        return
    try:
        s, e = parse_date(start, "start"), parse_date(end, "end")
    except ParseError:
        return  # a bad default is the notebook's problem, named when it runs
    if s >= e:
        raise NotebookError(f"{notebook.name}: start {start!r} is not before end {end!r} (end is exclusive); "
                            "swap them or widen the span")




def _check_value(notebook: Path, name: str, value: Any, p: Param, from_strings: bool) -> Any:
    """``value`` typed like ``p``'s default, or a :class:`NotebookError` naming the parameter."""
    if from_strings and isinstance(value, str):
        value = parse_value(value, p)
    ok, value = _matches(p.kind, value)
    if ok and p.kind is list and p.default and isinstance(value, list):
        kinds = {type(v) for v in p.default}
        if len(kinds) == 1:
            (ek,) = kinds
            checked = [_matches(ek, v) for v in value]
            ok = all(c[0] for c in checked)
            value = [c[1] for c in checked]
    if not ok:
        hint = {str: " (quote it to make it a string)", list: " (write a list: [a, b])"}.get(p.kind, "")
        raise NotebookError(
            f"{notebook.name}: parameter {name!r} expects {p.type_name} like its default "
            f"{p.default!r}, got {type(value).__name__} {value!r}{hint}")
    if name in DATE_PARAMS and p.kind is str and value is not None:
        try:
            parse_date(value, f"{notebook.name}: parameter {name!r}")
        except ParseError as exc:
            raise NotebookError(str(exc)) from None
    bad = range_error(name, value)
    if bad:
        raise NotebookError(f"{notebook.name}: {bad}")
    return value


def parse_assignments(items: Iterable[str] | None) -> dict[str, str]:
    """``["a=1", "b=x"]`` -> ``{"a": "1", "b": "x"}`` (:func:`research.parsing.parse_assignments`;
    values stay strings, typed later per notebook); a bad item is a :class:`NotebookError`."""
    try:
        return _parse_assignments(items, "-p")
    except ParseError as exc:
        raise NotebookError(str(exc)) from None


def check_span(notebook, parameters: dict[str, Any], data_dir, *, spec: dict[str, Param] | None = None) -> None:
    """Refuse a run whose ``symbol`` and ``[start, end)`` select no bars of the lake, before it starts.

    Reads only the bars table's log (symbols and time ranges of its files), not the data.

    Raises
    ------
    NotebookError
        The lake holds no bars (with how to fill it), none for ``symbol`` (naming the symbols it has),
        or none in the span (naming the span it has).
    """
    from research import paths, schema
    from research.lake.table import committed_log

    notebook = Path(notebook)
    spec = parameter_spec(notebook) if spec is None else spec
    values = {**{k: p.default for k, p in spec.items()}, **(parameters or {})}
    symbol = values.get("symbol")
    if not isinstance(symbol, str) or "start" not in spec:
        return  # a notebook without a symbol and span reads what it reads
    entries = committed_log(schema.get_table("bars"), data_dir).files
    lake = paths.lake_dir(data_dir)
    if not entries:
        raise NotebookError(f"{notebook.name}: the lake {lake} holds no bars; fill it (`research sample` writes the "
                            "simulated market, `research import --pack standard` the real pack) or use --data-dir")
    spans: dict[str, list[str]] = {}
    for e in entries:
        s = e.partition.get("symbol")
        if s is not None and e.min and e.max:
            lo, hi = spans.get(s, [e.min, e.max])
            spans[s] = [min(lo, e.min), max(hi, e.max)]
    if symbol not in spans:
        held = ", ".join(f"{s} ({lo[:10]} .. {hi[:10]})" for s, (lo, hi) in sorted(spans.items())) or "none"
        raise NotebookError(f"{notebook.name}: the lake {lake} holds no bars for symbol {symbol!r}; "
                            f"it holds {held}")
    lo, hi = spans[symbol]
    start, end = values.get("start"), values.get("end")
    s = parse_date(start, "start").isoformat() if isinstance(start, str) else None
    e = parse_date(end, "end").isoformat() if isinstance(end, str) else None
    if (e is not None and e <= lo[:10]) or (s is not None and s > hi[:10]):
        raise NotebookError(f"{notebook.name}: start={start!r}, end={end!r} (exclusive) selects no {symbol} bars: the "
                            f"lake {lake} holds {symbol} from {lo[:10]} to {hi[:10]}; choose a span inside it")
