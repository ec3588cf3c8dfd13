"""Reporters: small modules that render a finished Report. They never decide severity or exit codes.

`render(report, fmt)` returns text; formats: table, concise, json, sarif, junit, markdown, html, prometheus.
The terminal formats (table, concise) also take width, color, show_suppressed and quiet.
"""

from __future__ import annotations

import importlib

from ..model import Report

FORMATS = ("table", "concise", "json", "sarif", "junit", "markdown", "html", "prometheus")
TERMINAL_FORMATS = ("table", "concise")  # human output: fitted to the terminal, coloured only on request


class UnknownFormatError(ValueError):
    pass


def render(report: Report, fmt: str, **kw: object) -> str:
    if fmt not in FORMATS:
        raise UnknownFormatError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
    module = importlib.import_module(f"{__name__}.{fmt}")
    return module.render(report, **kw)
