"""Would the kernel accept this assignment? Shared by the effective-config computation and SYS001/SYS002."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from .model import Assignment

# Formats where the whole rest of the line is the value, so `key = 1 # note` writes "1 # note".
COMMENT_IS_VALUE = frozenset({"sysctl.conf", "sysctl -w"})
_COMMENT = re.compile(r"(?:^|\s)[#;]")
_GLOB = re.compile(r"[*?\[]")
_NUMERIC = re.compile(r"^-?\d+(?:\s+-?\d+)*$")


@dataclass(frozen=True)
class ValueCheck:
    status: Literal["ok", "invalid", "unknown"]
    reason: str = ""
    comment: str | None = None  # the trailing-comment text that became part of the value
    quoted: bool = False


class _Cache:
    """Lookups per knowledge base: a `sysctl -a` capture asks for the same 1000 keys from four places."""

    kdb: Any = None
    facts: dict[str, Any] = {}
    presence: dict[tuple[str, str], bool | None] = {}


def fact_for(kdb: Any, key: str) -> Any:
    if kdb is None or _GLOB.search(key):
        return None
    if _Cache.kdb is not kdb:
        _Cache.kdb, _Cache.facts, _Cache.presence = kdb, {}, {}
    if key not in _Cache.facts:
        try:
            _Cache.facts[key] = kdb.sysctl(key)
        except Exception:  # noqa: BLE001 - a knowledge-base lookup never stops a lint
            _Cache.facts[key] = None
    return _Cache.facts[key]


def presence(kdb: Any, release: Any, key: str) -> bool | None:
    """True/False when the knowledge base knows whether `key` exists on `release`; None otherwise."""
    fact = fact_for(kdb, key)
    if fact is None or release is None:
        return None
    k = (release.raw, key)
    if k not in _Cache.presence:
        _Cache.presence[k] = fact.present_in(release)
    return _Cache.presence[k]


def lifetime(kdb: Any, release: Any, key: str) -> str:
    """'removed in 4.12' / 'added in 5.7' for a key absent on `release` (empty if unknown)."""
    fact = fact_for(kdb, key)
    if fact is None or release is None:
        return ""
    ranges = sorted(fact.exists, key=lambda r: _ver(r.since))
    if ranges and tuple(release.version) < _ver(ranges[0].since):
        return f"added in {ranges[0].since}"
    ended = [r for r in ranges if r.until is not None and tuple(release.version) >= _ver(r.until)]
    return f"removed in {ended[-1].until}" if ended else ""


def _ver(text: str) -> tuple[int, ...]:
    parts = tuple(int(p) for p in re.findall(r"\d+", text)[:3])
    return parts + (0,) * (3 - len(parts))


def check_value(a: Assignment, kdb: Any) -> ValueCheck:
    """Judge the value exactly as it reaches the kernel (after the parser's own processing)."""
    if a.value is None or a.templated:
        return ValueCheck("unknown", "templated" if a.templated else "")
    value = a.value.strip()
    fact = fact_for(kdb, a.key)
    comment = None
    if a.syntax in COMMENT_IS_VALUE:
        m = _COMMENT.search(value)
        if m:
            comment = value[m.start():].strip()
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" and a.syntax in COMMENT_IS_VALUE
    if fact is not None:
        reason = fact.validate_value(value)
        if reason is None:
            return ValueCheck("ok", comment=comment, quoted=quoted)
        return ValueCheck("invalid", reason, comment=comment, quoted=quoted)
    # Unknown key: only the traps that are wrong for any numeric sysctl.
    if comment is not None:
        before = value[: len(value) - len(comment)].strip()
        if _NUMERIC.match(before):
            return ValueCheck("invalid", f"{a.key}: {value[:60]!r} is not a number: the comment is part of the "
                              "value", comment=comment)
    if quoted and _NUMERIC.match(value[1:-1].strip()):
        return ValueCheck("invalid", f"{a.key}: the quotes are written as part of the value {value[:40]!r}",
                          quoted=True)
    return ValueCheck("unknown")


def fold(value: str) -> str:
    """The form `sysctl -a` shows for numeric vectors: runs of blanks become one space."""
    v = value.strip()
    return " ".join(v.split()) if _NUMERIC.match(v) else v
