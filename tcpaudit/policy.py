"""Declared policy: the sysctl values a fleet standardised on, and how a value is compared the way the kernel reads it.

In `.tcpaudit.toml` (or a file given with `--policy FILE`, holding the same table at top level or under `[policy]`):

    [policy]
    reason = "fleet standard, ticket NET-123"   # default reason of the entries below
    severity = "medium"                          # default severity (medium when not given)
    "net.ipv4.tcp_keepalive_time" = 120                          # exact value
    "net.netfilter.nf_conntrack_max" = ">= 262144"               # a bound: >=, <=, >, <, ==, !=
    "net.ipv4.tcp_fin_timeout" = "15..60"                        # an inclusive range
    "net.ipv4.ip_local_port_range" = ["<= 10240", ">= 60999"]    # one bound per element of a vector ("*": any)
    "net.ipv4.tcp_rmem" = "4096 131072 6291456"                  # an exact vector (blanks do not matter)
    "net.ipv4.tcp_tw_reuse" = { expect = 1, reason = "...", severity = "high", scope = "all" }

    [policy.group.db]                   # an inventory group (`tcpaudit fleet`): adds to / overrides the above
    "net.ipv4.tcp_keepalive_time" = { expect = 60, reason = "the DB proxy drops idle flows after 90 s" }

`scope` is where an entry applies: "host" (default: the host's own network namespace and its boot config), "namespaces"
(the other network namespaces of `--all-netns` and pod/compose manifests) or "all".

Everything wrong in a policy is a `PolicyError` with one line (exit 2): an unknown key (not fully qualified, or a
misspelling of a key the knowledge base knows), a malformed bound, a value or bound the kernel would refuse (outside
the key's range in kernel_db/sysctls.toml, or a vector of the wrong length), an entry without a reason, and - in
`tcpaudit fleet` - a group that matches no inventory host. A key that is well formed but absent on a given host's
kernel is reported per target by POL001 (the kernel is known only once the host has been read).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._toml import tomllib
from .model import Severity
from .sanitize import clean_text
from .validation import message as validation_message

Scope = Literal["host", "namespaces", "all"]
_KEY_RE = re.compile(r"^(abi|crypto|debug|dev|fs|kernel|net|sunrpc|user|vm)(\.[A-Za-z0-9_:@+-]+)+$")
_BOUND_RE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*(\S.*?)\s*$")
_RANGE_RE = re.compile(r"^\s*(-?\w+)\s*\.\.\s*(-?\w+)\s*$")
_OPS: dict[str, Callable[[int, int], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_RESERVED = {"reason", "severity", "scope", "group"}


class PolicyError(ValueError):
    """A policy that cannot be used; the message is one line naming the file and the entry."""


def kernel_int(text: str) -> int | None:
    """An integer as the kernel parses a sysctl write, or None if it would refuse it.

    proc_get_long() in kernel/sysctl.c reads numbers with simple_strtoul(p, &p, 0) (strtoul_lenient(..., 0, ...)
    in later kernels): base 0, so a leading 0 is octal and 0x is hex. Checked on a 6.18 kernel in a network
    namespace: writing "0120" to tcp_keepalive_time reads back 80, "0x78" reads back 120, "120abc" is refused.
    """
    s = text.strip()
    neg = s.startswith("-")
    if neg:
        s = s[1:]
    if not s or not s[0].isdigit():
        return None
    try:
        if s[:2].lower() == "0x":
            n = int(s[2:], 16)
        elif len(s) > 1 and s[0] == "0":
            n = int(s[1:], 8)
        else:
            n = int(s, 10)
    except ValueError:
        return None
    return -n if neg else n


def kernel_ints(text: str) -> list[int] | None:
    """A whitespace-separated vector (blanks and tabs as the kernel skips them), or None."""
    parts = text.split()
    if not parts:
        return None
    out = []
    for p in parts:
        n = kernel_int(p)
        if n is None:
            return None
        out.append(n)
    return out


def same_value(a: str, b: str) -> bool:
    """Whether two sysctl values are the same setting as the kernel stores it: numbers compared as numbers (any
    blanks between vector elements, leading zeros read as the kernel reads them), anything else blank-folded."""
    ia, ib = kernel_ints(a), kernel_ints(b)
    if ia is not None and ib is not None:
        return ia == ib
    return " ".join(a.split()) == " ".join(b.split())


class Bound(BaseModel):
    """One comparison: `op` against `value` (an integer), or `any`; `text` is a whole-value string match."""

    model_config = ConfigDict(frozen=True)
    op: str
    value: int | None = None
    text: str | None = None

    def holds(self, actual: int) -> bool:
        if self.op == "any":
            return True
        return _OPS[self.op](actual, self.value)  # type: ignore[arg-type]

    def show(self) -> str:
        if self.op == "any":
            return "*"
        if self.op == "range":  # pragma: no cover - ranges are two bounds
            return ""
        return f"{self.op} {self.value}"

    def satisfying(self, actual: int | None) -> int | None:
        """A value that meets the bound, nearest to `actual` (for the fix)."""
        if self.op == "any":
            return actual
        v = self.value
        assert v is not None
        if actual is not None and self.holds(actual):
            return actual
        return {">=": v, "<=": v, "==": v, ">": v + 1, "<": v - 1, "!=": None}[self.op]


def _number(text: str, what: str) -> int:
    n = kernel_int(text)
    if n is None:
        raise ValueError(f"malformed bound {clean_text(what, 60)!r}: {clean_text(text, 40)!r} is not an integer")
    return n


def _element(raw: int | str) -> list[Bound]:
    """One element: an integer, `OP N`, `A..B`, or `*`."""
    if isinstance(raw, bool):
        raise ValueError(f"{raw!r} is not a sysctl value (write 0 or 1)")
    if isinstance(raw, int):
        return [Bound(op="==", value=raw)]
    s = str(raw).strip()
    if s == "*":
        return [Bound(op="any")]
    m = _RANGE_RE.match(s)
    if m:
        lo, hi = _number(m.group(1), s), _number(m.group(2), s)
        if lo > hi:
            raise ValueError(f"malformed bound {clean_text(s, 60)!r}: the range is empty ({lo} > {hi})")
        return [Bound(op=">=", value=lo), Bound(op="<=", value=hi)]
    m = _BOUND_RE.match(s)
    if m:
        return [Bound(op=m.group(1), value=_number(m.group(2), s))]
    if s[:1] in "<>=!" or ".." in s:
        raise ValueError(f"malformed bound {clean_text(s, 60)!r} (write e.g. '>= 262144', '<= 30' or '15..60')")
    n = kernel_int(s)
    if n is None:
        raise ValueError(f"malformed bound {clean_text(s, 60)!r}: not an integer, a bound or a range")
    return [Bound(op="==", value=n)]


class Expectation(BaseModel):
    """What a policy entry accepts: per element of the value, a list of bounds that must all hold; or a string."""

    model_config = ConfigDict(frozen=True)
    elements: list[list[Bound]] | None = None
    text: str | None = None
    declared: str = Field(description="the declaration as written, for reports")

    @classmethod
    def parse(cls, raw: Any) -> Expectation:
        if isinstance(raw, list):
            if not raw:
                raise ValueError("an empty list declares nothing")
            return cls(elements=[_element(x) for x in raw], declared=" ".join(_show_raw(x) for x in raw))
        if isinstance(raw, (int, bool)):
            return cls(elements=[_element(raw)], declared=str(raw))
        if not isinstance(raw, str):
            raise ValueError(f"expect must be a number, a string or a list, not {type(raw).__name__}")
        s = raw.strip()
        if not s:
            raise ValueError("an empty expect declares nothing")
        ints = kernel_ints(s)
        if ints is not None and len(ints) > 1:  # "32768 60999": an exact vector
            return cls(elements=[[Bound(op="==", value=n)] for n in ints], declared=s)
        if ints is not None or s[:1] in "<>=!*" or _RANGE_RE.match(s) or ".." in s:
            return cls(elements=[_element(s)], declared=s)
        return cls(text=" ".join(s.split()), declared=s)

    def check(self, actual: str) -> bool:
        if self.text is not None:
            return " ".join(actual.split()) == self.text
        ints = kernel_ints(actual)
        assert self.elements is not None
        if ints is None or len(ints) != len(self.elements):
            return False
        return all(b.holds(n) for n, bounds in zip(ints, self.elements, strict=True) for b in bounds)

    def satisfying(self, actual: str | None) -> str | None:
        """A value that meets the declaration, as close to `actual` as the bounds allow (None: no single answer)."""
        if self.text is not None:
            return self.text
        assert self.elements is not None
        ints = kernel_ints(actual or "") or []
        out = []
        for i, bounds in enumerate(self.elements):
            cur: int | None = ints[i] if i < len(ints) and len(ints) == len(self.elements) else None
            for b in bounds:
                cur = b.satisfying(cur)
                if cur is None:
                    return None
            out.append(cur)
        return " ".join(str(n) for n in out)


def _show_raw(x: Any) -> str:
    return str(x) if not isinstance(x, str) else f"[{x.strip()}]"


class PolicyEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str
    expect: Expectation
    reason: str = Field(min_length=3)
    severity: Severity = Severity.medium
    scope: Scope = "host"
    group: str | None = None

    @field_validator("expect", mode="before")
    @classmethod
    def _parse_expect(cls, v: Any) -> Any:
        return v if isinstance(v, Expectation) else Expectation.parse(v)

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a policy entry needs a reason")
        return v.strip()

    def applies(self, scope: str) -> bool:
        return self.scope == "all" or self.scope == scope


class Policy(BaseModel):
    entries: list[PolicyEntry] = Field(default_factory=list)
    source: str = ""

    def groups(self) -> set[str]:
        return {e.group for e in self.entries if e.group is not None}

    def for_target(self, group: str | None, scope: str) -> dict[str, PolicyEntry]:
        """The entries that judge a target: the fleet-wide ones, overridden key by key by its group's."""
        out: dict[str, PolicyEntry] = {}
        for e in self.entries:
            if e.group is None and e.applies(scope):
                out[e.key] = e
        for e in self.entries:
            if e.group is not None and e.group == group and e.applies(scope):
                out[e.key] = e
        return out


# ---- loading ------------------------------------------------------------------------------------------
def _entries_of(table: dict[str, Any], where: str, group: str | None, defaults: dict[str, Any]) -> list[PolicyEntry]:
    own: dict[str, Any] = {k: table[k] for k in ("reason", "severity", "scope") if k in table}
    d: dict[str, Any] = {**defaults, **own}
    out = []
    for key, body in table.items():
        if key in _RESERVED:
            continue
        at = f"{where}: {clean_text(key, 80)!r}"
        if not isinstance(key, str) or not _KEY_RE.match(key.strip()):
            raise PolicyError(
                f'{at}: not a sysctl name (write it fully qualified and quoted: "net.ipv4.tcp_keepalive_time" = 120)'
            )
        spec = dict(body) if isinstance(body, dict) else {"expect": body}
        if "expect" not in spec:
            raise PolicyError(f"{at}: needs `expect` (a value, a bound like '>= 262144', a range or a list)")
        spec = {**{k: v for k, v in d.items() if k in ("reason", "severity", "scope")}, **spec}
        if "reason" not in spec:
            raise PolicyError(f'{at}: needs a reason (reason = "..." on the entry or for the whole [policy] table)')
        try:
            out.append(PolicyEntry.model_validate({"key": key.strip(), "group": group, **spec}))
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(x) for x in err["loc"] if x not in ("key",))
            msg = validation_message(err)
            raise PolicyError(f"{at}: {clean_text(field, 40) + ': ' if field else ''}{clean_text(msg, 300)}") from None
    return out


def parse_policy(data: Any, where: str, kdb: Any = None) -> Policy:
    """A policy from the `[policy]` table of a TOML document; `kdb` checks keys and values (None: shape only)."""
    if not isinstance(data, dict):
        raise PolicyError(f"{where}: [policy] must be a table")
    defaults = {k: data[k] for k in ("reason", "severity", "scope") if k in data}
    entries = _entries_of(data, f"{where}: [policy]", None, defaults)
    groups = data.get("group", {})
    if not isinstance(groups, dict):
        raise PolicyError(f"{where}: [policy.group] must be a table of inventory groups")
    for name, table in groups.items():
        if not isinstance(table, dict):
            raise PolicyError(f"{where}: [policy.group.{clean_text(name, 60)}] must be a table")
        entries += _entries_of(table, f"{where}: [policy.group.{clean_text(name, 60)}]", str(name), defaults)
    policy = Policy(entries=entries, source=where)
    if kdb is not None:
        check_against_kb(policy, kdb)
    return policy


def load_policy_file(path: str | Path, kdb: Any = None) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{p}: policy file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{p}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise PolicyError(f"{p}: not valid TOML: {clean_text(exc, 200)}") from None
    body = data["policy"] if set(data) == {"policy"} else data
    return parse_policy(body, str(p), kdb)


def _entry_where(policy: Policy, e: PolicyEntry) -> str:
    table = f"[policy.group.{e.group}]" if e.group else "[policy]"
    return f"{policy.source}: {table}: {e.key!r}"


def check_against_kb(policy: Policy, kdb: Any, release: Any = None) -> None:
    """Refuse entries that can never match: misspelled keys, keys absent on `release` (when given), and values or
    bounds outside what the kernel accepts for the key (kernel_db/sysctls.toml)."""
    from .lint.values import lifetime, likely_misspelling

    for e in policy.entries:
        at = _entry_where(policy, e)
        fact = kdb.sysctl(e.key)
        if fact is None:
            typo = likely_misspelling(kdb, e.key)
            if typo:
                raise PolicyError(f"{at}: unknown sysctl; did you mean {typo!r}?")
            continue  # not in the knowledge base: judged against each host's own sysctl tree
        if release is not None and fact.present_in(release) is False:
            life = lifetime(kdb, release, e.key)
            raise PolicyError(
                f"{at}: does not exist on kernel {release.raw}"
                + (f" ({life})" if life else "")
                + "; it can never match"
            )
        problem = _refused(fact, e.expect)
        if problem:
            raise PolicyError(f"{at}: {problem}")


def _refused(fact: Any, expect: Expectation) -> str | None:
    if expect.elements is None:
        return None if fact.type == "string" else f"{expect.declared!r} is not a number, and {fact.name} is numeric"
    n = len(expect.elements)
    if fact.type in ("bool", "int") and n != 1:
        return f"{fact.name} holds one number; the policy gives {n}"
    if fact.type == "port_range" and n not in (1, 2):
        return f"{fact.name} is 'LOW HIGH'; the policy gives {n} elements"
    lo = fact.min if fact.min is not None else (1 if fact.type == "port_range" else None)
    hi = fact.max if fact.max is not None else (65535 if fact.type == "port_range" else None)
    if fact.type in ("int", "bool") and fact.unit != "jiffies-as-seconds":
        lo = lo if lo is not None else -(2**31)
        hi = hi if hi is not None else 2**31 - 1
    for bounds in expect.elements:
        feasible_lo, feasible_hi = lo, hi
        for b in bounds:
            if b.op == "any":
                continue
            v = b.value
            assert v is not None
            if b.op == "==":
                if (lo is not None and v < lo) or (hi is not None and v > hi):
                    return f"the kernel refuses {v} for {fact.name} (accepted: {_range_text(lo, hi)})"
                feasible_lo = feasible_hi = v
            elif b.op in (">=", ">"):
                need = v if b.op == ">=" else v + 1
                feasible_lo = need if feasible_lo is None else max(feasible_lo, need)
            elif b.op in ("<=", "<"):
                need = v if b.op == "<=" else v - 1
                feasible_hi = need if feasible_hi is None else min(feasible_hi, need)
        if feasible_lo is not None and feasible_hi is not None and feasible_lo > feasible_hi:
            shown = " and ".join(b.show() for b in bounds)
            return f"no value the kernel accepts for {fact.name} ({_range_text(lo, hi)}) meets {shown}"
    return None


def _range_text(lo: int | None, hi: int | None) -> str:
    return f"{lo if lo is not None else '-inf'}..{hi if hi is not None else 'inf'}"


def check_groups(policy: Policy, known: Iterable[str]) -> None:
    """`tcpaudit fleet`: a group entry for a group no inventory host is in would silently never apply."""
    have = set(known)
    for g in sorted(policy.groups()):
        if g not in have:
            shown = ", ".join(sorted(have)[:10]) or "none"
            raise PolicyError(
                f"{policy.source}: [policy.group.{clean_text(g, 60)}] matches no host of the inventory "
                f"(groups: {shown})"
            )


def policy_summary(targets: list[Any], groups: dict[str, str], rule: str = "POL001") -> dict[str, Any]:
    """`hosts deviating: 3 of 40`, overall and per inventory group (audited hosts only)."""
    from .model import TargetStatus

    audited = [t for t in targets if t.status is TargetStatus.ok]
    deviating = sorted(t.name for t in audited if any(f.rule == rule and f.suppressed is None for f in t.findings))
    by_group: dict[str, dict[str, int]] = {}
    for t in audited:
        g = by_group.setdefault(groups.get(t.name, "all"), {"deviating": 0, "of": 0})
        g["of"] += 1
        g["deviating"] += t.name in deviating
    return {"hosts_deviating": len(deviating), "of": len(audited), "hosts": deviating, "by_group": by_group}


def summary_line(summary: dict[str, Any]) -> str:
    groups = summary.get("by_group", {})
    per = ", ".join(f"{clean_text(g, 30)}: {v['deviating']} of {v['of']}" for g, v in sorted(groups.items()))
    return f"Policy: hosts deviating: {summary['hosts_deviating']} of {summary['of']}" + (
        f" ({per})" if len(groups) > 1 else ""
    )
