"""Importing jsonschema without the optional grammar it would compile at import.

jsonschema's format checker compiles an Earley grammar for the "iri" formats when the optional
``rfc3987_syntax`` is installed (it comes with JupyterLab): about a second in every process that
imports nbformat, papermill or altair, for checks that notebooks and Vega-Lite specs never use.
Call :func:`jsonschema_without_iri` before the first of those imports.
"""
from __future__ import annotations

import sys

__all__ = ["jsonschema_without_iri"]


def jsonschema_without_iri() -> None:
    """Import jsonschema, hiding ``rfc3987_syntax`` while it loads (a no-op once either is loaded)."""
    if "jsonschema" in sys.modules or "rfc3987_syntax" in sys.modules:
        return
    sys.modules["rfc3987_syntax"] = None  # makes `import rfc3987_syntax` raise ImportError
    try:
        import jsonschema  # noqa: F401
    finally:
        del sys.modules["rfc3987_syntax"]
