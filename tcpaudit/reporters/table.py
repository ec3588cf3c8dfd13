"""The terminal table. Every string a host or a user controls goes through clean_text first."""

from __future__ import annotations

from typing import Any

from tabulate import tabulate

from ..model import Report, Target
from ..sanitize import clean_text
from . import _levels

_MAX_EVIDENCE = 110


def evidence_line(evidence: dict[str, Any], limit: int = _MAX_EVIDENCE) -> str:
    parts = []
    for k, v in evidence.items():
        if isinstance(v, (dict, list)):
            continue
        parts.append(f"{k}={v}")
    return clean_text("; ".join(parts), limit)


def _target_block(t: Target, verbose: bool) -> list[str]:
    head = f"== {clean_text(t.name)} ({t.kind}"
    if t.kernel.release:
        head += f", kernel {clean_text(t.kernel.release, 80)}"
    head += f"): {t.status.value}"
    out = [head]
    if t.error:
        out.append(f"   error: {clean_text(t.error)}")
    for c in t.context:
        out.append(f"   context: {clean_text(c)}")
    for n in t.kernel_notes:
        out.append(f"   kernel: {clean_text(n)}")
    if t.status.value != "ok" and not t.findings:
        return out
    rows = []
    for f in t.findings:
        sev = _levels.label(f.severity) if f.suppressed is None else f"({f.severity.value}, suppressed)"
        where = f" [{clean_text(f.location.file)}:{f.location.line}]" if f.location else ""
        rows.append([sev, f.rule, clean_text(f.title, 60) + where, evidence_line(f.evidence)])
    if rows:
        out.append(tabulate(rows, headers=["severity", "rule", "finding", "evidence"], tablefmt="simple"))
    else:
        out.append("   no findings")
    if verbose:
        for f in t.findings:
            out.append("")
            out.append(f"-- {f.rule} {clean_text(f.title)}")
            out.append(f"   keys: {', '.join(clean_text(k) for k in f.keys)}")
            out.append(f"   why: {clean_text(f.explanation, keep_newlines=True)}")
            out.append(f"   fix: {clean_text(f.remediation, keep_newlines=True)}")
            if f.suppressed:
                out.append(f"   suppressed ({f.suppressed.kind}): {clean_text(f.suppressed.reason)}")
    if t.gaps:
        shown = t.gaps if verbose else t.gaps[:5]
        out.append(
            f"   not collected ({len(t.gaps)}):" + ("" if verbose or len(t.gaps) <= 5 else " (first 5; -v for all)")
        )
        out.extend(f"     - {clean_text(g)}" for g in shown)
    return out


def render(report: Report, verbose: bool = False, **_: object) -> str:
    lines: list[str] = []
    for t in report.targets:
        lines.extend(_target_block(t, verbose))
        lines.append("")
    s = report.summary
    sev = ", ".join(f"{n} {k}" for k, n in sorted(s.by_severity.items(), key=lambda kv: -_levels.rank(kv[0])))
    lines.append(
        f"{s.targets} target(s), {s.targets_ok} audited, {s.targets_failed} failed; "
        f"{s.findings} finding(s){' (' + sev + ')' if sev else ''}"
        + (f", {s.suppressed} suppressed" if s.suppressed else "")
        + f"; fail-on {s.fail_on}: exit {s.exit_code}"
    )
    if "fleet" in report.extra:
        from .fleet_view import render_fleet  # fleet sweeps add grouping and drift

        lines.append(render_fleet(report))
    return "\n".join(lines) + "\n"
