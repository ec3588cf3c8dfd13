"""Markdown for a pull-request comment or a CI job summary ($GITHUB_STEP_SUMMARY).

A summary table per target, then the findings grouped by severity (each with why its severity is
what it is), then suppressed findings, then per target the context assumed, the kernel, the rules that
could not give a verdict and what was not collected. Text from hosts and files is escaped so it cannot inject
Markdown, HTML, links or @-mentions into the comment.
"""

from __future__ import annotations

import html
import re

from ..model import Finding, Outcome, Report, Target, TargetStatus
from ..sanitize import clean_text
from . import _levels

# Inline Markdown that could change the comment's structure: code spans, emphasis, links and images
# ([ and ] are enough to break both), table cells, strikethrough. `<`, `>` and `&` become HTML entities.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(value: object, limit: int | None = 500) -> str:
    """Inline-safe text: control characters escaped, `<>&` as entities, Markdown punctuation backslashed,
    @-mentions and URL schemes made inert, and no line breaks (table cells and list items stay intact)."""
    text = clean_text(value, limit)
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = html.escape(text, quote=False)
    return text.replace("@", "&#64;").replace("://", "&#58;//")


def _where(f: Finding) -> str:
    if f.location is None:
        return ""
    return md(f"{f.location.file}:{f.location.line}" if f.location.line else f.location.file, 300)


def _target_at(t: Target, f: Finding) -> str:
    """'target web1', 'target rootfs at rootfs/etc/sysctl.d/60-net.conf:3', or 'at a.conf:5' when the target is
    that file (a file linted on its own is named after itself)."""
    where = _where(f)
    if where and f.location is not None and f.location.file == t.name:
        return f"at {where}"
    return f"target {md(t.name, 200)}" + (f" at {where}" if where else "")


def _finding_item(t: Target, f: Finding) -> list[str]:
    head = f"- **{f.rule}** {md(f.title, 200)} — {_target_at(t, f)}"
    out = [head]
    if f.outcome is Outcome.error:
        out.append("  - rule crashed: this target was **not** checked for it")
    if f.explanation:
        out.append(f"  - why: {md(f.explanation, 1200)}")
    if f.context:
        out.append(f"  - severity {f.severity.value} because: " + "; ".join(md(c, 300) for c in f.context))
    if f.fix:
        out.append("  - fix: " + ", ".join(md(f"{k} = {v}", 200) for k, v in f.fix.items()))
    elif f.remediation:
        out.append(f"  - fix: {md(f.remediation, 600)}")
    return out


_NOT_CHECKED = (Outcome.unknown, Outcome.error, Outcome.not_applicable)


def _assumed_and_unchecked(targets: list[Target]) -> list[str]:
    """Per audited target: the context assumed, the kernel and what the knowledge base noted about it, the
    rules that did not run to a verdict (unknown, error, not applicable, with why) and what was not collected,
    as the terminal table states them. Collapsed: a job summary leads with the findings."""
    out: list[str] = []
    for t in targets:
        if t.status is not TargetStatus.ok and t.status is not TargetStatus.partial:
            continue
        counts = {o: sum(1 for c in t.checks if c.outcome is o) for o in Outcome}
        ran = ", ".join(f"{n} {o.value.replace('_', ' ')}" for o, n in counts.items() if n)
        out += ["", f"<details><summary>{md(t.name, 200)}: what was assumed and what was not checked</summary>", ""]
        kernel = md(t.kernel.release or "unknown", 80)
        if t.kernel.version and t.kernel.release and not t.kernel.release.startswith(t.kernel.version):
            kernel += f" (judged as upstream {md(t.kernel.version, 40)})"
        out.append(f"- kernel: {kernel}")
        out += [f"- kernel note: {md(n, 400)}" for n in t.kernel_notes]
        out += [f"- context: {md(c, 400)}" for c in t.context] or ["- context: none assumed"]
        if t.checks:
            out.append(f"- {len(t.checks)} rules: {ran}")
        for o in _NOT_CHECKED:
            rows = [c for c in t.checks if c.outcome is o]
            if rows:
                out.append(f"- {o.value.replace('_', ' ')} ({len(rows)}):")
                out += [f"  - {md(c.rule, 20)}: {md(c.reason or '-', 300)}" for c in rows]
        if t.gaps:
            out.append(f"- not collected ({len(t.gaps)}):")
            out += [f"  - {md(g, 300)}" for g in t.gaps]
        out += ["", "</details>"]
    return out


def render(report: Report, **_: object) -> str:
    s = report.summary
    sev = ", ".join(f"{s.by_severity[k]} {k}" for k in _levels.by_severity_desc(list(s.by_severity)))
    verdict = "failed" if s.exit_code else "passed"
    lines = [
        f"## tcpaudit: {verdict}",
        "",
        f"{s.findings} finding(s)"
        + (f" ({sev})" if sev else "")
        + (f", {s.suppressed} suppressed" if s.suppressed else "")
        + f"; {s.targets} target(s), {s.targets_failed} not collected; fail-on **{s.fail_on}**: exit {s.exit_code}",
        "",
        "| target | kind | status | kernel | findings | suppressed |",
        "|---|---|---|---|---|---|",
    ]
    for t in report.targets:
        active = [f for f in t.findings if f.suppressed is None]
        worst = max((f.severity for f in active), key=lambda x: x.rank, default=None)
        counts = f"{len(active)}" + (f" (worst {worst.value})" if worst else "")
        lines.append(
            f"| {md(t.name, 200)} | {t.kind} | {t.status.value} | {md(t.kernel.release or '-', 80)} | "
            f"{counts} | {len(t.findings) - len(active)} |"
        )
    for level in reversed(_levels.ORDER):
        items = [
            (t, f) for t in report.targets for f in t.findings if f.suppressed is None and f.severity.value == level
        ]
        if not items:
            continue
        lines += ["", f"### {_levels.badge(level)} {level.capitalize()} ({len(items)})", ""]
        for t, f in items:
            lines += _finding_item(t, f)
    suppressed = [(t, f) for t in report.targets for f in t.findings if f.suppressed is not None]
    if suppressed:
        lines += ["", f"<details><summary>Suppressed ({len(suppressed)})</summary>", ""]
        for t, f in suppressed:
            sup = f.suppressed
            assert sup is not None
            lines.append(
                f"- **{f.rule}** ({f.severity.value}) {md(f.title, 200)} — {_target_at(t, f)}"
                + f" — {sup.kind}: {md(sup.reason, 300)}"
                + (f" (expires {md(sup.expires)})" if sup.expires else "")
            )
        lines += ["", "</details>"]
    lines += _assumed_and_unchecked(report.targets)
    failed = [t for t in report.targets if t.status is not TargetStatus.ok]
    if failed:
        lines += ["", f"### Not collected ({len(failed)})", ""]
        lines += [
            f"- target {md(t.name, 200)}: **{t.status.value}**" + (f" — {md(t.error, 300)}" if t.error else "")
            for t in failed
        ]
    return "\n".join(lines) + "\n"
