"""`tcpaudit agent`: the loop, its signals, what a failed run publishes, and flat memory over 1,000 runs.

Runs the real CLI (or the library in a child process for the memory test) and polls files with a deadline;
nothing asserts on wall time.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from .cli import ROOT

SNAPSHOT = ROOT / "fixtures" / "snapshots" / "centos7-3.10.0-327-tw-recycle.json"


def metrics(path: Path) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(path.read_text()):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def wait_for(check: Callable[[], object], what: str, proc: subprocess.Popen[str] | None = None, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except (FileNotFoundError, ValueError):  # not written yet
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"agent exited {proc.returncode} before {what}: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_agent(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tcpaudit", "agent", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> tuple[int, str]:
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_between_runs_exits_0_and_leaves_a_complete_file(tmp_path: Path, sig: int) -> None:
    out = tmp_path / "t.prom"
    proc = start_agent("--snapshot", str(SNAPSHOT), "--format", f"prometheus:{out}", "--interval", "1h")
    try:
        wait_for(lambda: metrics(out)["tcpaudit_run_success"], "the first run", proc)
    finally:
        code, err = stop(proc, sig)
    assert code == 0, err
    assert "Traceback" not in err
    m = metrics(out)
    assert list(m["tcpaudit_run_success"].values()) == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.prom"]  # lock released and removed


def test_sigterm_during_a_run_exits_0_and_keeps_the_previous_file(tmp_path: Path) -> None:
    """The run blocks reading its snapshot from a FIFO nobody writes: SIGTERM arrives mid-run."""
    fifo = tmp_path / "snap.fifo"
    os.mkfifo(fifo)
    out = tmp_path / "t.prom"
    out.write_text("previous\n")
    lock = tmp_path / ".t.prom.lock"
    proc = start_agent("--snapshot", str(fifo), "--format", f"prometheus:{out}", "--interval", "0")
    try:
        wait_for(lambda: lock.exists() and lock.read_text().strip() == str(proc.pid), "the agent's lock", proc)
        # the lock is taken before the first run starts; the run then blocks in open() on the FIFO
    finally:
        code, err = stop(proc)
    assert code == 0, err
    assert out.read_text() == "previous\n"


def test_failed_run_keeps_last_good_findings_with_run_success_0(tmp_path: Path) -> None:
    snap = tmp_path / "snap.json"
    snap.write_bytes(SNAPSHOT.read_bytes())
    out = tmp_path / "t.prom"
    proc = start_agent("--snapshot", str(snap), "--format", f"prometheus:{out}", "--interval", "0.05s")
    try:
        good = wait_for(lambda: metrics(out), "a good run", proc)
        assert list(good["tcpaudit_run_success"].values()) == [1.0]
        assert any(v > 0 for v in good["tcpaudit_findings"].values())
        tmp = tmp_path / "snap.tmp"
        tmp.write_text("{ not a snapshot")
        os.replace(tmp, snap)

        def failed() -> object:
            m = metrics(out)
            return list(m["tcpaudit_run_success"].values()) == [0.0] and m

        bad = wait_for(failed, "a failed run", proc)
        assert bad["tcpaudit_findings"] == good["tcpaudit_findings"]  # the last good findings, unchanged
        last_good = bad["tcpaudit_last_success_timestamp_seconds"]
        assert list(bad["tcpaudit_last_run_timestamp_seconds"].values())[0] > list(last_good.values())[0]
        tmp.write_bytes(SNAPSHOT.read_bytes())
        os.replace(tmp, snap)
        wait_for(lambda: list(metrics(out)["tcpaudit_run_success"].values()) == [1.0], "recovery", proc)
    finally:
        code, err = stop(proc)
    assert code == 0
    failures = [ln for ln in err.splitlines() if "run failed" in ln]
    assert failures and all(ln.startswith("tcpaudit agent: ") for ln in failures)
    assert "Traceback" not in err


def test_first_run_failing_publishes_run_health_only(tmp_path: Path) -> None:
    out = tmp_path / "t.prom"
    missing = tmp_path / "nosuch.json"
    p = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "agent", "--snapshot", str(missing), "--format", f"prometheus:{out}"]
        + ["--runs", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    m = metrics(out)
    assert list(m["tcpaudit_run_success"].values()) == [0.0]
    assert "tcpaudit_findings" not in m and "tcpaudit_last_success_timestamp_seconds" not in m


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--interval", "soon"], "not a duration"),
        (["--jitter", "-1s"], "not a duration"),
        ([], "needs an output"),
        (["--format", "prometheus"], "writes files only"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], needle: str) -> None:
    argv = [sys.executable, "-m", "tcpaudit", "agent", "--snapshot", str(SNAPSHOT), *args]
    if "--format" not in args:
        argv += [] if needle == "needs an output" else ["--format", f"prometheus:{tmp_path / 't.prom'}"]
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert len(p.stderr.strip().splitlines()) == 1 and needle in p.stderr


MEMORY_SCRIPT = r"""
import json, sys
from pathlib import Path
from tcpaudit.agent import Agent, AgentConfig

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

marks = {}
def after(agent):
    if agent.runs in (100, 1000):
        marks[agent.runs] = rss_kib()

snap, out = sys.argv[1], sys.argv[2]
cfg = AgentConfig(outputs=[("prometheus", out)], interval_s=0, snapshot=Path(snap), max_runs=1000)
agent = Agent(cfg)
assert agent.run(after_run=after) == 0
print(json.dumps({"marks": marks, "runs": agent.runs, "failed": agent.failed_runs}))
"""


def test_memory_flat_over_1000_runs(tmp_path: Path) -> None:
    """RSS after run 1,000 against run 100 (caches and imports are warm by then): bounded growth."""
    out = tmp_path / "t.prom"
    p = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, str(SNAPSHOT), str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["runs"] == 1000 and result["failed"] == 0
    marks = {int(k): v for k, v in result["marks"].items()}
    growth_kib = marks[1000] - marks[100]
    print(f"RSS run 100: {marks[100]} KiB, run 1000: {marks[1000]} KiB, growth {growth_kib} KiB")
    # A leak of one report per run (~30 KiB of findings and measurements) would be ~26 MiB over 900 runs.
    assert growth_kib < 4096, marks
