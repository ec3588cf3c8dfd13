"""Would the kernel accept this assignment? Shared by the effective-config computation and SYS001/SYS002."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any, Literal

from .model import Assignment

# Formats where the whole rest of the line is the value, so `key = 1 # note` writes "1 # note".
COMMENT_IS_VALUE = frozenset({"sysctl.conf", "sysctl -w"})
_COMMENT = re.compile(r"(?:^|\s)[#;]")
_GLOB = re.compile(r"[*?\[]")
_NUMERIC = re.compile(r"^-?\d+(?:\s+-?\d+)*$")

# Integer sysctls are C ints written through proc_dointvec and its _minmax/u8 variants. Since Linux 4.1
# do_proc_dointvec_conv() (kernel/sysctl.c) refuses a value above INT_MAX, or below INT_MIN, with EINVAL:
#     if (*negp) { if (*lvalp > (unsigned long) INT_MAX + 1) return -EINVAL; ... }
#     else { if (*lvalp > (unsigned long) INT_MAX) return -EINVAL; ... }
# (read in torvalds/linux kernel/sysctl.c @8a8168e34340; added by 230633d109e3 "kernel/sysctl.c: detect
# overflows when converting to int", in the v4.1 merge window). Before it the 2.6.24-era copy (@0008bf54408d)
# stores the value truncated to 32 bits without an error, so older kernels are not judged here.
# proc_dointvec_jiffies keys ("jiffies-as-seconds") are left out: they refuse anything above INT_MAX / HZ,
# which depends on the kernel's HZ, and kernels before an unidentified change checked LONG_MAX / HZ instead.
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
INT_RANGE_SINCE = (4, 1, 0)


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


# Misspelled keys: only in the trees the knowledge base covers, and only as one slip of the hand away from a
# key it knows. Real neighbours differ in a whole token or its first letter (tcp_fack/tcp_sack, sctp_/tcp_,
# udp_mem/tcp_mem, nf_conntrack_acct/_count), in a digit (tcp_retries1/2) or by more than two characters
# (nf_conntrack_tcp_timeout_close/_close_wait); tests/test_lint_parsers.py checks that no key of real
# `sysctl -a` captures (3.10, 4.14, 4.18) and of the test host's /proc/sys/net is ever taken for a typo.
TYPO_TREES = ("net.ipv4.", "net.ipv6.", "net.core.", "net.netfilter.")
_TYPO_CUTOFF = 0.8  # difflib ratio to consider a candidate at all; the slip test below decides


def _known_leaves(kdb: Any, parent: str) -> list[str]:
    names = set(getattr(kdb, "sysctls", {}) or {}) | {
        a for f in (getattr(kdb, "sysctls", {}) or {}).values() for a in getattr(f, "aliases", [])
    }
    return sorted(n.rpartition(".")[2] for n in names if n.rpartition(".")[0] == parent)


def _one_slip(typed: str, known: str) -> bool:
    """`typed` is `known` with one or two characters inserted, dropped, changed or swapped, none of them a digit
    and none at the start of a `_`-separated token (where real sysctl names differ from each other)."""
    ops = [op for op in difflib.SequenceMatcher(None, typed, known, autojunk=False).get_opcodes() if op[0] != "equal"]
    changed = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in ops)
    if not ops or changed > (1 if len(known) < 8 else 2):
        return False
    for _, i1, i2, j1, j2 in ops:
        if any(c.isdigit() for c in typed[i1:i2] + known[j1:j2]):
            return False
        if i1 == 0 or j1 == 0 or typed[i1 - 1] == "_" or known[j1 - 1] == "_":
            return False
    return True


def likely_misspelling(kdb: Any, key: str) -> str | None:
    """The known key that `key` is most likely a misspelling of, or None.

    Only for keys under net.ipv4/ipv6/core/netfilter that the knowledge base does not know, compared with the
    known keys of the same directory (`-` for `_` and upper case count as slips too)."""
    if kdb is None or not key.startswith(TYPO_TREES) or _GLOB.search(key) or fact_for(kdb, key) is not None:
        return None
    parent, _, leaf = key.rpartition(".")
    leaves = _known_leaves(kdb, parent)
    typed = leaf.replace("-", "_").lower()
    if typed != leaf and typed in leaves:
        return f"{parent}.{typed}"
    for candidate in difflib.get_close_matches(typed, leaves, n=3, cutoff=_TYPO_CUTOFF):
        if _one_slip(typed, candidate):
            return f"{parent}.{candidate}"
    return None


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


def _outside_int(fact: Any, value: str, release: Any) -> str | None:
    """Why an integer sysctl's value cannot be stored in a C int on `release` (None: assume a current kernel)."""
    if fact.type not in ("int", "bool") or fact.unit == "jiffies-as-seconds":
        return None
    if release is not None and tuple(release.version) < INT_RANGE_SINCE:
        return None
    try:
        n = int(value, 10)
    except ValueError:
        return None
    if INT_MIN <= n <= INT_MAX:
        return None
    return f"{fact.name}: {n} is outside the range of the kernel's int, {INT_MIN}..{INT_MAX}"


def check_value(a: Assignment, kdb: Any, release: Any = None) -> ValueCheck:
    """Judge the value exactly as it reaches the kernel (after the parser's own processing).

    `release` None: a current kernel (what lint assumes without --kernel)."""
    if a.value is None or a.templated:
        return ValueCheck("unknown", "templated" if a.templated else "")
    value = a.value.strip()
    fact = fact_for(kdb, a.key)
    comment = None
    if a.syntax in COMMENT_IS_VALUE:
        m = _COMMENT.search(value)
        if m:
            comment = value[m.start() :].strip()
    quoted = len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'" and a.syntax in COMMENT_IS_VALUE
    if fact is not None:
        reason = fact.validate_value(value, release) or _outside_int(fact, value, release)
        if reason is None:
            return ValueCheck("ok", comment=comment, quoted=quoted)
        return ValueCheck("invalid", reason, comment=comment, quoted=quoted)
    # Unknown key: only the traps that are wrong for any numeric sysctl.
    if comment is not None:
        before = value[: len(value) - len(comment)].strip()
        if _NUMERIC.match(before):
            return ValueCheck(
                "invalid", f"{a.key}: {value[:60]!r} is not a number: the comment is part of the value", comment=comment
            )
    if quoted and _NUMERIC.match(value[1:-1].strip()):
        return ValueCheck(
            "invalid", f"{a.key}: the quotes are written as part of the value {value[:40]!r}", quoted=True
        )
    return ValueCheck("unknown")


def fold(value: str) -> str:
    """The form `sysctl -a` shows for numeric vectors: runs of blanks become one space."""
    v = value.strip()
    return " ".join(v.split()) if _NUMERIC.match(v) else v
