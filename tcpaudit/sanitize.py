"""Neutralise text a remote host or a user controls before a terminal, XML or SARIF sees it.

Control characters (C0, DEL, C1), ANSI escape sequences, Unicode line/paragraph separators, bidi and
other invisible format controls, and the characters XML cannot hold (surrogates, U+FFFE/U+FFFF) are
replaced by visible `\\xNN` / `\\uNNNN` / `\\UNNNNNNNN` escapes, so a hostile hostname cannot move the
cursor, set the window title, rewrite or reorder a table row, hide text, or produce invalid XML. Only
the introducer is escaped: `ESC [ 2 J` becomes the inert, readable `\\x1b[2J`.
"""

from __future__ import annotations

import re

# Invisible or layout-changing characters beyond C0/DEL/C1: Arabic letter mark, zero-width and bidi marks,
# line/paragraph separators, bidi embeddings/overrides, word joiner and invisible operators, bidi isolates,
# deprecated format controls, BOM, interlinear annotations, the XML-invalid surrogates and non-characters,
# and the invisible tag characters (used to smuggle text past readers).
_FORMAT = (
    "\u061c\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\ud800-\udfff\ufffe\uffff"
    "\U000e0000-\U000e007f"
)
_UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{_FORMAT}]")  # keeps tab and newline
_UNSAFE_WITH_NL = re.compile(f"[\x00-\x1f\x7f-\x9f{_FORMAT}]")


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    if c < 0x100:
        return f"\\x{c:02x}"
    return f"\\u{c:04x}" if c <= 0xFFFF else f"\\U{c:08x}"


def clean_text(value: object, limit: int | None = None, *, keep_newlines: bool = False) -> str:
    """Printable form of untrusted text; `limit` truncates (with an ellipsis) after escaping."""
    text = value if isinstance(value, str) else str(value)
    text = (_UNSAFE if keep_newlines else _UNSAFE_WITH_NL).sub(_escape, text)
    if limit is not None and len(text) > limit:
        text = text[: max(0, limit - 1)] + "…"
    return text


def clean_tree(obj: object) -> object:
    """clean_text applied to every string in a JSON-like tree (dict keys too)."""
    if isinstance(obj, str):
        return clean_text(obj, keep_newlines=True)
    if isinstance(obj, dict):
        return {clean_text(k): clean_tree(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_tree(v) for v in obj]
    return obj
