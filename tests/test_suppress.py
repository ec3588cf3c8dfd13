"""Suppressions: inline comments, waivers (with expiry) and baselines, applied after the rules ran."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from tcpaudit.audit import AuditOptions, audit_snapshot, build_report
from tcpaudit.config import Waiver
from tcpaudit.lint.model import InlineIgnore
from tcpaudit.loading import load_snapshot_file
from tcpaudit.model import Finding, Location, Outcome, Severity, Target
from tcpaudit.suppress import Baseline, BaselineError, apply_suppressions, dump_baseline, load_baseline, make_baseline

from .cli import ROOT

TODAY = dt.date(2026, 6, 1)
LOC = Location(file="etc/sysctl.d/60-net.conf", line=3)


def target(*findings: Finding, name: str = "rootfs") -> Target:
    return Target(name=name, kind="config", findings=list(findings))


def finding(
    rule: str = "SYS001",
    sev: Severity = Severity.high,
    fp: str = "fp1",
    loc: Location | None = LOC,
    outcome: Outcome = Outcome.fail,
) -> Finding:
    return Finding(
        rule=rule,
        severity=sev,
        title="t",
        outcome=outcome,
        keys=["net.ipv4.tcp_tw_recycle"],
        explanation="why",
        location=loc,
        fingerprint=fp,
    )


def waiver(expires: dt.date | None, rule: str = "SYS001", target: str = "root*") -> Waiver:
    return Waiver(rule=rule, target=target, reason="el7 still boots this image", expires=expires)


@pytest.mark.parametrize(
    "expires,suppressed",
    [(TODAY, True), (TODAY + dt.timedelta(days=1), True), (None, True), (TODAY - dt.timedelta(days=1), False)],
)
def test_waiver_is_valid_through_its_expiry_date(expires: dt.date | None, suppressed: bool) -> None:
    t = apply_suppressions(target(finding()), waivers=[waiver(expires)], today=TODAY)
    f = t.findings[0]
    assert (f.suppressed is not None) is suppressed
    if suppressed:
        assert f.suppressed.kind == "waiver" and f.suppressed.reason == "el7 still boots this image"
    else:
        assert f.evidence["waiver"].startswith(f"waiver expired on {expires}")
        assert f"expired on {expires}" in f.explanation


def test_expired_note_is_added_once() -> None:
    t = target(finding())
    for _ in range(2):
        apply_suppressions(t, waivers=[waiver(dt.date(2020, 1, 1))], today=TODAY)
    assert t.findings[0].explanation.count("expired on") == 1


def test_waiver_matches_rule_and_target_or_file_glob() -> None:
    assert apply_suppressions(target(finding()), waivers=[waiver(None, rule="TCP001")]).findings[0].suppressed is None
    assert apply_suppressions(target(finding(), name="web-1"), waivers=[waiver(None)]).findings[0].suppressed is None
    by_file = waiver(None, target="etc/sysctl.d/*.conf")
    assert apply_suppressions(target(finding(), name="web-1"), waivers=[by_file]).findings[0].suppressed is not None
    lower = waiver(None, rule="sys001")
    assert apply_suppressions(target(finding()), waivers=[lower]).findings[0].suppressed is not None


def test_precedence_inline_then_waiver_then_baseline() -> None:
    ig = InlineIgnore(
        rules=frozenset({"SYS001"}), reason="inline reason", location=LOC, directive=Location(file=LOC.file, line=2)
    )
    base = Baseline(fingerprints={"fp1": {"rule": "SYS001", "target": "rootfs"}}, created="2026-01-01T00:00:00Z")
    f = apply_suppressions(target(finding()), waivers=[waiver(None)], baseline=base, inline=[ig]).findings[0]
    assert f.suppressed.kind == "inline" and f.suppressed.source == f"{LOC.file}:2"
    f = apply_suppressions(target(finding()), waivers=[waiver(None)], baseline=base).findings[0]
    assert f.suppressed.kind == "waiver"
    f = apply_suppressions(target(finding()), baseline=base).findings[0]
    assert f.suppressed.kind == "baseline" and "2026-01-01" in f.suppressed.reason


def test_inline_needs_the_same_line_and_rule() -> None:
    ig = InlineIgnore(
        rules=frozenset({"SYS001"}),
        reason="r",
        location=Location(file=LOC.file, line=4),
        directive=Location(file=LOC.file, line=4),
    )
    assert apply_suppressions(target(finding()), inline=[ig]).findings[0].suppressed is None
    ig2 = InlineIgnore(rules=frozenset({"SYS002"}), reason="r", location=LOC, directive=LOC)
    assert apply_suppressions(target(finding()), inline=[ig2]).findings[0].suppressed is None


def test_error_outcomes_are_never_suppressed() -> None:
    base = Baseline(fingerprints={"fp1": {"rule": "SYS001", "target": "rootfs"}})
    f = apply_suppressions(target(finding(outcome=Outcome.error)), waivers=[waiver(None)], baseline=base).findings[0]
    assert f.suppressed is None


def test_suppressed_findings_do_not_gate_but_are_counted() -> None:
    t = apply_suppressions(
        target(finding(sev=Severity.critical), finding("SYS003", Severity.info, fp="fp2")), waivers=[waiver(None)]
    )
    r = build_report([t], "high")
    assert r.summary.exit_code == 0 and r.summary.suppressed == 1 and r.summary.findings == 1


def test_baseline_round_trip(tmp_path: Path) -> None:
    t = target(finding(), finding("SYS002", fp="fp2"))
    t.findings[1].suppressed = None
    apply_suppressions(t, waivers=[waiver(None, rule="SYS002")])
    b = make_baseline([t], now=dt.datetime(2026, 1, 2, tzinfo=dt.timezone.utc))
    assert list(b.fingerprints) == ["fp1"], "waived findings stay out, so the waiver can still expire"
    p = tmp_path / "b.json"
    p.write_text(dump_baseline(b))
    loaded = load_baseline(p)
    assert loaded.fingerprints["fp1"].rule == "SYS001" and loaded.path == str(p)
    assert loaded.created == "2026-01-02T00:00:00Z"


@pytest.mark.parametrize("text", ["", "[]", '{"version": 99}', '{"fingerprints": 3}'])
def test_bad_baselines_are_one_line_errors(tmp_path: Path, text: str) -> None:
    p = tmp_path / "b.json"
    p.write_text(text)
    with pytest.raises(BaselineError, match=str(p)):
        load_baseline(p)
    with pytest.raises(BaselineError, match="cannot read"):
        load_baseline(tmp_path / "missing.json")


def test_host_audits_apply_waivers_and_baselines() -> None:
    snap = load_snapshot_file(ROOT / "fixtures/snapshots/centos7-3.10.0-327-tw-recycle.json")
    opts = AuditOptions(waivers=[Waiver(rule="TCP001", target="vm*", reason="legacy host, retired in Q3")])
    t = audit_snapshot(snap, opts)
    (f,) = [f for f in t.findings if f.rule == "TCP001"]
    assert f.suppressed is not None and f.suppressed.kind == "waiver"
    base = make_baseline([audit_snapshot(snap)])
    t2 = audit_snapshot(snap, AuditOptions(baseline=base))
    assert all(f.suppressed is not None for f in t2.findings if f.outcome is Outcome.fail)


def test_a_baseline_that_is_not_utf8_is_a_baseline_error(tmp_path: Path) -> None:
    p = tmp_path / "bin.conf"
    p.write_bytes(b"\xff\xfe\x00garbage\x80")
    with pytest.raises(BaselineError, match=f"{p}: not a tcpaudit baseline"):
        load_baseline(p)


def test_a_waiver_must_name_a_known_rule_or_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from tcpaudit.rules import engine

    with pytest.raises(ValidationError, match="unknown rule 'SYS01'; did you mean SYS001?"):
        Waiver(rule="SYS01", reason="el7 still boots this image")
    assert Waiver(rule="tcp001", reason="el7 still boots this image").rule == "tcp001"
    real = engine.catalogue()
    renamed = real[0].meta.model_copy(update={"aliases": ["OLD042"]})
    fake = type("Renamed", (), {"meta": renamed})()
    monkeypatch.setattr(engine, "catalogue", lambda: (fake, *real[1:]))
    assert Waiver(rule="OLD042", reason="renamed rules keep their old ids").rule == "OLD042"
