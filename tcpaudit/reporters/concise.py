"""`--format concise`: one finding per line, for editors (errorformat, problem matchers) and grep.

`FILE:LINE: RULE severity title (fix: key = value)` for config findings, `TARGET: RULE severity title ...` for
host findings; suppressed findings only with --show-suppressed (marked so); then the summary line. Lines are never
wrapped (one finding, one line); colour only when asked.
"""

from __future__ import annotations

from ..model import Finding, Outcome, Report, Target
from ..sanitize import clean_text
from . import _levels
from .table import fix_lines, headline_evidence, location_key, location_text, summary_line

_SGR = {"critical": "1;41;37", "high": "1;31", "medium": "33", "low": "36", "info": "2"}


def finding_line(t: Target, f: Finding, color: bool = False) -> str:
    where = location_text(f) or clean_text(t.name)
    sev = "error" if f.outcome is Outcome.error else f.severity.value
    if color:
        sev = f"\x1b[{_SGR.get(f.severity.value, '0')}m{sev}\x1b[0m"
    text = f"{where}: {f.rule} {sev} {clean_text(f.title)}"
    ev = headline_evidence(f)[:2]
    if ev:
        text += f" [{'; '.join(ev)}]"
    fixes = [x.removeprefix("fix: ") for x in fix_lines(f)]
    if fixes:
        text += f" (fix: {', '.join(fixes)})"
    if f.suppressed is not None:
        text += f" (suppressed, {f.suppressed.kind}: {clean_text(f.suppressed.reason)})"
    return text


def render(report: Report, color: bool = False, show_suppressed: bool = False, **_: object) -> str:
    lines: list[str] = []
    for t in report.targets:
        if t.error:
            lines.append(f"{clean_text(t.name)}: {t.status.value}: {clean_text(t.error)}")
        for f in sorted(t.findings, key=lambda x: (location_key(x), -_levels.rank(x.severity), x.rule)):
            if f.suppressed is None or show_suppressed:
                lines.append(finding_line(t, f, color))
        for c in t.checks:
            if c.outcome in (Outcome.unknown, Outcome.error) and not any(f.rule == c.rule for f in t.findings):
                lines.append(f"{clean_text(t.name)}: {c.rule} {c.outcome.value} {clean_text(c.reason)}")
    hidden = not show_suppressed and any(f.suppressed for t in report.targets for f in t.findings)
    lines.append(summary_line(report, hidden))
    return "\n".join(lines) + "\n"
