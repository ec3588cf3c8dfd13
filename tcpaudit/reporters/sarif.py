"""SARIF 2.1.0 for code scanning (GitHub code scanning, GitLab, Azure DevOps, IDE viewers).

- one run; `tool.driver.rules` comes from the rule catalogue (not from the findings), with the
  help text of `tcpaudit explain`;
- one result per finding: level from the shared severity mapping, a physical location (file and
  line) for config targets (line 1 of the file applied last when the finding is about a key the
  configuration does not set), a logical location (target/key) for hosts, a stable
  `partialFingerprints` entry, and `suppressions` (inSource for inline comments, external for
  waivers and baselines) for suppressed findings;
- error outcomes (a rule crashed) are results with level error; targets that could not be
  collected are tool execution notifications and make `executionSuccessful` false.

Every string that came from a host, a file or a user passes through clean_text.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote

from ..model import Finding, Outcome, Report, Target, TargetStatus
from ..sanitize import clean_text, clean_tree
from . import _levels

SCHEMA_URI = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
FINGERPRINT_KEY = "tcpaudit/v1"


def _t(value: object, limit: int | None = None) -> str:
    return clean_text(value, limit, keep_newlines=True)


def _uri(path: str) -> str:
    p = path.replace("\\", "/")
    if p.startswith("/"):
        return "file://" + quote(p)
    return quote(str(PurePosixPath(p)))


def _rule_descriptor(m: Any) -> dict[str, Any]:
    from ..catalogue import rule_markdown

    refs = [r.url for r in m.references]
    props: dict[str, Any] = {
        "tags": ["reliability", "networking", m.group.lower()],
        "precision": "high",
        "defaultSeverity": m.severity.value,
    }
    if m.severity.value != "info":
        props["security-severity"] = _levels.security_severity(m.severity)
    if refs:
        props["references"] = refs
    d: dict[str, Any] = {
        "id": m.id,
        "name": m.id,
        "shortDescription": {"text": _t(m.title)},
        "fullDescription": {"text": _t(m.summary)},
        "help": {"text": _t(f"{m.summary}\n\nRemediation: {m.remediation}"), "markdown": _t(rule_markdown(m))},
        "defaultConfiguration": {"level": _levels.sarif_level(m.severity)},
        "properties": props,
    }
    if refs:
        d["helpUri"] = refs[0]
    if m.aliases:
        d["deprecatedIds"] = list(m.aliases)
    return d


def _fallback_descriptor(rule_id: str, title: str) -> dict[str, Any]:
    return {"id": _t(rule_id, 40), "name": _t(rule_id, 40), "shortDescription": {"text": _t(title or rule_id, 200)}}


def _locations(t: Target, f: Finding) -> list[dict[str, Any]]:
    logical = {
        "name": _t(f.keys[0]) if f.keys else _t(t.name),
        "fullyQualifiedName": _t(f"{t.name}/{f.keys[0]}" if f.keys else t.name),
        "kind": "resource",
    }
    if f.location is not None:
        phys: dict[str, Any] = {"artifactLocation": {"uri": _uri(_t(f.location.file))}}
        if f.location.line and f.location.line > 0:
            phys["region"] = {"startLine": f.location.line}
        return [{"physicalLocation": phys, "logicalLocations": [logical]}]
    if t.kind == "config" and t.files:
        # A finding about a key the configuration does not set (the kernel default is judged) has no line of its
        # own, but code scanning drops results without a file: put it at the top of the file that takes
        # precedence, the one applied last, where a line that sets the key would win.
        return [
            {
                "physicalLocation": {"artifactLocation": {"uri": _uri(_t(t.files[-1]))}, "region": {"startLine": 1}},
                "logicalLocations": [logical],
            }
        ]
    return [{"logicalLocations": [logical]}]


def _related(f: Finding) -> list[dict[str, Any]]:
    out = []
    for i, rel in enumerate(f.evidence.get("related_locations") or [], 1):
        if not isinstance(rel, dict) or not rel.get("file"):
            continue
        phys: dict[str, Any] = {"artifactLocation": {"uri": _uri(_t(rel["file"]))}}
        if isinstance(rel.get("line"), int) and rel["line"] > 0:
            phys["region"] = {"startLine": rel["line"]}
        out.append({"id": i, "physicalLocation": phys, "message": {"text": _t(rel.get("message", ""), 300)}})
    return out


def _result(t: Target, f: Finding, index: dict[str, int]) -> dict[str, Any]:
    error = f.outcome is Outcome.error
    text = f"{f.title}: {f.explanation}" if f.explanation else f.title
    evidence = {k: v for k, v in f.evidence.items() if k != "related_locations"}
    props: dict[str, Any] = {
        "severity": f.severity.value,
        "outcome": f.outcome.value,
        "target": _t(t.name),
        "targetKind": t.kind,
        "keys": [_t(k) for k in f.keys],
        "evidence": clean_tree(evidence),
        "remediation": _t(f.remediation),
    }
    if f.context:
        props["context"] = [_t(c) for c in f.context]
    if f.fix:
        props["fix"] = clean_tree(f.fix)
    r: dict[str, Any] = {
        "ruleId": _t(f.rule, 40),
        "level": "error" if error else _levels.sarif_level(f.severity),
        "kind": "fail",
        "message": {"text": _t(("rule crashed, target not checked: " if error else "") + text, 4000)},
        "locations": _locations(t, f),
        "properties": props,
    }
    if f.rule in index:
        r["ruleIndex"] = index[f.rule]
    if f.fingerprint:
        r["partialFingerprints"] = {FINGERPRINT_KEY: f.fingerprint}
    related = _related(f)
    if related:
        r["relatedLocations"] = related
    if f.suppressed is not None:
        s = f.suppressed
        sup: dict[str, Any] = {
            "kind": "inSource" if s.kind == "inline" else "external",
            "status": "accepted",
            "justification": _t(s.reason, 1000),
            "properties": {"tcpauditKind": s.kind},
        }
        if s.expires:
            sup["properties"]["expires"] = s.expires
        if s.source:
            sup["properties"]["source"] = _t(s.source, 300)
        r["suppressions"] = [sup]
    return r


def render(report: Report, metas: list[Any] | None = None, **_: object) -> str:
    """`metas` defaults to the whole catalogue (tests pass a fixed list to keep golden files stable)."""
    if metas is None:
        from ..catalogue import metas as catalogue_metas

        metas = catalogue_metas()
    rules = [_rule_descriptor(m) for m in metas]
    index = {m.id: i for i, m in enumerate(metas)}
    titles = {f.rule: f.title for t in report.targets for f in t.findings}
    used = list(dict.fromkeys([c.rule for t in report.targets for c in t.checks] + list(titles)))
    for rid in used:
        if rid not in index:
            index[rid] = len(rules)
            rules.append(_fallback_descriptor(rid, titles.get(rid, "")))
    results = [_result(t, f, index) for t in report.targets for f in t.findings]
    notes = [
        {
            "level": "error",
            "message": {"text": _t(f"{t.name}: {t.status.value}" + (f": {t.error}" if t.error else ""), 1000)},
            "properties": {"target": _t(t.name), "status": t.status.value},
        }
        for t in report.targets
        if t.status is not TargetStatus.ok
    ]
    crashed = any(f.outcome is Outcome.error for t in report.targets for f in t.findings)
    invocation: dict[str, Any] = {
        "executionSuccessful": not notes and not crashed,
        "exitCode": int(report.summary.exit_code),
    }
    if notes:
        invocation["toolExecutionNotifications"] = notes
    run = {
        "tool": {
            "driver": {
                "name": report.tool.name,
                "version": report.tool.version,
                "semanticVersion": report.tool.version,
                "rules": rules,
            }
        },
        "invocations": [invocation],
        "results": results,
        "columnKind": "unicodeCodePoints",
        "properties": {
            "summary": report.summary.model_dump(mode="json"),
            "targets": [
                {
                    "name": _t(t.name),
                    "kind": t.kind,
                    "status": t.status.value,
                    "kernel": _t(t.kernel.release or ""),
                    "context": [_t(c) for c in t.context],
                }
                for t in report.targets
            ],
        },
    }
    doc = {"$schema": SCHEMA_URI, "version": "2.1.0", "runs": [run]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
