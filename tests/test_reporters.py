"""Reporters: golden files for every format from ONE shared report that covers every outcome, the official
SARIF 2.1.0 schema, JUnit parsed by junitparser, and hostile text that must not escape its field.

Regenerate the golden files after an intended change: TCPAUDIT_REGEN_GOLDEN=1 pytest tests/test_reporters.py
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import junitparser
import pytest

from tcpaudit.audit import build_report
from tcpaudit.catalogue import metas
from tcpaudit.model import (
    CheckResult,
    Finding,
    KernelRef,
    Location,
    Outcome,
    Report,
    Severity,
    Suppression,
    Target,
    TargetStatus,
)
from tcpaudit.reporters import FORMATS, _levels, render
from tcpaudit.rules.engine import fingerprint

GOLDEN = Path(__file__).resolve().parent / "golden"
SARIF_SCHEMA = Path(__file__).resolve().parents[1] / "fixtures/schemas/sarif-schema-2.1.0.json"
REGEN = os.environ.get("TCPAUDIT_REGEN_GOLDEN") == "1"
HOSTILE = "web-1\x1b[31m<b>&amp;</b>\"'\x00\u202e]]></failure>[click](https://evil.example) @admin `x` | *y*"
# Rule titles for the JUnit testcases that did not fire, fixed so the golden files do not follow catalogue edits.
TITLES = {
    "CT001": "conntrack drops the RST after a challenge ACK",
    "NAT001": "keepalive after the NAT idle timeout",
    "PORT999": "a rule that crashes",
    "SYS001": "sysctl key does not exist on the target kernel",
    "SYS002": "sysctl value is invalid for the key",
    "SYS003": "sysctl key is set more than once",
    "SYS004": "sysctl setting is written where it never applies",
    "TCP001": "tcp_tw_recycle is on",
}
GOLDEN_RULES = ("SYS001", "SYS002", "SYS003", "SYS004")  # full SARIF descriptors; others use the fallback


def _f(
    target: str,
    rule: str,
    sev: Severity,
    *,
    keys: list[str],
    explanation: str,
    location: Location | None = None,
    outcome: Outcome = Outcome.fail,
    suppressed: Suppression | None = None,
    evidence: dict | None = None,
    fix: dict[str, str] | None = None,
) -> Finding:
    f = Finding(
        rule=rule,
        severity=sev,
        title=TITLES[rule],
        outcome=outcome,
        keys=keys,
        explanation=explanation,
        evidence=evidence or {},
        remediation=f"Fix for {rule}.",
        references=[f"https://example.org/{rule}"],
        location=location,
        suppressed=suppressed,
        fix=fix or {},
        context=["clients behind NAT: yes (given)"] if rule == "TCP001" else [],
    )
    f.fingerprint = fingerprint(target, f)
    return f


def shared_report() -> Report:
    """pass, fail at every severity, not applicable, error, suppressed by waiver/baseline/inline, a config target
    with locations, a host target, an unreachable host, and hostile text."""
    conf = "rootfs/etc/sysctl.d/60-net.conf"
    config = Target(
        name="rootfs",
        kind="config",
        kernel=KernelRef(release="5.15.0", version="5.15.0"),
        files=["rootfs/usr/lib/sysctl.d/50-vendor.conf", conf],
        context=[
            "target kernel 5.15.0 (--kernel)",
            "applied in `sysctl --system` order: /usr/lib/sysctl.d/50-vendor.conf, /etc/sysctl.d/60-net.conf",
        ],
        findings=[
            _f(
                "rootfs",
                "SYS001",
                Severity.high,
                keys=["net.ipv4.tcp_tw_recycle"],
                location=Location(file=conf, line=3),
                explanation="net.ipv4.tcp_tw_recycle does not exist on Linux 5.15.0 (removed in 4.12).",
                evidence={"key": "net.ipv4.tcp_tw_recycle", "kernel": "5.15.0", "value": "1"},
            ),
            _f(
                "rootfs",
                "SYS001",
                Severity.low,
                keys=["net.ipv4.tcp_low_latency"],
                location=Location(file=conf, line=4),
                explanation="net.ipv4.tcp_low_latency does not exist; the '-' prefix ignores the failure.",
                evidence={"key": "net.ipv4.tcp_low_latency", "ignore_errors": True},
            ),
            _f(
                "rootfs",
                "SYS002",
                Severity.high,
                keys=["net.ipv4.tcp_keepalive_time"],
                location=Location(file=conf, line=5),
                explanation="'300 # five minutes' is not a number.",
                suppressed=Suppression(kind="inline", reason="tested on the lab hosts", source=f"{conf}:4"),
            ),
            _f(
                "rootfs",
                "SYS003",
                Severity.info,
                keys=["net.ipv4.tcp_fin_timeout"],
                location=Location(file=conf, line=6),
                explanation="net.ipv4.tcp_fin_timeout is set 2 times; the later assignment wins.",
                evidence={
                    "effective": "15",
                    "related_locations": [
                        {"file": "rootfs/usr/lib/sysctl.d/50-vendor.conf", "line": 1, "message": "earlier assignment"}
                    ],
                },
            ),
            _f(
                "rootfs",
                "SYS004",
                Severity.medium,
                keys=["net.ipv4.tcp_syn_retries"],
                location=Location(file=conf, line=7),
                explanation="not `key = value`: sysctl skips the line.",
                suppressed=Suppression(
                    kind="baseline",
                    reason="already present when the baseline was recorded on 2026-01-01",
                    source="baseline.json",
                ),
            ),
            _f(
                "rootfs",
                "TCP001",
                Severity.critical,
                keys=["net.ipv4.tcp_tw_recycle"],
                location=Location(file=conf, line=3),
                explanation="tcp_tw_recycle=1 drops SYNs from NATed clients.",
                suppressed=Suppression(
                    kind="waiver",
                    reason="el7 image, retired in Q3",
                    expires="2099-12-31",
                    source="waiver TCP001 target rootfs",
                ),
            ),
            _f(
                "rootfs",
                "PORT999",
                Severity.high,
                keys=[],
                outcome=Outcome.error,
                explanation="rule PORT999 crashed, so this target was NOT checked for it",
                evidence={"exception": "ZeroDivisionError: division by zero"},
            ),
        ],
        checks=[
            CheckResult(rule="CT001", outcome=Outcome.passed),
            CheckResult(rule="NAT001", outcome=Outcome.not_applicable, reason="no NAT idle timeout known"),
            CheckResult(rule="PORT999", outcome=Outcome.error, reason="ZeroDivisionError: division by zero"),
            *(CheckResult(rule=r, outcome=Outcome.fail) for r in ("SYS001", "SYS002", "SYS003", "SYS004", "TCP001")),
        ],
    )
    host = Target(
        name=HOSTILE,
        kind="host",
        kernel=KernelRef(release="3.10.0-1160.el7.x86_64", version="3.10.0"),
        context=[f"hint from the host: {HOSTILE}"],
        gaps=["conntrack: permission_denied (not root)"],
        findings=[
            _f(
                HOSTILE,
                "TCP001",
                Severity.critical,
                keys=["net.ipv4.tcp_tw_recycle"],
                explanation=f"SYNs are dropped; the host calls itself {HOSTILE}",
                evidence={"tcp_tw_recycle": "1", "hostname": HOSTILE},
                fix={"net.ipv4.tcp_tw_recycle": "0"},
            ),
            _f(
                HOSTILE,
                "NAT001",
                Severity.medium,
                keys=["net.ipv4.tcp_keepalive_time"],
                explanation="keepalive 7200 s is after the 350 s idle timeout.",
                evidence={"tcp_keepalive_time": "7200"},
            ),
        ],
        checks=[
            CheckResult(rule="TCP001", outcome=Outcome.fail),
            CheckResult(rule="NAT001", outcome=Outcome.fail),
            CheckResult(rule="CT001", outcome=Outcome.passed),
            CheckResult(rule="CT002", outcome=Outcome.unknown, reason="NAT rules not readable (needs root)"),
            CheckResult(rule="SYS001", outcome=Outcome.not_applicable, reason="not run on host targets"),
        ],
    )
    down = Target(
        name="db-2",
        kind="host",
        status=TargetStatus.unreachable,
        error="ssh: connect to host db-2 port 22: Connection refused",
    )
    report = build_report([config, host, down], "high")
    report.tool.version = "0.0.0-golden"
    return report


def rendered(fmt: str) -> str:
    report = shared_report()
    if fmt in ("sarif", "html"):
        return render(report, fmt, metas=[m for m in metas() if m.id in GOLDEN_RULES])
    if fmt == "junit":
        return render(report, fmt, titles=TITLES)
    if fmt == "prometheus":  # a fixed run and the golden rules only, so the file does not change with the clock
        report.extra["run"] = {"finished_at": 1.7e9, "duration_seconds": 1.5, "last_success_at": 1.6e9}
        rules = [(m.id, m.severity.value, m.title) for m in metas() if m.id in GOLDEN_RULES]
        return render(report, fmt, rules=rules)
    return render(report, fmt, verbose=True)


SUFFIX = {
    "table": "txt",
    "concise": "concise.txt",
    "json": "json",
    "sarif": "sarif",
    "junit": "xml",
    "markdown": "md",
    "html": "html",
    "prometheus": "prom",
}


@pytest.mark.parametrize("fmt", FORMATS)
def test_golden(fmt: str) -> None:
    path = GOLDEN / f"report.{SUFFIX[fmt]}"
    text = rendered(fmt)
    if REGEN or not path.exists():
        path.write_text(text, encoding="utf-8")
        if not REGEN:
            pytest.fail(f"{path.name} did not exist and was written; check it in")
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs; if intended: TCPAUDIT_REGEN_GOLDEN=1"


def test_the_shared_report_covers_every_outcome() -> None:
    r = shared_report()
    fs = [f for t in r.targets for f in t.findings]
    assert {f.severity.value for f in fs if f.outcome is Outcome.fail} == set(_levels.ORDER)
    assert {f.suppressed.kind for f in fs if f.suppressed} == {"waiver", "baseline", "inline"}
    assert {c.outcome for t in r.targets for c in t.checks} == set(Outcome)
    assert {t.kind for t in r.targets} == {"config", "host"}
    assert TargetStatus.unreachable in {t.status for t in r.targets}
    assert r.summary.exit_code == 3 and r.summary.suppressed == 3


# ---- SARIF ------------------------------------------------------------------------------------
def _sarif_validator() -> jsonschema.Draft4Validator:
    return jsonschema.Draft4Validator(json.loads(SARIF_SCHEMA.read_text()))


def test_sarif_validates_against_the_official_schema() -> None:
    v = _sarif_validator()
    errors = sorted(v.iter_errors(json.loads(rendered("sarif"))), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]
    full = json.loads(render(shared_report(), "sarif"))  # with the whole catalogue
    assert not list(v.iter_errors(full))


def test_sarif_content() -> None:
    run = json.loads(rendered("sarif"))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    by_id = {r["id"]: r for r in rules}
    sys001 = by_id["SYS001"]
    assert sys001["shortDescription"]["text"] and sys001["fullDescription"]["text"]
    assert sys001["helpUri"].startswith("https://") and "## Why it fails" in sys001["help"]["markdown"]
    assert sys001["properties"]["security-severity"] == "8.0"
    results = run["results"]
    assert len(results) == 9
    for r in results:
        assert rules[r["ruleIndex"]]["id"] == r["ruleId"]
        assert re.fullmatch(r"[0-9a-f]{32}", r["partialFingerprints"]["tcpaudit/v1"])
    levels = {(r["ruleId"], r["properties"]["severity"]): r["level"] for r in results}
    assert levels[("TCP001", "critical")] == "error" and levels[("NAT001", "medium")] == "warning"
    assert levels[("SYS003", "info")] == "note" and levels[("PORT999", "high")] == "error"
    config = [r for r in results if r["properties"]["targetKind"] == "config" and r["ruleId"] == "SYS001"][0]
    loc = config["locations"][0]["physicalLocation"]
    assert loc == {"artifactLocation": {"uri": "rootfs/etc/sysctl.d/60-net.conf"}, "region": {"startLine": 3}}
    host = [r for r in results if r["properties"]["targetKind"] == "host"][0]
    assert "physicalLocation" not in host["locations"][0] and host["locations"][0]["logicalLocations"]
    sups = {r["suppressions"][0]["kind"]: r["suppressions"][0] for r in results if "suppressions" in r}
    assert set(sups) == {"inSource", "external"}
    assert sups["inSource"]["justification"] == "tested on the lab hosts"
    dup = [r for r in results if r["ruleId"] == "SYS003"][0]
    assert dup["relatedLocations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("50-vendor.conf")
    inv = run["invocations"][0]
    assert inv["executionSuccessful"] is False
    assert "db-2: unreachable" in inv["toolExecutionNotifications"][0]["message"]["text"]


# ---- JUnit ------------------------------------------------------------------------------------
def test_junit_parses_and_counts() -> None:
    xml = junitparser.JUnitXml.fromstring(rendered("junit"))
    suites = {s.name: s for s in xml}
    assert set(suites) == {"rootfs", "db-2", next(n for n in suites if n.startswith("web-1"))}
    rootfs = suites["rootfs"]
    outcome = {}
    for case in rootfs:
        kinds = {type(r).__name__ for r in case.result}
        outcome[case.name.split(":")[0]] = kinds.pop() if kinds else "pass"
    assert outcome == {
        "CT001": "pass",
        "NAT001": "Skipped",
        "PORT999": "Error",
        "SYS001": "Failure",
        "SYS002": "Skipped",
        "SYS003": "Failure",
        "SYS004": "Skipped",
        "TCP001": "Skipped",
    }
    assert (rootfs.tests, rootfs.failures, rootfs.errors, rootfs.skipped) == (8, 2, 1, 4)
    skipped = {
        c.name.split(":")[0]: c.result[0].message
        for c in rootfs
        if c.result and isinstance(c.result[0], junitparser.Skipped)
    }
    assert skipped["TCP001"] == "suppressed by waiver: el7 image, retired in Q3"
    assert skipped["NAT001"] == "not applicable: no NAT idle timeout known"
    (down,) = list(suites["db-2"])
    assert isinstance(down.result[0], junitparser.Error) and "unreachable" in down.result[0].message


def test_junit_survives_hostile_text() -> None:
    text = rendered("junit")
    ET.fromstring(text.split("\n", 1)[1])  # well-formed
    assert "\x1b" not in text and "\x00" not in text and "\u202e" not in text
    assert "]]></failure>[click]" not in text


# ---- Markdown and hostile text everywhere ----------------------------------------------------
def test_markdown_structure_and_escaping() -> None:
    md = rendered("markdown")
    assert md.startswith("## tcpaudit: failed")
    heads = re.findall(r"^### (?:[^\w\s]+ )?(.+?) \((\d+)\)$", md, re.M)
    assert [h[0] for h in heads] == ["Critical", "High", "Medium", "Low", "Info", "Not collected"]
    assert "<b>" not in md and "[click](" not in md and "@admin" not in md and "`x`" not in md
    assert "&lt;b&gt;" in md and "\\[click\\]" in md
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("|---"):
            assert line.count(" | ") == 5, line  # hostile pipes cannot add cells


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_raw_control_characters(fmt: str) -> None:
    text = rendered(fmt)
    assert "\x1b" not in text and "\x00" not in text
    if fmt != "json":  # JSON is data: json.dumps escapes C0 controls, consumers own the rest
        assert "\u202e" not in text


def test_one_severity_mapping() -> None:
    assert [_levels.sarif_level(s) for s in _levels.ORDER] == ["note", "note", "warning", "error", "error"]
    assert [_levels.rank(s) for s in Severity] == [0, 1, 2, 3, 4]
    assert _levels.label("high") == "HIGH"


def test_sarif_gives_unlocated_config_findings_the_file_applied_last() -> None:
    """Code scanning does not show results without a file: a finding about a key the configuration does not set
    goes to line 1 of the file that takes precedence; host results keep logical locations only."""
    config = Target(
        name="rootfs",
        kind="config",
        files=["rootfs/usr/lib/sysctl.d/50-vendor.conf", "rootfs/etc/sysctl.d/60-net.conf"],
        findings=[
            _f(
                "rootfs",
                "NAT001",
                Severity.medium,
                keys=["net.ipv4.tcp_keepalive_time"],
                explanation="kernel default 7200 s is after the 240 s idle timeout.",
            )
        ],
    )
    host = Target(
        name="web1",
        kind="host",
        findings=[_f("web1", "NAT001", Severity.medium, keys=["net.ipv4.tcp_keepalive_time"], explanation="x")],
    )
    doc = json.loads(render(build_report([config, host], "high"), "sarif", metas=[]))
    on_config, on_host = doc["runs"][0]["results"]
    (loc,) = on_config["locations"]
    assert loc["physicalLocation"] == {
        "artifactLocation": {"uri": "rootfs/etc/sysctl.d/60-net.conf"},
        "region": {"startLine": 1},
    }
    assert loc["logicalLocations"][0]["name"] == "net.ipv4.tcp_keepalive_time"
    assert "physicalLocation" not in on_host["locations"][0]
    v = _sarif_validator()
    assert not list(v.iter_errors(doc))


def test_markdown_does_not_repeat_a_target_named_after_its_file() -> None:
    loc = Location(file="k.conf", line=5)
    single = Target(
        name="k.conf",
        kind="config",
        files=["k.conf"],
        findings=[
            _f("k.conf", "SYS003", Severity.info, keys=["net.ipv4.tcp_fin_timeout"], location=loc, explanation="x"),
            _f(
                "k.conf",
                "SYS002",
                Severity.high,
                keys=["net.ipv4.tcp_keepalive_time"],
                location=loc,
                explanation="y",
                suppressed=Suppression(kind="inline", reason="lab only"),
            ),
        ],
    )
    md = render(build_report([single], "high"), "markdown")
    items = [line for line in md.splitlines() if line.startswith("- **SYS")]
    assert len(items) == 2 and all("— at k.conf:5" in i and "target k.conf" not in i for i in items), items
    assert "target rootfs at rootfs/etc/sysctl.d/60-net.conf:3" in rendered("markdown")
