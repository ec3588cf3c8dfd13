"""`tcpaudit host`, `snapshot`, `audit` end to end on the real machine."""

from __future__ import annotations

import json
import os
import platform
import socket
from pathlib import Path

import pytest

from .cli import run, run_json

SEVERITIES = {"info", "low", "medium", "high", "critical"}
STATUSES = {"ok", "unreachable", "auth_failed", "host_key_rejected", "timeout", "bad_output", "error", "interrupted"}


def check_contract(report: dict) -> None:
    assert set(report) >= {"tool", "targets", "summary"}
    assert report["tool"]["name"] == "tcpaudit" and report["tool"]["version"]
    for t in report["targets"]:
        assert set(t) >= {"name", "kind", "status", "error", "kernel", "findings"}
        assert t["kind"] in ("host", "config")
        assert t["status"] in STATUSES
        assert set(t["kernel"]) >= {"release", "version"}
        for f in t["findings"]:
            assert set(f) >= {"rule", "severity", "title", "keys", "evidence", "explanation", "remediation",
                              "references", "location"}
            assert f["severity"] in SEVERITIES
            assert all(k.startswith("net.") for k in f["keys"]), f["keys"]
            if t["kind"] == "host":
                assert f["location"] is None


def test_host_json_matches_the_machine() -> None:
    _, report = run_json("host")
    check_contract(report)
    (t,) = report["targets"]
    assert t["status"] == "ok"
    assert t["kernel"]["release"] == platform.release()
    assert t["name"] == socket.gethostname()
    assert t["sysctls"], "the report carries the values of the sysctls the rules read"
    for key, value in t["sysctls"].items():
        path = Path("/proc/sys", *key.split("."))
        assert " ".join(path.read_text().split()) == value, key
    assert {c["outcome"] for c in t["checks"]} <= {"pass", "fail", "not_applicable", "error"}
    assert not [c for c in t["checks"] if c["outcome"] == "error"], "no rule may crash on a real host"


def test_default_modern_kernel_without_context_has_no_high_findings() -> None:
    code, report = run_json("host", "--no-auto-context")
    bad = [f for f in report["targets"][0]["findings"] if f["severity"] in ("high", "critical")]
    assert not bad, bad
    assert code == 0


def test_nat_idle_timeout_flags_default_keepalive_with_numbers() -> None:
    keepalive = int(Path("/proc/sys/net/ipv4/tcp_keepalive_time").read_text())
    if keepalive < 240:
        pytest.skip(f"this machine's tcp_keepalive_time is {keepalive}, below 240")
    _, report = run_json("host", "--nat-idle-timeout", "240")
    nat = [f for f in report["targets"][0]["findings"] if f["rule"] == "NAT001"]
    assert nat, report["targets"][0]["checks"]
    assert nat[0]["evidence"]["tcp_keepalive_time"] == keepalive
    assert nat[0]["evidence"]["nat_idle_timeout"] == 240
    assert "240" in nat[0]["explanation"] and str(keepalive) in nat[0]["explanation"]


def test_snapshot_then_audit_gives_the_same_findings(tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    p = run("snapshot", "-o", str(snap))
    assert p.returncode == 0, p.stderr
    data = json.loads(snap.read_text())
    assert data["schema_version"] == 1 and data["source"] == "local"
    assert data["kernel"]["release"] == platform.release()
    _, offline = run_json("audit", str(snap), "--nat-idle-timeout", "240")
    _, live = run_json("host", "--nat-idle-timeout", "240")
    key = lambda r: sorted((f["rule"], f["severity"]) for f in r["targets"][0]["findings"])  # noqa: E731
    assert key(offline) == key(live)


def test_schema_command_prints_the_snapshot_json_schema() -> None:
    p = run("schema")
    assert p.returncode == 0
    schema = json.loads(p.stdout)
    assert "schema_version" in schema["properties"] and "sockets" in schema["properties"]


def test_version() -> None:
    from tcpaudit import __version__

    p = run("--version")
    assert p.returncode == 0 and p.stdout.strip() == f"tcpaudit {__version__}"


BAD_SNAPSHOTS = {
    "empty.json": b"",
    "truncated.json": None,  # filled from a real snapshot below
    "notjson.json": b"this is not json\n",
    "binary.json": bytes(range(256)),
    "wrongshape.json": b'{"hello": "world"}',
    "array.json": b"[1, 2, 3]",
    "future.json": None,
}


@pytest.mark.parametrize("name", sorted(BAD_SNAPSHOTS))
def test_bad_snapshot_files_give_one_line_and_exit_2(tmp_path: Path, name: str) -> None:
    good = tmp_path / "good.json"
    assert run("snapshot", "-o", str(good)).returncode == 0
    data = BAD_SNAPSHOTS[name]
    if name == "truncated.json":
        data = good.read_bytes()[: len(good.read_bytes()) // 2]
    elif name == "future.json":
        doc = json.loads(good.read_text())
        doc["schema_version"] = 999
        data = json.dumps(doc).encode()
    bad = tmp_path / name
    bad.write_bytes(data)
    p = run("audit", str(bad))
    assert p.returncode == 2, (p.returncode, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert str(bad) in lines[0]
    assert "Traceback" not in p.stderr and p.stdout == ""


def test_missing_and_directory_snapshot(tmp_path: Path) -> None:
    for target in (tmp_path / "nope.json", tmp_path):
        p = run("audit", str(target))
        assert p.returncode == 2 and str(target) in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2() -> None:
    for args in (["host", "--fail-on", "bogus"], ["host", "--format", "yaml"], ["host", "--profile", "nope"],
                 ["host", "--clients-behind-nat", "maybe"], ["explain", "XYZ999"], ["kernel", "not-a-kernel"],
                 ["no-such-command"]):
        p = run(*args)
        assert p.returncode == 2, (args, p.returncode, p.stderr)
        assert "Traceback" not in p.stderr


def test_fail_on_gates_the_exit_code(tmp_path: Path) -> None:
    code, report = run_json("host", "--nat-idle-timeout", "1", "--fail-on", "info")
    assert report["summary"]["findings"] > 0
    assert code == 1
    code, _ = run_json("host", "--nat-idle-timeout", "1", "--fail-on", "critical", "--no-auto-context")
    assert code == 0


def test_several_formats_at_once(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    p = run("host", "--format", f"json:{out}", "--format", "table")
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(out.read_text())["targets"]
    assert "target(s)" in p.stdout


def test_remediate_writes_a_commented_sysctl_d(tmp_path: Path) -> None:
    snap = tmp_path / "s.json"
    assert run("snapshot", "-o", str(snap)).returncode == 0
    p = run("remediate", str(snap), "--nat-idle-timeout", "60")
    assert p.returncode == 0, p.stderr
    assert "net.ipv4.tcp_keepalive_time = 30" in p.stdout
    assert p.stdout.splitlines()[0].startswith("# Generated by tcpaudit")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch to an unprivileged user")
def test_unprivileged_user_still_works_and_lists_gaps() -> None:
    import shutil
    import subprocess
    import sys

    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.skip("setpriv (util-linux) not installed")
    p = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                        "tcpaudit", "host", "--format", "json"], capture_output=True, text=True, timeout=120,
                       cwd="/", env={"PATH": os.environ["PATH"], "PYTHONPATH": str(Path(__file__).parents[1])})
    assert p.returncode in (0, 1), p.stderr
    t = json.loads(p.stdout)["targets"][0]
    assert t["status"] == "ok"
    assert t["gaps"], "an unprivileged run lists what it could not read"
    assert any("permission" in g for g in t["gaps"])
