"""Findings and the JSON report contract (documented in README.md, "JSON report")."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Severity(str, Enum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    def at_least(self, other: Severity | str) -> bool:
        return self.rank >= Severity(other).rank

    def raised(self, steps: int = 1) -> Severity:
        return _ORDER[min(len(_ORDER) - 1, self.rank + steps)]

    def lowered(self, steps: int = 1) -> Severity:
        return _ORDER[max(0, self.rank - steps)]


_ORDER = [Severity.info, Severity.low, Severity.medium, Severity.high, Severity.critical]
_RANK = {s: i for i, s in enumerate(_ORDER)}


class Outcome(str, Enum):
    passed = "pass"
    fail = "fail"
    not_applicable = "not_applicable"
    error = "error"
    unknown = "unknown"  # the rule's input could not be read (needs root, not collected): never a pass


class TargetStatus(str, Enum):
    ok = "ok"
    unreachable = "unreachable"
    auth_failed = "auth_failed"
    host_key_rejected = "host_key_rejected"
    timeout = "timeout"
    bad_output = "bad_output"
    error = "error"
    interrupted = "interrupted"
    partial = "partial"  # audited from part of its inputs (a network namespace read without setns: counters only)
    skipped = "skipped"  # found but not audited (a network namespace that was gone or denied); error says why


class Location(BaseModel):
    model_config = ConfigDict(frozen=True)
    file: str
    line: int | None = None


class Suppression(BaseModel):
    kind: str = Field(description="waiver, baseline or inline")
    reason: str
    expires: str | None = None
    source: str | None = None


class Finding(BaseModel):
    rule: str
    severity: Severity
    title: str
    outcome: Outcome = Outcome.fail
    keys: list[str] = Field(default_factory=list)
    evidence: dict[str, Any] = Field(default_factory=dict)
    explanation: str = ""
    remediation: str = ""
    references: list[str] = Field(default_factory=list)
    location: Location | None = None
    fix: dict[str, str] = Field(default_factory=dict, description="sysctl -> value that removes the risk, if any")
    context: list[str] = Field(default_factory=list, description="the assumptions that drove the severity")
    suppressed: Suppression | None = None
    fingerprint: str = ""


class CheckResult(BaseModel):
    rule: str
    outcome: Outcome
    reason: str = ""


class KernelRef(BaseModel):
    release: str | None = None
    version: str | None = None


class NetnsInfo(BaseModel):
    """One network namespace of a host (`tcpaudit host --all-netns`)."""

    inode: int
    pids: list[int] = Field(default_factory=list, description="processes whose /proc/PID/ns/net is this namespace")
    name: str = Field(description="the most specific name found (pod, container, bind mount, comm)")
    name_source: str = Field(description="where the name came from: pod-log-dir, cgroup, bind-mount, comm, host")
    pod_uid: str | None = None
    pod: str | None = Field(default=None, description="namespace/name of the pod, when known")
    qos_class: str | None = None
    container_id: str | None = None
    bind_mounts: list[str] = Field(default_factory=list, description="nsfs bind mounts holding this namespace")
    is_host: bool = False


class Target(BaseModel):
    name: str
    kind: str = Field(description="host, netns or config")
    status: TargetStatus = TargetStatus.ok
    error: str | None = None
    kernel: KernelRef = Field(default_factory=KernelRef)
    findings: list[Finding] = Field(default_factory=list)
    sysctls: dict[str, str] = Field(
        default_factory=dict, description="the values of every sysctl the rules read, as seen on this target"
    )
    checks: list[CheckResult] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list, description="the context that was assumed, and why")
    gaps: list[str] = Field(default_factory=list, description="what could not be collected, and why")
    kernel_notes: list[str] = Field(
        default_factory=list,
        description="where the host's own sysctls disagree with the knowledge base's version table (backports)",
    )
    files: list[str] = Field(default_factory=list, description="config targets: the files read")
    netns: NetnsInfo | None = Field(default=None, description="netns targets: which namespace this is")
    measurements: dict[str, float] = Field(
        default_factory=dict,
        exclude=True,  # in-process only (the Prometheus exposition); not part of the JSON contract
        description="evidence numbers for monitoring (tcpaudit.measure), one unit each; absent when unknown",
    )


class Tool(BaseModel):
    name: str = "tcpaudit"
    version: str


class Summary(BaseModel):
    targets: int = 0
    targets_ok: int = 0
    targets_failed: int = 0
    findings: int = 0
    suppressed: int = 0
    by_severity: dict[str, int] = Field(default_factory=dict)
    by_rule: dict[str, int] = Field(default_factory=dict, description="rule -> number of targets it fired on")
    fail_on: str = "high"
    exit_code: int = 0


class Report(BaseModel):
    tool: Tool
    targets: list[Target] = Field(default_factory=list)
    summary: Summary = Field(default_factory=Summary)
    extra: dict[str, Any] = Field(default_factory=dict, description="fleet drift and other cross-target views")
