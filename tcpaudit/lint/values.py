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
    # Numeric keys: the text after the number(s) that the kernel leaves unread (the value still applies)
    remainder: str | None = None
    applied: str | None = None  # the number(s) the kernel takes when there is a remainder
    strict_writes: bool = True  # the target kernel ignores a second write at a non-zero offset (4.5+)
    empty: bool = False


# What the kernel does with the text after the number(s) of an integer sysctl (kernel/sysctl.c,
# __do_proc_dointvec, read @8a8168e34340): each number is read with proc_get_long(), which refuses a
# number followed by anything but blank/tab/newline (so `300#c` is EINVAL); the loop stops once the key's
# vector is full (one int, or two for ip_local_port_range) and the rest is left unread: the write()
# returns the bytes consumed (`*lenp -= left`), the value is stored. A remainder that starts before the
# vector is full is read as the next number and fails (EINVAL; `20000 # c` for the port range).
# glibc's stdio (procps sysctl) and systemd's loop_write() then write the unread rest again, at a
# non-zero file position. Since f4aacea2f5d1 (v3.16) kernel.sysctl_writes_strict decides what that
# second write does; its default became SYSCTL_WRITES_STRICT (1, "writes to numeric sysctl entries must
# always be at file position 0", the write is ignored and reported as done) only in 41662f5cc553 (v4.5).
# Before 4.5 (default 0 = warn, and no such check before 3.16) the rest is parsed as a new value from
# scratch: not a number, so that second write fails with EINVAL after the first one stored the number:
# the value applies but procps prints `setting key "KEY": Invalid argument` (exit 1 from 4.0.0) and
# systemd-sysctl logs "Couldn't write ... Invalid argument" (the unit fails).
STRICT_WRITES_SINCE = (4, 5, 0)

# Text keys whose value must name something the kernel has (a congestion control, a qdisc): a trailing
# comment or quotes make the name unknown and the write fails with ENOENT (6.18: `reno # c`,
# tests/test_value_semantics.py); procps prints `setting key "KEY": No such file or directory`.
NAMED_TEXT = frozenset(
    {"net.ipv4.tcp_congestion_control", "net.ipv4.tcp_allowed_congestion_control", "net.core.default_qdisc"}
)
_BLANKS = " \t\n"


def _vector_len(fact: Any) -> int | None:
    """How many numbers the key holds: 1 for int/bool, 2 for the port range, the default's field count for
    other vectors (None: not known)."""
    if fact.type in ("int", "bool"):
        return 1
    if fact.type == "port_range":
        return 2
    if fact.type == "int_vector":
        counts = {len(d.value.split()) for d in getattr(fact, "defaults", []) if getattr(d, "value", None)}
        return counts.pop() if len(counts) == 1 else None
    return None


def kernel_numbers(text: str, slots: int | None) -> tuple[list[str], str, str | None]:
    """Read `text` the way __do_proc_dointvec does on a write: (numbers read, unread rest, error).

    `slots` is the length of the key's vector (None: read numbers while there are any)."""
    nums: list[str] = []
    p = text
    while slots is None or len(nums) < slots:
        p = p.lstrip(_BLANKS)
        if not p:
            break
        m = re.match(r"-?\d+", p)
        if m is None:
            if slots is None and nums:
                break
            if nums and slots:
                return nums, p, f"{p[:20]!r} stands where number {len(nums) + 1} of {slots} is expected"
            return nums, p, f"{p[:20]!r} is not a number"
        end = m.end()
        if end < len(p) and p[end] not in _BLANKS:
            return nums, p, f"{p[: end + 1][:20]!r}: a number must be followed by a blank or the end of the line"
        nums.append(m.group(0))
        p = p[end:]
    return nums, p.strip(), None


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


UNPRIVILEGED = "net.ipv4.ip_unprivileged_port_start"


def _below_unprivileged(
    kdb: Any, release: Any, key: str, value: str, earlier: dict[str, tuple[str, Any]] | None
) -> str | None:
    """ipv4_local_port_range() refuses a low end below ip_unprivileged_port_start (EINVAL), from 4548b683b781
    (v4.11): the value in effect when the line is written, else the kernel default (1024)."""
    if key != "net.ipv4.ip_local_port_range" or (
        release is not None and presence(kdb, release, UNPRIVILEGED) is not True
    ):
        return None
    fields = value.split()
    if not fields or not fields[0].isdigit():
        return None
    start: str | None
    if earlier and UNPRIVILEGED in earlier:
        start, where = earlier[UNPRIVILEGED][0], "as set earlier"
    else:
        fact = fact_for(kdb, UNPRIVILEGED)
        start = (fact.default_in(release) if release is not None else "1024") if fact is not None else None
        where = "its default"
        if start is None:
            return None
    if not start.strip().isdigit() or int(fields[0]) >= int(start):
        return None
    return (
        f"{key}: the low end {fields[0]} is below {UNPRIVILEGED} = {start.strip()} ({where}); the kernel refuses a "
        "local port range that overlaps the privileged ports (EINVAL, since 4.11)"
    )


def check_value(
    a: Assignment, kdb: Any, release: Any = None, earlier: dict[str, tuple[str, Any]] | None = None
) -> ValueCheck:
    """Judge the value exactly as it reaches the kernel (after the parser's own processing).

    `release` None: a current kernel (what lint assumes without --kernel). `earlier`: the values already in
    effect when this line is written (for checks against another key), else the kernel defaults."""
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
    strict = release is None or tuple(release.version) >= STRICT_WRITES_SINCE
    if fact is not None:
        if not value:
            reason = fact.validate_value(value, release)
            if reason is None:  # a string key: the empty string is stored
                return ValueCheck("ok", empty=True)
            return ValueCheck("invalid", reason, empty=True)
        slots = _vector_len(fact)
        if fact.type in ("int", "bool", "int_vector", "port_range"):
            nums, rest, err = kernel_numbers(value, slots)
            if rest and err is None and nums:
                applied = " ".join(nums)
                reason = (
                    fact.validate_value(applied, release)
                    or _outside_int(fact, applied, release)
                    or _below_unprivileged(kdb, release, a.key, applied, earlier)
                )
                if reason is None:
                    return ValueCheck(
                        "ok", comment=comment, quoted=quoted, remainder=rest, applied=applied, strict_writes=strict
                    )
                return ValueCheck("invalid", reason, comment=comment, quoted=quoted, remainder=rest)
            if err is not None and (comment is not None or quoted):
                return ValueCheck("invalid", f"{fact.name}: {err}", comment=comment, quoted=quoted)
        reason = (
            fact.validate_value(value, release)
            or _outside_int(fact, value, release)
            or _below_unprivileged(kdb, release, a.key, value, earlier)
        )
        if reason is None:
            return ValueCheck("ok", comment=comment, quoted=quoted)
        return ValueCheck("invalid", reason, comment=comment, quoted=quoted)
    if a.key in NAMED_TEXT and (comment is not None or quoted):
        return ValueCheck(
            "invalid",
            f"{a.key}: {value[:40]!r} names no algorithm the kernel has (ENOENT)",
            comment=comment,
            quoted=quoted,
        )
    # Unknown key: only the traps that are wrong for any numeric sysctl.
    if not value:
        return ValueCheck("unknown", empty=True)
    if quoted and _NUMERIC.match(value[1:-1].strip()):
        return ValueCheck(
            "invalid", f"{a.key}: the quotes are written as part of the value {value[:40]!r}", quoted=True
        )
    if comment is not None and _NUMERIC.match(value[: len(value) - len(comment)].strip()):
        return ValueCheck("unknown", comment=comment)  # `N # note`: applies if the key is an integer
    return ValueCheck("unknown")


def fold(value: str) -> str:
    """The form `sysctl -a` shows for numeric vectors: runs of blanks become one space."""
    v = value.strip()
    return " ".join(v.split()) if _NUMERIC.match(v) else v
