"""The library API: Snapshot (+ Context) -> Target -> Report. The CLI is a thin layer over this."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

from . import __version__
from .config import Waiver
from .context import Context, ContextOptions, resolve_context
from .exitcodes import ExitCode
from .measure import measurements
from .model import Location, Report, Severity, Summary, Target, TargetStatus, Tool
from .netns_view import group_ns001
from .rules.base import GLOBAL_SYSCTL_HIDDEN, Facts
from .rules.engine import catalogue, run_rules
from .sanitize import clean_text
from .snapshot import Snapshot
from .suppress import Baseline, apply_suppressions


class AuditOptions(BaseModel):
    context: ContextOptions = Field(default_factory=ContextOptions)
    disabled_rules: list[str] = Field(default_factory=list)
    fail_on: Severity = Severity.high
    waivers: list[Waiver] = Field(default_factory=list, description="from .tcpaudit.toml; see tcpaudit.suppress")
    baseline: Baseline | None = Field(None, description="--baseline FILE: findings recorded there are suppressed")
    policy: Any = Field(default=None, description="tcpaudit.policy.Policy from --policy FILE or [policy] (POL001)")


@functools.lru_cache(maxsize=1)
def kernel_db():
    from .kernel.db import load_kernel_db

    return load_kernel_db()


def parse_release_or_none(release: str | None, proc_version: str | None = None, signature: str | None = None):
    """The release, judged as the upstream stable point release its build states (kernel/release.py)."""
    if not release:
        return None
    from .kernel.release import KernelReleaseError, parse_host_release

    try:
        return parse_host_release(release, proc_version, signature)
    except KernelReleaseError:
        return None


def facts_for(
    snapshot: Snapshot,
    context: Context,
    *,
    kind: str = "host",
    configured: dict[str, tuple[str, Location]] | None = None,
    policy: Any = None,
    group: str | None = None,
) -> Facts:
    return Facts(
        snapshot=snapshot,
        context=context,
        kind=kind,  # type: ignore[arg-type]
        kdb=kernel_db(),
        release=parse_release_or_none(
            snapshot.kernel.release, snapshot.kernel.proc_version, snapshot.kernel.version_signature
        ),
        configured=configured or {},
        policy=policy,
        group=group,
    )


def sample_note(snapshot: Snapshot) -> list[str]:
    """`--sample N`: the report says the counters were sampled, and over how long (rates are per second over
    that interval); without it, counters are totals since boot."""
    prev = snapshot.previous
    if prev is None or prev.interval_s <= 0:
        return []
    return [f"counters sampled twice, {prev.interval_s:.1f} s apart (--sample): rates are over that interval"]


def gap_lines(snapshot: Snapshot) -> list[str]:
    return [
        clean_text(f"{g.item}: {g.reason.value}" + (f" ({g.detail})" if g.detail else ""), 300) for g in snapshot.gaps
    ]


def rule_keys() -> list[str]:
    return sorted({k for r in catalogue() for k in r.meta.keys})


def kernel_notes(snapshot: Snapshot, facts: Facts) -> list[str]:
    """Evidence beats inference: report where the host's sysctl tree contradicts the version table."""
    if facts.kdb is None or facts.release is None:
        return []
    notes = []
    for name, fact in sorted(facts.kdb.sysctls.items()):
        on_host = snapshot.has_sysctl(name)
        expected = fact.present_in(facts.release)
        if on_host is None or expected is None or on_host == expected:
            continue
        if on_host:
            why = "likely a distribution backport"
        elif facts.hidden_by_netns(name):
            why = f"{GLOBAL_SYSCTL_HIDDEN}; read it on the host"
        else:
            why = "not built into this kernel, or its module is not loaded"
        notes.append(
            f"{name} is {'present' if on_host else 'absent'} on this host although upstream "
            f"{facts.release.upstream} {'lacks' if on_host else 'has'} it ({why}); the host's answer is used"
        )
    return notes


def audit_snapshot(
    snapshot: Snapshot,
    opts: AuditOptions | None = None,
    name: str | None = None,
    kind: str = "host",
    status: TargetStatus = TargetStatus.ok,
    group: str | None = None,
) -> Target:
    """One host snapshot through the rules. kind "netns": a network namespace of a host (`--all-netns`),
    audited like a host (the same rules, its own sysctls, sockets and counters); `snapshot.netns` says
    which. status: ok, or partial for a namespace read from its counters only."""
    opts = opts or AuditOptions()
    ctx = resolve_context(opts.context, snapshot)
    target_name = clean_text(name or snapshot.hostname, 253)
    facts = facts_for(snapshot, ctx, policy=opts.policy, group=group)
    findings, results = run_rules(facts, target_name, disabled=opts.disabled_rules)
    target = Target(
        name=target_name,
        kind=kind,
        status=status,
        netns=snapshot.netns,
        # the version the rules judged: the upstream stable point release the build states, if it does
        kernel={
            "release": snapshot.kernel.release,
            "version": facts.release.upstream if facts.release is not None else snapshot.kernel.version,
        },
        findings=findings,
        checks=results,
        context=[*ctx.assumed, *sample_note(snapshot)],
        gaps=gap_lines(snapshot),
        kernel_notes=kernel_notes(snapshot, facts),
        sysctls={k: clean_text(snapshot.sysctls[k], 300) for k in rule_keys() if k in snapshot.sysctls},
        measurements=measurements(snapshot),
    )
    return apply_suppressions(target, waivers=opts.waivers, baseline=opts.baseline)


def failed_target(name: str, status: TargetStatus, error: str, kind: str = "host", netns=None) -> Target:
    return Target(name=clean_text(name, 253), kind=kind, status=status, error=clean_text(error, 500), netns=netns)


# A namespace that ended between enumeration and entry is reported (skipped, "gone") but is no failure of
# the audit: there is nothing left to audit. Every other skip, and a partial read, is a collection failure.
GONE = "gone"


def audit_netns(
    captures: Iterable,
    opts: AuditOptions | None = None,
    into: list[Target] | None = None,
) -> list[Target]:
    """`tcpaudit host --all-netns`: one Target per collect.netns.NetnsCapture, in order; the host namespace
    is the host target (kind host, named by its hostname), every other namespace a netns target named
    `netns:<name>` (collect.netns.target_names). Each snapshot is dropped once audited. `into` receives the
    targets as they are made (what was done survives a Ctrl-C)."""
    targets: list[Target] = [] if into is None else into
    for cap in captures:
        entry = cap.entry
        kind = "host" if entry.info is not None and entry.info.is_host else "netns"
        name = cap.name
        if cap.snapshot is None:
            targets.append(failed_target(name, TargetStatus.skipped, cap.error or "not read", kind, entry.info))
            continue
        status = TargetStatus.partial if cap.status == "partial" else TargetStatus.ok
        targets.append(audit_snapshot(cap.snapshot, opts, name=name, kind=kind, status=status))
    return targets


def build_report(
    targets: Iterable[Target], fail_on: Severity | str = Severity.high, interrupted: bool = False
) -> Report:
    targets = list(targets)
    fail_on = Severity(fail_on)
    s = Summary(fail_on=fail_on.value)
    s.targets = len(targets)
    for t in targets:
        if t.status is TargetStatus.ok or (t.status is TargetStatus.skipped and t.error == GONE):
            s.targets_ok += 1
        else:
            s.targets_failed += 1
        fired = set()
        for f in t.findings:
            if f.suppressed is not None:
                s.suppressed += 1
                continue
            s.findings += 1
            s.by_severity[f.severity.value] = s.by_severity.get(f.severity.value, 0) + 1
            fired.add(f.rule)
        for rid in fired:
            s.by_rule[rid] = s.by_rule.get(rid, 0) + 1
    s.by_rule = dict(sorted(s.by_rule.items()))
    gating = any(f.severity.at_least(fail_on) and f.suppressed is None for t in targets for f in t.findings)
    if interrupted:
        s.exit_code = ExitCode.INTERRUPTED
    elif s.targets_failed:
        s.exit_code = ExitCode.COLLECTION
    elif gating:
        s.exit_code = ExitCode.FINDINGS
    else:
        s.exit_code = ExitCode.OK
    report = Report(tool=Tool(version=__version__), targets=targets, summary=s)
    if any(t.kind == "netns" for t in targets):
        group_ns001(report)  # --all-netns: one NS001 entry naming the namespaces (report.extra["netns"])
    return report
