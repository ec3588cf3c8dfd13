"""JUnit XML for CI test reports (GitLab `artifacts:reports:junit`, Jenkins, Azure DevOps).

One testsuite per target and one testcase per rule per target: pass (empty), failure (the
findings, worst severity as the type), skipped (not applicable, or every finding suppressed,
with the reason), error (the rule crashed). A target that could not be collected is one
`collect` testcase with an error. All text goes through clean_text, so hostile host names or
file contents cannot produce invalid XML.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections import defaultdict

from ..model import CheckResult, Finding, Outcome, Report, Target, TargetStatus
from ..sanitize import clean_text
from . import _levels


def _x(value: object, limit: int | None = None) -> str:
    return clean_text(value, limit, keep_newlines=True)


def _where(f: Finding) -> str:
    if f.location is None:
        return ""
    return f" [{f.location.file}:{f.location.line}]" if f.location.line else f" [{f.location.file}]"


def _finding_text(f: Finding) -> str:
    lines = [f"{_levels.label(f.severity)} {f.rule}{_where(f)}: {f.title}"]
    if f.suppressed is not None:
        lines[0] += f" (suppressed by {f.suppressed.kind}: {f.suppressed.reason})"
    if f.explanation:
        lines.append(f"  why: {f.explanation}")
    ev = "; ".join(f"{k}={v}" for k, v in f.evidence.items() if not isinstance(v, (dict, list)))
    if ev:
        lines.append(f"  evidence: {ev}")
    if f.remediation:
        lines.append(f"  fix: {f.remediation}")
    return "\n".join(lines)


def _testcase(
    suite: ET.Element,
    t: Target,
    check: CheckResult,
    findings: list[Finding],
    counts: dict[str, int],
    titles: dict[str, str],
) -> None:
    title = findings[0].title if findings else titles.get(check.rule, "")
    case = ET.SubElement(
        suite,
        "testcase",
        {
            "name": _x(f"{check.rule}: {title}" if title else check.rule, 300),
            "classname": _x(f"tcpaudit.{t.kind}.{t.name}", 300),
            "time": "0",
        },
    )
    located = next((f for f in findings if f.location is not None), None)
    if located is not None and located.location is not None:
        case.set("file", _x(located.location.file, 500))
        if located.location.line:
            case.set("line", str(located.location.line))
    counts["tests"] += 1
    errors = [f for f in findings if f.outcome is Outcome.error]
    active = [f for f in findings if f.outcome is Outcome.fail and f.suppressed is None]
    suppressed = [f for f in findings if f.outcome is Outcome.fail and f.suppressed is not None]
    if errors or check.outcome is Outcome.error:
        counts["errors"] += 1
        reason = errors[0].evidence.get("exception", check.reason) if errors else check.reason
        el = ET.SubElement(case, "error", {"message": _x(f"rule {check.rule} crashed: {reason}", 500), "type": "error"})
        el.text = _x("\n\n".join(_finding_text(f) for f in errors) or reason)
    elif active:
        counts["failures"] += 1
        worst = max(active, key=lambda f: f.severity.rank)
        msg = f"{_levels.label(worst.severity)}: {worst.title}{_where(worst)}"
        if len(active) > 1:
            msg += f" (+{len(active) - 1} more)"
        el = ET.SubElement(case, "failure", {"message": _x(msg, 500), "type": worst.severity.value})
        el.text = _x("\n\n".join(_finding_text(f) for f in active + suppressed))
    elif suppressed:
        counts["skipped"] += 1
        s = suppressed[0].suppressed
        assert s is not None
        ET.SubElement(case, "skipped", {"message": _x(f"suppressed by {s.kind}: {s.reason}", 500)})
    elif check.outcome is Outcome.not_applicable:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", {"message": _x(f"not applicable: {check.reason}", 500)})
    elif check.outcome is Outcome.unknown:
        counts["skipped"] += 1
        ET.SubElement(case, "skipped", {"message": _x(f"unknown (not checked): {check.reason}", 500)})


def _suite(root: ET.Element, t: Target, totals: dict[str, int], titles: dict[str, str]) -> None:
    counts: dict[str, int] = defaultdict(int)
    suite = ET.SubElement(root, "testsuite", {"name": _x(t.name, 300)})
    props = ET.SubElement(suite, "properties")
    for name, value in [("kind", t.kind), ("status", t.status.value), ("kernel", t.kernel.release or "unknown")]:
        ET.SubElement(props, "property", {"name": name, "value": _x(value, 300)})
    if t.status is not TargetStatus.ok:
        counts["tests"] += 1
        counts["errors"] += 1
        case = ET.SubElement(
            suite, "testcase", {"name": "collect", "classname": _x(f"tcpaudit.{t.kind}.{t.name}", 300), "time": "0"}
        )
        el = ET.SubElement(
            case, "error", {"message": _x(f"{t.status.value}: {t.error or ''}", 500), "type": t.status.value}
        )
        el.text = _x(t.error or t.status.value)
    by_rule: dict[str, list[Finding]] = defaultdict(list)
    for f in t.findings:
        by_rule[f.rule].append(f)
    checks = list(t.checks)
    checked = {c.rule for c in checks}
    checks += [CheckResult(rule=r, outcome=fs[0].outcome) for r, fs in by_rule.items() if r not in checked]
    for c in checks:
        _testcase(suite, t, c, by_rule.get(c.rule, []), counts, titles)
    out = [*t.context, *(f"not collected: {g}" for g in t.gaps)]
    if out:
        ET.SubElement(suite, "system-out").text = _x("\n".join(out))
    for k in ("tests", "failures", "errors", "skipped"):
        suite.set(k, str(counts[k]))
        totals[k] += counts[k]
    suite.set("time", "0")


def render(report: Report, titles: dict[str, str] | None = None, **_: object) -> str:
    if titles is None:
        from ..catalogue import metas

        titles = {m.id: m.title for m in metas()}
    totals: dict[str, int] = defaultdict(int)
    root = ET.Element("testsuites", {"name": "tcpaudit"})
    for t in report.targets:
        _suite(root, t, totals, titles)
    for k in ("tests", "failures", "errors", "skipped"):
        root.set(k, str(totals[k]))
    root.set("time", "0")
    ET.indent(root, space="  ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
