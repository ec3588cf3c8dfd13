"""The Prometheus exposition (tcpaudit.reporters.prometheus) and atomic, locked output files (tcpaudit.atomicfile).

The exposition is checked with the Prometheus project's own tools: prometheus-client's parser and `promtool
check metrics` (Debian's prometheus package). Bad output paths run the real CLI: a missing directory, a
read-only and a full filesystem (small tmpfs mounts the test makes and removes; root only), a second writer.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tcpaudit.atomicfile import OutputError, WriterLock, write_atomic
from tcpaudit.audit import audit_snapshot, build_report
from tcpaudit.loading import load_snapshot_file
from tcpaudit.model import Finding, NetnsInfo, Severity, Target, TargetStatus
from tcpaudit.reporters import render
from tcpaudit.reporters.prometheus import NETNS_SKIP_REASONS, SEVERITIES, catalogue_rules

from .cli import ROOT, run
from .fsfaults import fill, small_tmpfs

SNAPSHOT = ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json"
PROMTOOL = shutil.which("promtool")


def host_target() -> Target:
    return audit_snapshot(load_snapshot_file(SNAPSHOT))


def netns_target(i: int, rules: list[tuple[str, Severity]], **kw: object) -> Target:
    info = NetnsInfo(
        inode=4026530000 + i, name=f"pod-{i}", name_source="pod-log-dir", pod_uid=f"uid-{i:04d}", pod=f"ns/p{i}"
    )
    findings = [Finding(rule=r, severity=s, title="t") for r, s in rules]
    measurements = {
        "usable_ephemeral_ports": 28232,
        "time_wait_sockets": i,
        "tcp_keepalive_time_seconds": 7200,
        "conntrack_entries": 3,
        "conntrack_entries_limit": 262144,
        "paws_rejects:PAWSActive": 0,
        "paws_rejects:PAWSEstab": 1,
        "paws_rejects:PAWSPassive": 2,
        "paws_rejects:PAWSOldAck": 0,
        "paws_rejects:PAWSTimewait": 0,
    }
    return Target(name=f"netns:pod-{i}", kind="netns", netns=info, findings=findings, measurements=measurements, **kw)  # type: ignore[arg-type]


def parse(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, []).append((dict(s.labels), s.value))
            assert s.timestamp is None, "no timestamps in the exposition"
    return out


def promtool_check(text: str) -> None:
    if PROMTOOL is None:
        pytest.skip("promtool (Debian package prometheus) is not installed")
    p = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr


def test_host_exposition_zeros_for_every_rule_and_severity() -> None:
    report = build_report([host_target()])
    text = render(report, "prometheus")
    promtool_check(text)
    m = parse(text)
    rules = [r for r, _, _ in catalogue_rules()]
    series = {(lab["rule"], lab["severity"], lab["scope"]): v for lab, v in m["tcpaudit_findings"]}
    assert set(series) == {(r, s, "host") for r in rules for s in SEVERITIES}  # no netns scope without --all-netns
    fired = Counter((f.rule, f.severity.value) for f in report.targets[0].findings if f.suppressed is None)
    assert fired, "the fixture must fire something"
    for (rule, sev, _), value in series.items():
        assert value == fired.get((rule, sev), 0)
    assert series[("TCP001", "critical", "host")] + series[("TCP001", "high", "host")] >= 1
    assert {lab["rule"] for lab, _ in m["tcpaudit_rule_info"]} == set(rules)
    assert m["tcpaudit_run_success"] == [({}, 1.0)]
    assert m["tcpaudit_build_info"][0][0]["version"]
    assert "tcpaudit_netns_inspected" not in m and "tcpaudit_netns_findings" not in m
    # the fixture's own evidence, one unit each
    assert m["tcpaudit_tcp_keepalive_time_seconds"][0][1] > 0
    assert m["tcpaudit_usable_ephemeral_ports"][0][0] == {"scope": "host", "pod_uid": "", "netns_inode": ""}


def test_naming_practice() -> None:
    report = build_report([host_target(), netns_target(1, [("TCP003", Severity.low)])])
    text = render(report, "prometheus")
    helps = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# HELP ")]
    types = {ln.split()[2]: ln.split()[3] for ln in text.splitlines() if ln.startswith("# TYPE ")}
    assert len(helps) == len(set(helps)) == len(types)
    for name, kind in types.items():
        assert name.startswith("tcpaudit_")
        assert name.endswith("_total") == (kind == "counter"), name
        assert not name.endswith(("_milliseconds", "_ms", "_bytes_total")), name
    assert types["tcpaudit_rule_info"] == types["tcpaudit_build_info"] == "gauge"
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            assert not {"namespace", "pod", "instance", "job"} & set(s.labels), s


def test_netns_scope_detail_only_where_fired() -> None:
    skipped_gone = Target(name="netns:gone", kind="netns", status=TargetStatus.skipped, error="gone")
    skipped_denied = Target(
        name="netns:x", kind="netns", status=TargetStatus.skipped, error="setns: Operation not permitted"
    )
    targets = [
        host_target(),
        netns_target(1, [("TCP003", Severity.medium), ("NAT001", Severity.low)]),
        netns_target(2, [("TCP003", Severity.medium)]),
        netns_target(3, []),
        skipped_gone,
        skipped_denied,
    ]
    text = render(build_report(targets), "prometheus")
    promtool_check(text)
    m = parse(text)
    netns = {(lab["rule"], lab["severity"]): v for lab, v in m["tcpaudit_findings"] if lab["scope"] == "netns"}
    assert len(netns) == len(catalogue_rules()) * len(SEVERITIES)
    assert netns[("TCP003", "medium")] == 2 and netns[("NAT001", "low")] == 1 and netns[("TCP001", "critical")] == 0
    detail = {(lab["rule"], lab["pod_uid"], lab["netns_inode"]): v for lab, v in m["tcpaudit_netns_findings"]}
    assert detail == {
        ("NAT001", "uid-0001", "4026530001"): 1,
        ("TCP003", "uid-0001", "4026530001"): 1,
        ("TCP003", "uid-0002", "4026530002"): 1,
    }
    assert m["tcpaudit_netns_inspected"] == [({}, 3.0)]
    skipped = {lab["reason"]: v for lab, v in m["tcpaudit_netns_skipped"]}
    assert skipped == {"gone": 1, "permission_denied": 1, "error": 0} and set(skipped) == set(NETNS_SKIP_REASONS)
    tw = {lab["pod_uid"]: v for lab, v in m["tcpaudit_time_wait_sockets"] if lab["scope"] == "netns"}
    assert tw == {"uid-0001": 1, "uid-0002": 2, "uid-0003": 3}
    paws = [lab for lab, _ in m["tcpaudit_paws_rejects_total"] if lab["pod_uid"] == "uid-0001"]
    assert {lab["counter"] for lab in paws} >= {"PAWSActive", "PAWSEstab", "PAWSPassive"}


def test_failed_host_publishes_no_findings_and_run_success_0() -> None:
    bad = Target(name="h", kind="host", status=TargetStatus.error, error="collection failed")
    m = parse(render(build_report([bad]), "prometheus"))
    assert "tcpaudit_findings" not in m  # unknown, not zero
    assert m["tcpaudit_run_success"] == [({}, 0.0)]
    assert "tcpaudit_last_success_timestamp_seconds" not in m


def test_remote_controlled_label_values_are_escaped() -> None:
    hostile = 'a"b\\c\nd\u202e\ud800'
    t = netns_target(1, [("TCP003", Severity.medium)])
    assert t.netns is not None
    t.netns.pod_uid = hostile
    text = render(build_report([host_target(), t]), "prometheus")
    promtool_check(text)
    uids = {lab["pod_uid"] for lab, _ in parse(text)["tcpaudit_netns_findings"]}
    (uid,) = uids
    assert uid.startswith('a"b\\c') and "\n" not in uid and "\u202e" not in uid  # quotes/backslash kept, escaped


def test_cardinality_budget_200_pods() -> None:
    """README: at most 11*R + 30 series for the host and 10 + F per namespace (F: pairs firing there)."""
    firing = [("TCP003", Severity.medium), ("NAT001", Severity.low), ("TCP011", Severity.medium)]
    targets = [host_target(), *(netns_target(i, firing) for i in range(200))]
    targets.append(Target(name="netns:gone", kind="netns", status=TargetStatus.skipped, error="gone"))
    text = render(build_report(targets), "prometheus")
    n_series = sum(len(fam.samples) for fam in text_string_to_metric_families(text))
    rules = len(catalogue_rules())
    budget = 11 * rules + 30 + 200 * (10 + len(firing))
    assert n_series <= budget, (n_series, budget)
    assert n_series > 200 * len(firing)  # the detail really is there
    promtool_check(text)


# ---- atomic files -----------------------------------------------------------------------------------------


def test_write_atomic_replaces_whole_and_cleans_up(tmp_path: Path) -> None:
    out = tmp_path / "t.prom"
    write_atomic(out, "one\n")
    write_atomic(out, "two\n")
    assert out.read_text() == "two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.prom"]  # no temp or lock file left


def test_second_writer_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "t.prom"
    write_atomic(out, "previous\n")
    with WriterLock(out):
        with pytest.raises(OutputError, match=r"another tcpaudit \(pid \d+\) is writing it"):
            write_atomic(out, "second\n")
    assert out.read_text() == "previous\n"
    write_atomic(out, "after\n")
    assert out.read_text() == "after\n"


def one_line_error(p: subprocess.CompletedProcess[str], code: int, *needles: str) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_missing_directory_exit_5(tmp_path: Path) -> None:
    out = tmp_path / "nosuch" / "t.prom"
    p = run("audit", str(SNAPSHOT), "--format", f"prometheus:{out}")
    one_line_error(p, 5, str(out), "no such directory")


def test_second_tcpaudit_writing_same_file_exit_5(tmp_path: Path) -> None:
    out = tmp_path / "t.prom"
    agent = subprocess.Popen(
        [sys.executable, "-m", "tcpaudit", "agent", "--snapshot", str(SNAPSHOT), "--format", f"prometheus:{out}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not out.exists():
            assert agent.poll() is None, agent.communicate()
            assert time.monotonic() < deadline, "the agent wrote nothing"
            time.sleep(0.05)
        before = out.read_bytes()
        for argv in (["audit", str(SNAPSHOT)], ["agent", "--snapshot", str(SNAPSHOT), "--runs", "1"]):
            p = run(*argv, "--format", f"prometheus:{out}")
            one_line_error(p, 5, str(out), "another tcpaudit", f"pid {agent.pid}")
            assert out.read_bytes() == before
    finally:
        agent.terminate()
        agent.communicate(timeout=60)
    assert agent.returncode == 0


# ---- real filesystems: read-only and full (root: mounts a small tmpfs and removes it) ------------------


@pytest.fixture
def tmpfs(tmp_path: Path):
    with small_tmpfs(tmp_path, "ta-prom-tmpfs", "256k") as mnt:
        yield mnt


def test_read_only_directory_exit_5_previous_intact(tmpfs: Path) -> None:
    out = tmpfs / "t.prom"
    out.write_text("previous\n")
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    p = run("audit", str(SNAPSHOT), "--format", f"prometheus:{out}")
    one_line_error(p, 5, str(out), "Read-only file system")
    assert out.read_text() == "previous\n"


def test_full_disk_exit_5_previous_intact(tmpfs: Path) -> None:
    out = tmpfs / "t.prom"
    out.write_text("previous\n")
    fill(tmpfs)
    p = run("audit", str(SNAPSHOT), "--format", f"prometheus:{out}")
    one_line_error(p, 5, str(out), "no space left on device")
    assert out.read_text() == "previous\n"
    assert sorted(x.name for x in tmpfs.iterdir()) == ["filler", "t.prom"]  # the temp file was removed


def test_full_disk_agent_keeps_running_and_file(tmpfs: Path) -> None:
    out = tmpfs / "t.prom"
    out.write_text("previous\n")
    fill(tmpfs)
    # The lock file still fits (a tmpfs inode, no data block beyond the pid); the text does not.
    p = run("agent", "--snapshot", str(SNAPSHOT), "--format", f"prometheus:{out}", "--runs", "2", "--interval", "0")
    assert p.returncode == 0, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if "no space left" in ln]
    assert len(errors) == 2 and "Traceback" not in p.stderr
    assert out.read_text() == "previous\n"
