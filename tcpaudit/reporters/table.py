"""The terminal table: fits the width it is given (cells wrap, nothing useful is cut), colours by severity only
when asked, says what was checked, and hides suppressed findings unless asked (counting them).

Every string a host or a user controls goes through clean_text first, and reaches rich as Text, never as markup.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from .. import terminal
from ..model import Finding, Outcome, Report, Target, TargetStatus
from ..rules.base import GLOBAL_SYSCTL_HIDDEN
from ..sanitize import clean_text
from . import _levels

_MAX_EVIDENCE = 110
_HEADLINE_ITEMS = 5  # evidence fields shown per finding without -v
_EXAMPLES = 3
# Evidence that explains how a value was found rather than what it is: -v shows it, the table does not.
_INTERNAL_SUFFIXES = ("_origin", "_source", "_assumed")
_INTERNAL_KEYS = {"socket_detail", "related_locations", "kernel_default_source"}
NO_SYSCTLS = "no sysctl settings found"
OUTCOME_ORDER = (Outcome.passed, Outcome.fail, Outcome.not_applicable, Outcome.unknown, Outcome.error)
OUTCOME_WORDS = {
    Outcome.passed: "pass",
    Outcome.fail: "fail",
    Outcome.not_applicable: "not applicable",
    Outcome.unknown: "unknown",
    Outcome.error: "error",
}


def evidence_line(evidence: dict[str, Any], limit: int = _MAX_EVIDENCE) -> str:
    """Every scalar evidence field on one line (kept for callers outside the table)."""
    parts = []
    for k, v in evidence.items():
        if isinstance(v, (dict, list)):
            continue
        parts.append(f"{k}={v}")
    return clean_text("; ".join(parts), limit)


def _scalar(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _headline_keys(rule: str) -> list[str]:
    """The rule's own choice of evidence for the table (RuleMeta.headline), if it made one."""
    try:
        from ..catalogue import metas

        for m in metas():
            if m.id == rule:
                return list(m.headline)
    except Exception:  # noqa: BLE001 - a reporter never fails over presentation; the generic choice applies
        pass
    return []


def _format_item(k: str, v: Any) -> list[str]:
    if v is None or v is False or v == "" or v == []:
        return []
    if isinstance(v, dict):
        if "total_since_boot" in v:
            s = f"{k}={_scalar(v['total_since_boot'])} since boot"
            if isinstance(v.get("rate_per_s"), (int, float)):
                s += f", {_scalar(v['rate_per_s'])}/s"
            return [s]
        return []
    if isinstance(v, list):
        if k == "examples":
            return [f"e.g. {clean_text(x)}" for x in v[:_EXAMPLES] if not isinstance(x, (dict, list))]
        scalars = [_scalar(x) for x in v if not isinstance(x, (dict, list))]
        if not scalars:
            return []
        more = f", +{len(scalars) - _EXAMPLES} more" if len(scalars) > _EXAMPLES else ""
        return [f"{k}={', '.join(scalars[:_EXAMPLES])}{more}"]
    return [f"{k}={_scalar(v)}"]


def headline_evidence(f: Finding) -> list[str]:
    """The evidence that matters for the table: the rule's headline fields, else the plain facts (no *_origin,
    socket_detail or nested structures); an expired waiver always. -v shows every field."""
    chosen = _headline_keys(f.rule)
    items: list[str] = []
    if chosen:
        for k in chosen:
            if k in f.evidence:
                items += _format_item(k, f.evidence[k])
    else:
        count = 0
        for k, v in f.evidence.items():
            if k == "waiver" or k in _INTERNAL_KEYS or k.endswith(_INTERNAL_SUFFIXES) or k.startswith("_"):
                continue
            if k == "set_at" and f.location is not None:  # the table's location column says it
                continue
            got = _format_item(k, v)
            if got and k != "examples":
                if count >= _HEADLINE_ITEMS:
                    continue
                count += 1
            items += got
    if "waiver" in f.evidence:
        items.append(f"waiver: {f.evidence['waiver']}")
    return [clean_text(i, 300) for i in items]


def fix_lines(f: Finding) -> list[str]:
    return [f"fix: {clean_text(k)} = {clean_text(v)}" for k, v in f.fix.items()]


def severity_context(f: Finding) -> list[str]:
    """The assumptions that set this finding's severity (Finding.context), said next to it."""
    return [f"context: {clean_text(c, 300)}" for c in f.context]


def location_text(f: Finding) -> str:
    if f.location is None:
        return ""
    return clean_text(f.location.file) + (f":{f.location.line}" if f.location.line is not None else "")


def check_counts(t: Target) -> Counter[Outcome]:
    return Counter(c.outcome for c in t.checks)


def checks_line(counts: Counter[Outcome], noun: str = "rules") -> str:
    total = sum(counts.values())
    parts = [
        f"{counts[o]} {OUTCOME_WORDS[o]}" for o in OUTCOME_ORDER if counts[o] or o in (Outcome.passed, Outcome.fail)
    ]
    return f"{total} {noun}: {', '.join(parts)}"


def _visible(t: Target, show_suppressed: bool) -> list[Finding]:
    return [f for f in t.findings if show_suppressed or f.suppressed is None]


def _is_empty_config(t: Target) -> bool:
    """A lint target that holds no sysctl settings at all: counted, not shown."""
    return (
        t.kind == "config"
        and t.status is TargetStatus.ok
        and not t.findings
        and (not t.sysctls or any(c.endswith(NO_SYSCTLS) for c in t.context))
    )


def _findings_table(t: Target, findings: list[Finding], color: bool):
    from rich.text import Text

    rows = []
    for f in findings:
        sev_name = f.severity.value
        if f.suppressed is None:
            sev = Text(_levels.label(f.severity), style=terminal.SEVERITY_STYLE.get(sev_name, "") if color else "")
        else:
            sev = Text(f"({sev_name})\nsuppressed", style="dim" if color else "")
        if f.outcome is Outcome.error:
            sev = Text("ERROR", style="bold red" if color else "")
        finding = Text(overflow="fold")
        loc = location_text(f)
        if loc:
            finding.append(loc + "\n", style="bold" if color else "")
        finding.append(clean_text(f.title))
        if f.suppressed is not None:
            finding.append(f"\n{f.suppressed.kind}: {clean_text(f.suppressed.reason)}", style="dim" if color else "")
        ev = Text(overflow="fold")
        lines = headline_evidence(f)
        ev.append("\n".join(lines))
        fixes = fix_lines(f)
        if fixes:
            ev.append(("\n" if lines else "") + "\n".join(fixes), style="green" if color else "")
        why = severity_context(f)
        if why:
            ev.append(("\n" if lines or fixes else "") + "\n".join(why), style="dim" if color else "")
        rows.append([sev, Text(f.rule, overflow="fold"), finding, ev])
    return terminal.table(
        ["severity", "rule", "finding", "evidence / fix"], rows, no_wrap=(0,), ratios=[None, None, 2, 3], expand=True
    )


def location_key(f: Finding) -> tuple[str, int]:
    return (f.location.file, f.location.line or 0) if f.location else ("", 0)


def _config_findings(t: Target, findings: list[Finding], color: bool) -> list[Any]:
    """Config targets: `file:line: RULE SEVERITY title`, the location first (as compilers and linters print it),
    then the evidence and the fix indented under it."""
    from rich.padding import Padding
    from rich.text import Text

    out: list[Any] = []
    for f in sorted(findings, key=lambda x: (location_key(x), -x.severity.rank, x.rule)):
        head = Text(overflow="fold")
        loc = location_text(f) or clean_text(t.name)  # no line: the target (the file, or the tree) it is about
        head.append(loc + ": ", style="bold" if color else "")
        head.append(f.rule + " ")
        if f.outcome is Outcome.error:
            head.append("ERROR", style="bold red" if color else "")
        elif f.suppressed is not None:
            head.append(f"({f.severity.value}, suppressed)", style="dim" if color else "")
        else:
            head.append(
                _levels.label(f.severity), style=terminal.SEVERITY_STYLE.get(f.severity.value, "") if color else ""
            )
        head.append(" " + clean_text(f.title))
        out.append(head)
        lines = headline_evidence(f)
        if lines:
            out.append(Padding(Text("; ".join(lines), overflow="fold"), (0, 0, 0, 4)))
        for fx in fix_lines(f):
            out.append(Padding(Text(fx, style="green" if color else "", overflow="fold"), (0, 0, 0, 4)))
        for why in severity_context(f):
            out.append(Padding(Text(why, style="dim" if color else "", overflow="fold"), (0, 0, 0, 4)))
        if f.suppressed is not None:
            why = f"{f.suppressed.kind}: {clean_text(f.suppressed.reason)}"
            out.append(Padding(Text(why, style="dim" if color else "", overflow="fold"), (0, 0, 0, 4)))
    return out


def _mechanism(rule: str) -> list[str]:
    """The catalogue's step-by-step mechanism of a rule (what `tcpaudit explain RULE` prints); none for a rule
    this tcpaudit does not ship (a report from another version)."""
    from ..catalogue import metas

    return next((list(m.mechanism) for m in metas() if m.id == rule), [])


def _detail(f: Finding) -> list[Any]:
    """-v: everything the finding carries."""
    out: list[Any] = [""]
    loc = location_text(f)
    out.append(terminal.text(f"-- {f.rule} {clean_text(f.title)}" + (f" [{loc}]" if loc else "")))
    ind = 3

    def line(label: str, value: str) -> None:
        out.append(terminal.text(f"{label}: {value}", indent=ind))

    line("keys", ", ".join(clean_text(k) for k in f.keys))
    line("why", clean_text(f.explanation, keep_newlines=True))
    steps = _mechanism(f.rule)
    if steps:
        out.append(terminal.text("mechanism:", indent=ind))
        out.extend(terminal.text(f"{i}. {clean_text(step)}", indent=ind + 2) for i, step in enumerate(steps, 1))
    line("fix", clean_text(f.remediation, keep_newlines=True))
    for k, v in f.fix.items():
        line("set", f"{clean_text(k)} = {clean_text(v)}")
    for c in f.context:
        line("context", clean_text(c))
    if f.evidence:
        out.append(terminal.text("evidence:", indent=ind))
        for k, v in f.evidence.items():
            shown = v if isinstance(v, str) else json.dumps(v, default=str, ensure_ascii=False)
            out.append(terminal.text(f"{clean_text(k)} = {clean_text(shown, keep_newlines=True)}", indent=ind + 2))
    for r in f.references:
        line("see", clean_text(r))
    if f.suppressed:
        line(f"suppressed ({f.suppressed.kind})", clean_text(f.suppressed.reason))
    return out


def _target_block(
    t: Target, verbose: bool, color: bool, show_suppressed: bool, quiet: bool, common: set[str]
) -> list[Any]:
    head = f"== {clean_text(t.name)} ({t.kind}"
    if t.kernel.release:
        head += f", kernel {clean_text(t.kernel.release, 80)}"
    head += f"): {t.status.value}"
    ok = t.status is TargetStatus.ok
    out: list[Any] = [terminal.text(head, "bold" if color and ok else ("bold red" if color else None))]
    if t.error:
        out.append(terminal.text(f"error: {clean_text(t.error)}", indent=3))
    if not quiet:
        for line in notes(t):
            if line not in common:
                out.append(terminal.text(line, indent=3))
    if t.status is not TargetStatus.ok and not t.findings:
        return out
    shown = _visible(t, show_suppressed)
    if shown and t.kind == "config":
        out.extend(_config_findings(t, shown, color))
    elif shown:
        out.append(_findings_table(t, shown, color))
    elif not quiet:
        out.append(terminal.text("no findings", indent=3))
    hidden = [] if show_suppressed else [f for f in t.findings if f.suppressed is not None]
    if hidden and not quiet:
        kinds = Counter(f.suppressed.kind for f in hidden if f.suppressed)
        per = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        out.append(terminal.text(f"{len(hidden)} suppressed finding(s) hidden ({per}; --show-suppressed)", indent=3))
    if verbose:
        for f in shown:
            out.extend(_detail(f))
    if quiet:
        return out
    counts = check_counts(t)
    if t.checks:
        out.append(terminal.text(f"checked {checks_line(counts)}", indent=3))
    for c in t.checks:
        if c.outcome in (Outcome.unknown, Outcome.error) or (verbose and c.outcome is Outcome.not_applicable):
            word = OUTCOME_WORDS[c.outcome]
            style = terminal.OUTCOME_STYLE.get(c.outcome.value) if color else None
            out.append(terminal.text(f"{word}: {c.rule}: {clean_text(c.reason)}", style, indent=5))
    if counts[Outcome.not_applicable] and not verbose:
        out.append(terminal.text(f"({counts[Outcome.not_applicable]} not applicable: -v says why)", indent=5))
    if t.gaps:
        gaps = t.gaps if verbose else t.gaps[:5]
        more = "" if verbose or len(t.gaps) <= 5 else " (first 5; -v for all)"
        out.append(terminal.text(f"not collected ({len(t.gaps)}):{more}", indent=3))
        out.extend(terminal.text(f"- {clean_text(g)}", indent=5) for g in gaps)
    return out


_HIDDEN_NOTE = re.compile(
    r"^(\S+) is absent on this host although upstream \S+ has it \(" + re.escape(GLOBAL_SYSCTL_HIDDEN) + r"; "
)


def notes(t: Target) -> list[str]:
    """The target's context and kernel notes as the table prints them. The notes about global sysctls a network
    namespace cannot see become one short line (the JSON keeps each note in full)."""
    out = [f"context: {clean_text(c)}" for c in t.context]
    hidden: list[str] = []
    for n in t.kernel_notes:
        m = _HIDDEN_NOTE.match(n)
        if m:
            hidden.append(m.group(1))
        else:
            out.append(f"kernel: {clean_text(n)}")
    if hidden:
        out.append(
            f"kernel: {', '.join(clean_text(h) for h in hidden)}: global sysctl(s), visible only in the host's "
            "initial network namespace; audit the host for their values"
        )
    return out


def _common_context(targets: list[Target]) -> list[str]:
    """Notes every audited target shares (the assumed defaults, the namespace notes): said once, not per target."""
    ok = [t for t in targets if t.status is TargetStatus.ok]
    if len(ok) < 2:
        return []
    first = notes(ok[0])
    shared = set(first).intersection(*(set(notes(t)) for t in ok[1:]))
    return [c for c in first if c in shared]


def summary_line(report: Report, hidden_suppressed: bool) -> str:
    s = report.summary
    sev = ", ".join(f"{n} {k}" for k, n in sorted(s.by_severity.items(), key=lambda kv: -_levels.rank(kv[0])))
    suppressed = ""
    if s.suppressed:
        suppressed = f", {s.suppressed} suppressed" + (" (hidden: --show-suppressed)" if hidden_suppressed else "")
    return (
        f"{s.targets} target(s), {s.targets_ok} audited, {s.targets_failed} failed; "
        f"{s.findings} finding(s){' (' + sev + ')' if sev else ''}"
        + suppressed
        + f"; fail-on {s.fail_on}: exit {s.exit_code}"
    )


def render(
    report: Report,
    verbose: bool = False,
    width: int | None = None,
    color: bool = False,
    show_suppressed: bool = False,
    quiet: bool = False,
    **_: object,
) -> str:
    w = width or terminal.DEFAULT_WIDTH
    items: list[Any] = []
    common = _common_context(report.targets)
    if common and not quiet:
        items.append(terminal.text("every target:"))
        items.extend(terminal.text(c, indent=3) for c in common)
        items.append("")
    empty = [t for t in report.targets if _is_empty_config(t)]
    totals: Counter[Outcome] = Counter()
    for t in report.targets:
        totals.update(check_counts(t))
        if t in empty:
            continue
        if quiet and t.status is TargetStatus.ok and not _visible(t, show_suppressed):
            continue
        items.extend(_target_block(t, verbose, color, show_suppressed, quiet, set(common)))
        items.append("")
    if empty and not quiet:
        items.append(terminal.text(f"{len(empty)} file(s) without sysctl settings: nothing to check"))
        if verbose:
            items.extend(terminal.text(f"- {clean_text(t.name)}", indent=3) for t in empty)
    if "fleet" in report.extra and not quiet:
        from .fleet_view import fleet_renderables  # fleet sweeps add grouping and drift

        items.extend(fleet_renderables(report, color))
        items.append("")
    if totals and not quiet and len(report.targets) > 1:
        items.append(terminal.text(f"over {report.summary.targets_ok} target(s), {checks_line(totals, 'checks')}"))
    hidden = not show_suppressed and any(f.suppressed for t in report.targets for f in t.findings)
    items.append(terminal.text(summary_line(report, hidden), "bold" if color else None))
    return terminal.render(items, w, color)
