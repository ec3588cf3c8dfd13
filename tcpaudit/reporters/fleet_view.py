"""The fleet part of the table: one line per host, rules by number of hosts, and sysctl drift.

Called by the table reporter when report.extra has "fleet", and alone by `tcpaudit fleet` without --detail.
Tables wrap to the width given (tcpaudit.terminal). Every host-controlled string goes through clean_text.
"""

from __future__ import annotations

from typing import Any

from .. import terminal
from ..model import Report, TargetStatus
from ..sanitize import clean_text

MAX_DRIFT_SHOWN = 50
MAX_HOSTS_PER_DRIFT = 6


def _worst(findings: list[Any]) -> str:
    sevs = [f.severity for f in findings if f.suppressed is None]
    return max(sevs, key=lambda s: s.rank).value if sevs else "-"


def _styled(severity: str, color: bool) -> Any:
    from rich.text import Text

    return Text(severity, style=terminal.SEVERITY_STYLE.get(severity, "") if color else "")


def render_fleet(report: Report, width: int | None = None, color: bool = False) -> str:
    return terminal.render(fleet_renderables(report, color), width or terminal.DEFAULT_WIDTH, color).rstrip("\n")


def fleet_renderables(report: Report, color: bool = False) -> list[Any]:
    fleet: dict[str, Any] = report.extra.get("fleet", {})
    out: list[Any] = []
    statuses = fleet.get("statuses", {})
    total = fleet.get("hosts", len(report.targets))
    parts = [f"{n} {s}" for s, n in sorted(statuses.items(), key=lambda kv: (kv[0] != "ok", kv[0]))]
    elapsed = fleet.get("elapsed_s")
    out.append(
        f"Fleet: {total} host(s): {', '.join(parts) or 'none'}"
        + (f" in {elapsed:.1f}s" if isinstance(elapsed, (int, float)) else "")
    )
    groups = fleet.get("groups", {})
    show_group = len(set(groups.values())) > 1
    rows: list[list[object]] = []
    for t in report.targets:
        unsup = [f for f in t.findings if f.suppressed is None]
        row: list[object] = [clean_text(t.name, 60)]
        if show_group:
            row.append(clean_text(groups.get(t.name, "all"), 30))
        row += [
            t.status.value,
            len(unsup) if t.status is TargetStatus.ok else "-",
            _styled(_worst(t.findings), color) if t.status is TargetStatus.ok else "-",
            clean_text(t.error or "", 90)
            if t.status is not TargetStatus.ok
            else clean_text(t.kernel.release or "", 40),
        ]
        rows.append(row)
    headers = ["host", *(["group"] if show_group else []), "status", "findings", "worst", "kernel / reason"]
    out.append(terminal.table(headers, rows, no_wrap=(2,)))

    by_rule = fleet.get("by_rule", {})
    if by_rule:
        out.append("")
        out.append("Rules by hosts affected:")
        out.append(
            terminal.table(
                ["rule", "worst", "hosts"],
                [
                    [clean_text(rule), _styled(e.get("severity", ""), color), f"{e.get('hosts', 0)}/{e.get('of', 0)}"]
                    for rule, e in by_rule.items()
                ],
            )
        )
    policy = fleet.get("policy")
    if policy:
        from ..policy import summary_line

        out.append("")
        out.append(summary_line(policy))
    drift = fleet.get("drift", [])
    if drift:
        out.append("")
        out.append(f"Drift: {len(drift)} sysctl(s) where hosts differ from their group's majority:")
        rows = []
        for d in drift[:MAX_DRIFT_SHOWN]:
            hosts = d.get("hosts", {})
            shown = ", ".join(
                f"{clean_text(h, 40)}={clean_text(v, 30)}" for h, v in list(hosts.items())[:MAX_HOSTS_PER_DRIFT]
            )
            if len(hosts) > MAX_HOSTS_PER_DRIFT:
                shown += f", +{len(hosts) - MAX_HOSTS_PER_DRIFT} more"
            rows.append(
                [
                    clean_text(d.get("key", ""), 60),
                    clean_text(d.get("group", ""), 30),
                    clean_text(d.get("majority", ""), 30),
                    shown,
                ]
            )
        out.append(terminal.table(["sysctl", "group", "majority", "differing hosts"], rows))
        if len(drift) > MAX_DRIFT_SHOWN:
            out.append(f"(first {MAX_DRIFT_SHOWN}; --format json has all)")
    return [terminal.text(x) if isinstance(x, str) else x for x in out]
