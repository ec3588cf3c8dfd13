"""How human output meets the terminal: its width, whether to colour, and rich rendering to a string.

The CLI sets the user's choices (`--color`, `-q`, `--show-suppressed`) here once per run; reporters and the
`kernel`/`rules` tables read them. Everything renders to a string with an explicit width and colour decision,
never to rich's own idea of the environment, so the same inputs give the same text (golden tests).

Colour, in order: `--color always|never`; NO_COLOR (set and non-empty: never); FORCE_COLOR (set, not "0":
always); else only when stdout is a terminal. Width: $COLUMNS, else the terminal's width, else 80.
"""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

COLOR_MODES = ("auto", "always", "never")
_TRAILING = re.compile(r"[ ]+((?:\x1b\[[0-9;]*m)+)$")
DEFAULT_WIDTH = 80
MIN_WIDTH = 40

SEVERITY_STYLE = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}
OUTCOME_STYLE = {"pass": "green", "fail": "red", "unknown": "magenta", "error": "bold red", "not_applicable": "dim"}


@dataclass
class OutputChoices:
    color: str = "auto"
    quiet: bool = False
    show_suppressed: bool = False


_choices = OutputChoices()


def choices() -> OutputChoices:
    return _choices


def set_choices(**kw: Any) -> None:
    for k, v in kw.items():
        setattr(_choices, k, v)


def reset_choices() -> None:
    global _choices
    _choices = OutputChoices()


def use_color(stream: Any = None, mode: str | None = None, environ: dict[str, str] | None = None) -> bool:
    mode = mode or _choices.color
    env = os.environ if environ is None else environ
    if mode == "always":
        return True
    if mode == "never":
        return False
    if env.get("NO_COLOR", ""):
        return False
    force = env.get("FORCE_COLOR", "").strip().lower()
    if force and force not in ("0", "false", "no"):
        return True
    stream = sys.stdout if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def width(stream: Any = None, environ: dict[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    cols = env.get("COLUMNS", "").strip()
    if cols.isdigit() and int(cols) > 0:
        return max(MIN_WIDTH, int(cols))
    stream = sys.stdout if stream is None else stream
    try:
        return max(MIN_WIDTH, os.get_terminal_size(stream.fileno()).columns)
    except (AttributeError, OSError, ValueError):
        return DEFAULT_WIDTH


def console(w: int, color: bool):  # -> rich.console.Console
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=w,
        force_terminal=color,
        no_color=not color,
        color_system="standard" if color else None,
        highlight=False,
        emoji=False,
        markup=False,
        soft_wrap=False,
        legacy_windows=False,
        force_jupyter=False,
        force_interactive=False,
        _environ={},  # the width and colour decided above, not rich's reading of the environment
    )


def render(renderables: Iterable[Any], w: int, color: bool) -> str:
    """Print rich renderables (Text, Table, str lines) at width w; returns the text, each line <= w cells."""
    con = console(w, color)
    for r in renderables:
        con.print(r)
    out = con.file.getvalue()
    # no trailing blanks (rich pads cells), also when they sit before the closing escape codes
    return "\n".join(_TRAILING.sub(r"\1", line.rstrip()) for line in out.split("\n"))


def text(value: str, style: str | None = None, indent: int = 0):  # -> rich.text.Text / Padding
    """A plain string (already cleaned) as rich Text, never parsed as markup; indent wraps under itself."""
    from rich.padding import Padding
    from rich.text import Text

    t = Text(value, style=style or "", overflow="fold")
    return Padding(t, (0, 0, 0, indent)) if indent else t


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    no_wrap: Iterable[int] = (),
    ratios: Sequence[int | None] | None = None,
    styles: Sequence[str | None] | None = None,
    expand: bool = False,
):  # -> rich.table.Table
    """A borderless table whose cells wrap (fold long words) to fit the width it is printed at. With ratios and
    expand, the columns share the width in those proportions (rich applies ratios to expanded tables only)."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    keep = set(no_wrap)
    t = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=expand, header_style="bold")
    for i, h in enumerate(headers):
        t.add_column(
            h,
            no_wrap=i in keep,
            overflow="ellipsis" if i in keep else "fold",
            ratio=ratios[i] if ratios else None,
            style=(styles[i] if styles else None) or "",
        )
    for row in rows:
        t.add_row(*(c if isinstance(c, Text) else Text("" if c is None else str(c), overflow="fold") for c in row))
    return t


def plain_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], **kw: Any) -> str:
    """A table as text at the current width and colour (the `kernel` and `rules` commands)."""
    return render([table(headers, rows, **kw)], width(), use_color()) + "\n"
