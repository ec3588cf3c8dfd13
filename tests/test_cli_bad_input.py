"""Bad input through the real CLI (issue 17, item 8): one line on stderr, no traceback, the documented exit code.

Cases are data: (name, argv, env, files to create, the exit code, a phrase the one line must hold).
"""

from __future__ import annotations

import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tcpaudit.exitcodes import ExitCode

from .cli import ROOT, run

SNAP = ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json"
SYSCTL_A = ROOT / "fixtures" / "corpus" / "sysctl-dump" / "amzn1-4.14.55-ec2-docker-host-sysctl-a.txt"


def _report(tmp: Path) -> str:
    p = run("audit", str(SNAP), "--format", "json")
    assert p.returncode in (0, 1), p.stderr
    (tmp / "report.json").write_text(p.stdout)
    return str(tmp / "report.json")


# name, args ({tmp}, {snap}, {report} are filled in), env, extra files {name: text}, exit code, phrase
CASES = [
    ("baseline_is_a_snapshot", ["audit", "{snap}", "--baseline", "{snap}"], {}, {}, ExitCode.USAGE,
     "not a tcpaudit baseline: it is a tcpaudit snapshot"),
    ("baseline_is_empty_object", ["audit", "{snap}", "--baseline", "{tmp}/empty.json"], {}, {"empty.json": "{}"},
     ExitCode.USAGE, "not a tcpaudit baseline (no version and fingerprints"),
    ("baseline_is_a_report", ["audit", "{snap}", "--baseline", "{report}"], {}, {}, ExitCode.USAGE,
     "it is a tcpaudit JSON report"),
    ("disable_unknown_rule", ["audit", "{snap}", "--disable", "TCP0O1"], {}, {}, ExitCode.USAGE,
     "--disable: unknown rule 'TCP0O1'; did you mean TCP001?"),
    ("config_disable_unknown_rule", ["audit", "{snap}", "--config", "{tmp}/c.toml"], {},
     {"c.toml": '[rules]\ndisable = ["NAT0002"]\n'}, ExitCode.USAGE,
     "rules.disable: unknown rule 'NAT0002'; did you mean"),
    ("format_empty_path", ["audit", "{snap}", "--format", "json:"], {}, {}, ExitCode.USAGE,
     "no file name after ':'"),
    ("format_unknown", ["audit", "{snap}", "--format", "yaml"], {}, {}, ExitCode.USAGE, "unknown format 'yaml'"),
    ("socket_source_unknown", ["host"], {"TCPAUDIT_SOCKET_SOURCE": "bogus"}, {}, ExitCode.USAGE,
     "TCPAUDIT_SOCKET_SOURCE='bogus' is not one of auto, netlink, ss"),
    ("socket_source_unknown_snapshot", ["snapshot", "-o", "{tmp}/s.json"], {"TCPAUDIT_SOCKET_SOURCE": "proc"}, {},
     ExitCode.USAGE, "TCPAUDIT_SOCKET_SOURCE='proc'"),
    ("audit_own_report", ["audit", "{report}"], {}, {}, ExitCode.USAGE,
     "a tcpaudit JSON report (`--format json` output), not an input"),
    ("audit_a_baseline", ["audit", "{tmp}/b.json"], {}, {"b.json": '{"version": 1, "fingerprints": {}}'},
     ExitCode.USAGE, "a tcpaudit baseline"),
    ("audit_sysctl_a_capture", ["audit", str(SYSCTL_A)], {}, {}, ExitCode.USAGE,
     "a `sysctl -a` capture or sysctl.conf (key = value lines), not a snapshot: `tcpaudit lint FILE` reads it"),
    ("snapshot_missing_field_no_pydantic_words", ["audit", "{tmp}/bad.json"], {},
     {"bad.json": '{"hostname": "h", "kernel": {"release": "6.1.0"}, "sysctls": {"a": 1}, "source": "file"}'},
     ExitCode.USAGE, "invalid snapshot: collected_at: missing (required)"),
    ("config_wrong_type_no_pydantic_words", ["audit", "{snap}", "--config", "{tmp}/t.toml"], {},
     {"t.toml": '[context]\nnat_idle_timeout = "soon"\n'}, ExitCode.USAGE, "context.nat_idle_timeout: must be"),
    ("explain_unknown_rule", ["explain", "NAT0O1"], {}, {}, ExitCode.USAGE,
     "unknown rule 'NAT0O1'; did you mean NAT001?"),
    ("rules_format_case", ["rules", "--format", "xml"], {}, {}, ExitCode.USAGE, "--format must be table or json"),
]  # fmt: skip

PYDANTIC_WORDS = ("Field required", "Input should", "Value error", "pydantic", "validation error")


@pytest.mark.parametrize("name,args,env,files,code,phrase", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(tmp_path: Path, name, args, env, files, code, phrase) -> None:  # type: ignore[no-untyped-def]
    for fname, text in files.items():
        (tmp_path / fname).write_text(text)
    report = _report(tmp_path) if any("{report}" in a for a in args) else ""
    argv = [a.format(tmp=tmp_path, snap=SNAP, report=report) for a in args]
    p = run(*argv, cwd=tmp_path, env=env)
    lines = p.stderr.splitlines()
    assert p.returncode == code, (p.returncode, p.stderr)
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("tcpaudit: "), lines[0]
    assert phrase in lines[0], lines[0]
    assert "Traceback" not in p.stderr
    assert not any(w in p.stderr for w in PYDANTIC_WORDS), p.stderr


# Formats are accepted in any case; the listing commands' too.
@pytest.mark.parametrize("args", [["audit", str(SNAP), "--format", "JSON"], ["audit", str(SNAP), "-f", "Json"]])
def test_format_is_case_insensitive(args: list[str]) -> None:
    p = run(*args)
    assert p.returncode in (0, 1), p.stderr
    assert json.loads(p.stdout)["tool"]["name"] == "tcpaudit"


def test_listing_format_is_case_insensitive() -> None:
    p = run("rules", "--format", "JSON")
    assert p.returncode == 0, p.stderr
    assert isinstance(json.loads(p.stdout), list)


def test_known_rule_ids_disable_in_any_case() -> None:
    p = run("audit", str(SNAP), "--disable", "tcp001", "--format", "json")
    assert p.returncode in (0, 1), p.stderr
    rules = {f["rule"] for t in json.loads(p.stdout)["targets"] for f in t["findings"]}
    assert "TCP001" not in rules


def test_a_baseline_written_by_tcpaudit_is_accepted(tmp_path: Path) -> None:
    b = tmp_path / "b.json"
    assert run("baseline", str(SNAP), "-o", str(b)).returncode == 0
    p = run("audit", str(SNAP), "--baseline", str(b), "--format", "json")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["summary"]["suppressed"] >= 1


_SLEEP_SYSCALLS = {"x86_64": {35, 230}, "aarch64": {101, 115}}  # nanosleep, clock_nanosleep


def _sleeping(pid: int) -> bool:
    try:
        nr = Path(f"/proc/{pid}/syscall").read_text().split()[0]
    except (OSError, IndexError):
        return False
    return nr.isdigit() and int(nr) in _SLEEP_SYSCALLS[platform.machine()]


@pytest.mark.skipif(platform.machine() not in _SLEEP_SYSCALLS, reason="sleep syscall numbers known for this arch")
@pytest.mark.skipif(os.geteuid() != 0 and not Path("/proc/self/syscall").exists(), reason="needs /proc/PID/syscall")
def test_sigterm_writes_the_partial_report_like_ctrl_c(tmp_path: Path) -> None:
    """`host --sample 60` is sent SIGTERM while it sleeps between its two samples (seen in /proc/PID/syscall,
    not guessed with a timer): the JSON report is still written, the host listed as interrupted, exit 130."""
    out = tmp_path / "r.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tcpaudit", "host", "--sample", "60", "--format", f"json:{out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        for _ in range(6000):  # bounded: at most ~60 s of polling
            if proc.poll() is not None or _sleeping(proc.pid):
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        assert _sleeping(proc.pid), "never reached the sampling sleep"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err
    assert err.strip().splitlines() == ["tcpaudit: interrupted; the report covers the targets done"], err
    report = json.loads(out.read_text())
    assert [t["status"] for t in report["targets"]] == ["interrupted"]
