"""What a rule is: validated metadata, a pure check function, and small bases.

A rule sees only `Facts` (the Snapshot, the Context, the kernel knowledge base and,
for config targets, where each key was set). It does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field, field_validator

from ..context import Context
from ..kernel.db import KernelDB
from ..kernel.release import KernelRelease
from ..model import Finding, Location, Severity
from ..snapshot import Snapshot, parse_port_list

RULE_ID = re.compile(r"^(TCP|NAT|CT|PORT|SYS|NS|POL|CFG)\d{3}$")


class Reference(BaseModel):
    title: str
    url: str


class RuleMeta(BaseModel):
    id: str
    aliases: list[str] = Field(default_factory=list)
    title: str = Field(min_length=8)
    severity: Severity = Field(description="the severity in the worst common context; findings may lower or raise it")
    summary: str = Field(min_length=20)
    mechanism: list[str] = Field(min_length=1, description="why it fails, step by step")
    when_it_matters: str = Field(min_length=20)
    remediation: str = Field(min_length=20)
    references: list[Reference] = Field(min_length=1)
    keys: list[str] = Field(default_factory=list, description="sysctls the rule reads, fully qualified")
    applies_to: list[Literal["host", "config"]] = Field(
        default_factory=lambda: list[Literal["host", "config"]](["host", "config"])
    )
    headline: list[str] = Field(
        default_factory=list,
        description="the evidence fields the terminal table shows for a finding, in order (default: its plain "
        "facts); -v and the JSON report have every field",
    )

    @field_validator("id")
    @classmethod
    def _id_shape(cls, v: str) -> str:
        if not RULE_ID.match(v):
            raise ValueError(f"rule id {v!r} must look like TCP001, NAT001, CT001, PORT001, SYS001 or NS001")
        return v

    @property
    def group(self) -> str:
        return re.sub(r"\d+$", "", self.id)


@dataclass(frozen=True)
class Value:
    """A sysctl's effective value and where it came from."""

    name: str
    raw: str | None
    origin: Literal["host", "config", "default", "absent", "unknown"]
    location: Location | None = None
    captured: bool = False  # the "config" is a `sysctl -a` capture: the value was read, not configured

    @property
    def present(self) -> bool:
        return self.raw is not None

    @property
    def ints(self) -> list[int] | None:
        if self.raw is None:
            return None
        try:
            return [int(x) for x in self.raw.split()]
        except ValueError:
            return None

    @property
    def int(self) -> int | None:  # noqa: A003 - reads well at call sites: v.int
        ints = self.ints
        return ints[0] if ints is not None and len(ints) == 1 else None

    def where(self) -> str:
        """Where the value came from ('kernel default', 'set in file:line', 'on the host'), for a sentence that
        already shows the value; a missing value gets its whole description."""
        d, prefix = self.describe(), f"{self.name}={self.raw} ("
        return d[len(prefix) : -1] if d.startswith(prefix) and d.endswith(")") else d

    def describe(self) -> str:
        where = {
            "host": "on the host",
            "config": (
                f"{'captured value in' if self.captured else 'set in'} {self.location.file}:{self.location.line}"
                if self.location
                else ("captured value" if self.captured else "set in config")
            ),
            "default": "kernel default",
            "absent": "not present on this kernel",
            "unknown": "unknown",
        }[self.origin]
        return f"{self.name}={self.raw} ({where})" if self.raw is not None else f"{self.name} ({where})"


GLOBAL_SYSCTL_HIDDEN = (
    "a global sysctl, shown only in the host's initial network namespace: this snapshot "
    "comes from a container or another network namespace"
)


@dataclass
class Facts:
    """Everything a rule may look at for one target."""

    snapshot: Snapshot
    context: Context
    kind: Literal["host", "config"] = "host"
    kdb: KernelDB | None = None  # None if the knowledge base failed to load
    release: KernelRelease | None = None  # None if the kernel release is unparsable
    configured: dict[str, tuple[str, Location]] = field(default_factory=dict)
    policy: Any = None  # tcpaudit.policy.Policy (--policy / [policy]), or None
    group: str | None = None  # the target's inventory group (`tcpaudit fleet`), for group policy entries
    captured: bool = False  # a config target that is a `sysctl -a` capture (values read from a kernel)

    def value(self, name: str) -> Value:
        if self.kind == "config":
            if name in self.configured:
                raw, loc = self.configured[name]
                return Value(name, raw, "config", loc, captured=self.captured)
            return self._from_kdb(name)
        present = self.snapshot.has_sysctl(name)
        if present:
            return Value(name, self.snapshot.sysctls[name], "host")
        if present is False:
            return Value(name, None, "absent")
        # A host is its own evidence: a tree that was not read is unknown there, not the kernel's default
        # (a host without /proc/sys/net, e.g. not Linux, must not be judged on textbook defaults).
        return Value(name, None, "unknown")

    def _from_kdb(self, name: str) -> Value:
        if self.kdb is None or self.release is None:
            return Value(name, None, "unknown")
        origin, raw = self.kdb.kernel_value(name, self.release)
        return Value(name, raw, origin)

    def hidden_by_netns(self, name: str) -> bool:
        """`name` exists on this kernel but is a global sysctl: registered for the initial network namespace
        only (ipv4_table, not ipv4_net_table: sysctl_ipv4_init in net/ipv4/sysctl_net_ipv4.c), so a host
        snapshot taken in another namespace cannot show it."""
        fact = self.kdb.sysctls.get(name) if self.kdb is not None else None
        return (
            self.kind == "host"
            and fact is not None
            and self.release is not None
            and fact.per_netns_in(self.release) is False
            and bool(fact.present_in(self.release))
        )

    def absent_reason(self, name: str) -> str:
        """Why `name` is absent here: not on this kernel, or not visible from this network namespace."""
        if self.hidden_by_netns(name):
            return f"{name} is {GLOBAL_SYSCTL_HIDDEN} (audit the host itself)"
        return f"{name} does not exist on this kernel"

    def usable_ephemeral_ports(self) -> tuple[int, int, int] | None:
        """(low, high, usable): ip_local_port_range minus the ip_local_reserved_ports inside it; None if unknown."""
        rng = self.value("net.ipv4.ip_local_port_range").ints
        if not rng or len(rng) != 2 or rng[1] < rng[0]:
            return None
        lo, hi = rng
        reserved = parse_port_list(self.value("net.ipv4.ip_local_reserved_ports").raw or "")
        return lo, hi, hi - lo + 1 - sum(1 for p in reserved if lo <= p <= hi)

    def kernel_at_least(self, version: tuple[int, ...]) -> bool | None:
        if self.release is None:
            return None
        return tuple(self.release.version) >= tuple(version) + (0,) * (3 - len(version))

    def issue(self, issue_id: str) -> Any:
        """The knowledge-base status of a known kernel issue for this kernel (None if unknown)."""
        if self.kdb is None or self.release is None or issue_id not in self.kdb.issues:
            return None
        sysctls = self.snapshot.sysctls if self.kind == "host" else None
        return self.kdb.issues[issue_id].status_for(self.release, sysctls)

    def counter(self, name: str) -> int | None:
        """`TcpExt.ListenOverflows`, `Tcp.AttemptFails`, `TCP.tw`, or `conntrack.drop` (summed over CPUs)."""
        if name.startswith("conntrack."):
            return _conntrack_total(self.snapshot.conntrack.stats_per_cpu, name[len("conntrack.") :])
        return self.snapshot.counters.get(name)

    def counter_rate(self, name: str) -> float | None:
        """Per-second rate of a counter between the two samples, if `--sample` was used."""
        prev = self.snapshot.previous
        if prev is None or prev.interval_s <= 0:
            return None
        if name.startswith("conntrack."):
            then = _conntrack_total(prev.conntrack_stats_per_cpu, name[len("conntrack.") :])
        else:
            then = prev.counters.get(name)
        now = self.counter(name)
        if now is None or then is None:
            return None
        return (now - then) / prev.interval_s

    def counter_evidence(self, name: str) -> dict[str, Any] | None:
        """Total since boot and, with --sample, the rate: the shape every counter evidence takes."""
        total = self.counter(name)
        if total is None:
            return None
        ev: dict[str, Any] = {"total_since_boot": total}
        if self.snapshot.uptime_s:
            ev["uptime_s"] = round(self.snapshot.uptime_s)
        rate = self.counter_rate(name)
        if rate is not None:
            ev["rate_per_s"] = round(rate, 3)
            ev["sample_interval_s"] = round(self.snapshot.previous.interval_s, 1)  # type: ignore[union-attr]
        return ev


def _conntrack_total(rows: list[dict[str, int]], field: str) -> int | None:
    """A /proc/net/stat/nf_conntrack counter summed over CPUs; None when not collected or not on this kernel."""
    if not rows or field not in rows[0]:
        return None
    return sum(row.get(field, 0) for row in rows)


@dataclass(frozen=True)
class NotApplicable:
    reason: str


@dataclass(frozen=True)
class Unknown:
    """The rule's input could not be read (permission denied, not collected): the check is unknown, not a pass."""

    reason: str


CheckOutput = Finding | NotApplicable | Unknown | None | Iterable[Finding | NotApplicable | Unknown]


class Rule:
    meta: ClassVar[RuleMeta]

    def check(self, f: Facts) -> CheckOutput:  # pragma: no cover - abstract
        raise NotImplementedError

    # helpers for check() ---------------------------------------------------------
    def finding(
        self,
        f: Facts,
        *,
        explanation: str,
        evidence: dict[str, Any],
        severity: Severity | str | None = None,
        keys: list[str] | None = None,
        remediation: str | None = None,
        context: list[str] | None = None,
        location: Location | None = None,
        fix: dict[str, str] | None = None,
    ) -> Finding:
        keys = list(keys if keys is not None else self.meta.keys)
        if location is None and f.kind == "config":
            location = next((f.configured[k][1] for k in keys if k in f.configured), None)
        return Finding(
            rule=self.meta.id,
            severity=Severity(severity or self.meta.severity),
            title=self.meta.title,
            keys=keys,
            evidence=evidence,
            explanation=explanation,
            remediation=remediation or self.meta.remediation,
            references=[r.url for r in self.meta.references],
            location=location,
            fix=fix or {},
            context=context or [],
        )

    @staticmethod
    def na(reason: str) -> NotApplicable:
        return NotApplicable(reason)

    @staticmethod
    def unknown(reason: str) -> Unknown:
        return Unknown(reason)

    @staticmethod
    def unread(f: Facts, reason: str) -> NotApplicable | Unknown:
        """Input that could not be read: unknown on a host (never a pass or 'not applicable'); for a
        configuration file, whose unset keys are simply not judged, not applicable."""
        return Unknown(reason) if f.kind == "host" else NotApplicable(reason)


class ValueRule(Rule):
    """A rule about one sysctl: not applicable when the key is absent or unknown, else judge(value)."""

    key: ClassVar[str]

    def check(self, f: Facts) -> CheckOutput:
        v = f.value(self.key)
        if v.origin == "absent":
            return self.na(f.absent_reason(self.key))
        if v.raw is None:
            return self.unread(f, f"{self.key} could not be read" if f.kind == "host" else f"{self.key} value unknown")
        return self.judge(f, v)

    def judge(self, f: Facts, v: Value) -> CheckOutput:  # pragma: no cover - abstract
        raise NotImplementedError


class ThresholdRule(ValueRule):
    """Fires when an integer sysctl is below (or above) a threshold; the threshold is configurable by name."""

    below: ClassVar[str | None] = None  # name of a threshold in Context.thresholds
    above: ClassVar[str | None] = None

    def judge(self, f: Facts, v: Value) -> CheckOutput:
        n = v.int
        if n is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        if self.below and n < (limit := f.context.threshold(self.below)):
            return self.explain(f, v, n, limit)
        if self.above and n > (limit := f.context.threshold(self.above)):
            return self.explain(f, v, n, limit)
        return None

    def explain(self, f: Facts, v: Value, n: int, limit: float) -> CheckOutput:  # pragma: no cover
        raise NotImplementedError
