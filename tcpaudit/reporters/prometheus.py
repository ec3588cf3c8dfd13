"""Prometheus text exposition format 0.0.4, for node_exporter's textfile collector or any scrape.

Rendered with the `prometheus-client` library (a Collector on a private CollectorRegistry, generate_latest),
which writes HELP/TYPE once per name and escapes label values; nothing here formats exposition text by hand.
The metrics, their units and labels, and the cardinality budget are documented in README.md ("Prometheus");
their names are a contract: change them only additively.

The exposition describes one host: its own findings (scope="host") and, when namespaces were inspected
(`--all-netns`: targets of kind "netns"), the findings inside them (scope="netns", with per-namespace detail only
where something fired). Config targets (`tcpaudit lint`) are not monitoring data and are left out.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .. import measure
from ..model import Outcome, Report, Severity, Target, TargetStatus
from ..sanitize import clean_text

SEVERITIES = tuple(s.value for s in Severity)
SCOPES = ("host", "netns")
NETNS_SKIP_REASONS = ("gone", "permission_denied", "error")
CHECK_OUTCOMES = tuple(o.value for o in Outcome)
_AUDITED = (TargetStatus.ok, TargetStatus.partial)

# Evidence: (Target.measurements key, metric name, help). Gauges; PAWS rejects are a counter (below).
_EVIDENCE_GAUGES = (
    (
        measure.USABLE_EPHEMERAL_PORTS,
        "tcpaudit_usable_ephemeral_ports",
        "Ports in net.ipv4.ip_local_port_range minus the ip_local_reserved_ports inside it.",
    ),
    (measure.TIME_WAIT_SOCKETS, "tcpaudit_time_wait_sockets", "TCP sockets in TIME-WAIT."),
    (
        measure.KEEPALIVE_TIME_SECONDS,
        "tcpaudit_tcp_keepalive_time_seconds",
        "net.ipv4.tcp_keepalive_time: idle seconds before the first keepalive probe.",
    ),
    (measure.CONNTRACK_ENTRIES, "tcpaudit_conntrack_entries", "Connection tracking entries (nf_conntrack_count)."),
    (
        measure.CONNTRACK_LIMIT,
        "tcpaudit_conntrack_entries_limit",
        "Maximum connection tracking entries (nf_conntrack_max).",
    ),
)


def catalogue_rules() -> list[tuple[str, str, str]]:
    """(id, declared severity, title) of every rule that runs on hosts, in id order."""
    from ..rules.engine import catalogue

    rules = [(r.meta.id, r.meta.severity.value, r.meta.title) for r in catalogue() if "host" in r.meta.applies_to]
    return sorted(rules)


def netns_skip_reason(target: Target) -> str:
    """A bounded label for why a namespace was not audited; the error text itself is free text from the host."""
    text = (target.error or "").lower()
    if any(w in text for w in ("gone", "no such", "vanished", "exited", "enoent", "esrch")):
        return "gone"
    if any(w in text for w in ("denied", "not permitted", "eperm", "eacces", "permission")):
        return "permission_denied"
    return "error"


def _process_age_s() -> float | None:
    """Seconds since this process started (a one-shot run's duration up to rendering)."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            start_ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def run_health(report: Report) -> dict[str, Any]:
    """`report.extra["run"]` (set by `tcpaudit agent`) or, for a one-shot run, what the report itself shows."""
    run = dict(report.extra.get("run") or {})
    if "success" not in run:
        hosts = [t for t in report.targets if t.kind == "host"]
        run["success"] = bool(hosts) and all(t.status in _AUDITED for t in hosts)
    run.setdefault("finished_at", time.time())
    if "duration_seconds" not in run:
        run["duration_seconds"] = _process_age_s()
    if "last_success_at" not in run:
        run["last_success_at"] = run["finished_at"] if run["success"] else None
    return run


class ReportCollector(Collector):
    def __init__(self, report: Report, rules: list[tuple[str, str, str]] | None = None) -> None:
        self.report = report
        self.rules = rules

    def collect(self) -> Iterable[Metric]:
        report = self.report
        run = run_health(report)
        hosts = [t for t in report.targets if t.kind == "host" and t.status in _AUDITED]
        netns_all = [t for t in report.targets if t.kind == "netns"]
        netns = [t for t in netns_all if t.status in _AUDITED]
        rules = self.rules if self.rules is not None else catalogue_rules()
        # A rule that fired but is not in the host catalogue (a newer rule file) still gets its series.
        known = {r[0] for r in rules}
        extra = sorted({f.rule for t in (*hosts, *netns) for f in t.findings} - known)
        rule_ids = [r[0] for r in rules] + extra

        yield from _run_metrics(report, run)
        yield from _findings(rule_ids, hosts, netns, bool(netns_all))
        info = GaugeMetricFamily(
            "tcpaudit_rule_info",
            "The rule catalogue: severity is the rule's declared severity (a finding's own may be lower or higher).",
            labels=["rule", "severity", "title"],
        )
        for rid, sev, title in rules:
            info.add_metric([rid, sev, clean_text(title, 300)], 1)
        yield info
        if netns_all:
            inspected = GaugeMetricFamily(
                "tcpaudit_netns_inspected", "Network namespaces audited in the last run (besides the host's)."
            )
            inspected.add_metric([], len(netns))
            yield inspected
            skipped = GaugeMetricFamily(
                "tcpaudit_netns_skipped", "Network namespaces found but not audited, by reason.", labels=["reason"]
            )
            reasons = Counter(netns_skip_reason(t) for t in netns_all if t.status not in _AUDITED)
            for reason in NETNS_SKIP_REASONS:
                skipped.add_metric([reason], reasons.get(reason, 0))
            yield skipped
        yield from _evidence(hosts, netns)


def _run_metrics(report: Report, run: dict[str, Any]) -> Iterator[Metric]:
    build = GaugeMetricFamily("tcpaudit_build_info", "tcpaudit's version.", labels=["version"])
    build.add_metric([clean_text(report.tool.version, 100)], 1)
    yield build
    success = GaugeMetricFamily(
        "tcpaudit_run_success",
        "1 if the last run audited the host, 0 if it failed (findings then are those of the last good run).",
    )
    success.add_metric([], 1 if run["success"] else 0)
    yield success
    last = GaugeMetricFamily(
        "tcpaudit_last_run_timestamp_seconds", "Unix time the last run (successful or not) finished."
    )
    last.add_metric([], float(run["finished_at"]))
    yield last
    if run.get("last_success_at") is not None:
        good = GaugeMetricFamily(
            "tcpaudit_last_success_timestamp_seconds",
            "Unix time the last successful run finished: the age of the findings published.",
        )
        good.add_metric([], float(run["last_success_at"]))
        yield good
    if run.get("duration_seconds") is not None:
        duration = GaugeMetricFamily("tcpaudit_run_duration_seconds", "How long the last run took.")
        duration.add_metric([], float(run["duration_seconds"]))
        yield duration


def _active(target: Target) -> Iterator[tuple[str, str]]:
    for f in target.findings:
        if f.outcome is Outcome.fail and f.suppressed is None:
            yield f.rule, f.severity.value


def _findings(rule_ids: list[str], hosts: list[Target], netns: list[Target], netns_asked: bool) -> Iterator[Metric]:
    findings = GaugeMetricFamily(
        "tcpaudit_findings",
        "Active (not suppressed) findings by rule and severity; scope=netns counts namespaces' findings. Every "
        "rule has a series for every severity, 0 when it did not fire.",
        labels=["rule", "severity", "scope"],
    )
    detail = GaugeMetricFamily(
        "tcpaudit_netns_findings",
        "Active findings inside one network namespace; only where something fired. pod_uid joins kube_pod_info.",
        labels=["rule", "severity", "pod_uid", "netns_inode"],
    )
    suppressed = GaugeMetricFamily(
        "tcpaudit_findings_suppressed", "Findings waived or baselined (not in tcpaudit_findings).", labels=["scope"]
    )
    checks = GaugeMetricFamily(
        "tcpaudit_checks",
        "Rule checks by outcome (pass, fail, not_applicable, error: the rule crashed, unknown: input unreadable).",
        labels=["outcome", "scope"],
    )
    scopes: list[tuple[str, list[Target]]] = []
    if hosts:
        scopes.append(("host", hosts))
    if netns_asked:
        scopes.append(("netns", netns))
    for scope, targets in scopes:
        counts = Counter(key for t in targets for key in _active(t))
        for rid in rule_ids:
            for sev in SEVERITIES:
                findings.add_metric([rid, sev, scope], counts.get((rid, sev), 0))
        suppressed.add_metric([scope], sum(1 for t in targets for f in t.findings if f.suppressed is not None))
        outcomes = Counter(c.outcome.value for t in targets for c in t.checks)
        for outcome in CHECK_OUTCOMES:
            checks.add_metric([outcome, scope], outcomes.get(outcome, 0))
    for t in netns:
        pod_uid, inode = _netns_labels(t)
        for (rid, sev), n in sorted(Counter(_active(t)).items()):
            detail.add_metric([rid, sev, pod_uid, inode], n)
    yield findings
    if detail.samples:
        yield detail
    yield suppressed
    yield checks


def _netns_labels(target: Target) -> tuple[str, str]:
    if target.netns is None:
        return "", ""
    return clean_text(target.netns.pod_uid or "", 64), str(target.netns.inode)


def _evidence(hosts: list[Target], netns: list[Target]) -> Iterator[Metric]:
    labels = ["scope", "pod_uid", "netns_inode"]
    gauges = {key: GaugeMetricFamily(name, text, labels=labels) for key, name, text in _EVIDENCE_GAUGES}
    paws = CounterMetricFamily(
        "tcpaudit_paws_rejects",
        "Packets rejected by a PAWS check since boot, by the kernel's TcpExt counter name (PAWSActive, PAWSEstab, "
        "PAWSPassive, ... whichever this kernel has).",
        labels=["counter", *labels],
    )
    # One host per exposition: a report of several hosts (`tcpaudit audit a.json b.json`) has no label telling
    # their numbers apart, so it publishes none rather than clashing series.
    for scope, targets in (("host", hosts if len(hosts) == 1 else []), ("netns", netns)):
        for t in targets:
            where = [scope, *(_netns_labels(t) if scope == "netns" else ("", ""))]
            for key, value in sorted(t.measurements.items()):
                if key.startswith(measure.PAWS_PREFIX):
                    paws.add_metric([clean_text(key[len(measure.PAWS_PREFIX) :], 40), *where], value)
                elif key in gauges:
                    gauges[key].add_metric(where, value)
    for family in (*gauges.values(), paws):
        if family.samples:
            yield family


def render(report: Report, rules: list[tuple[str, str, str]] | None = None, **_: object) -> str:
    """`rules`: (id, declared severity, title) to publish instead of the installed catalogue (golden files)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ReportCollector(report, rules))
    return generate_latest(registry).decode("utf-8")
