"""Neutralise text a remote host or a user controls before a terminal, XML or SARIF sees it.

Control characters (C0, DEL, C1), ANSI escape sequences and Unicode bidi/format
controls are replaced by visible `\\xNN` / `\\uNNNN` escapes, so a hostile hostname
cannot move the cursor, rewrite a table row, or produce invalid XML.
"""

from __future__ import annotations

import re

# C0 controls except tab/newline handled separately, DEL, C1; bidi overrides/isolates, zero-width, BOM,
# and the XML-invalid surrogates and non-characters.
_UNSAFE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff\ufffe\uffff]"
)
_UNSAFE_WITH_NL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff\ufffe\uffff]"
)


def _escape(m: re.Match[str]) -> str:
    c = ord(m.group(0))
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


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
