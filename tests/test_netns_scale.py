"""--all-netns at scale, on real kernel state: 1,000 network namespaces, each once, ok, no traceback, fds bounded.

The namespaces are made by benchmarks/netns_bench.py's ManyNetns: one holder process in a private mount
namespace, one unshare(CLONE_NEWNET) and one nsfs bind mount (`ta-nsscale-<i>`, in a tmpfs only that mount
namespace sees) per namespace - about a second for 1,000 here. tcpaudit runs in that mount namespace; when the
holder exits, on success or failure, the mounts and with them the namespaces are gone. No time is asserted.
Other processes on this machine may own namespaces too: the test asserts on its own and never on a total.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading

import pytest

from benchmarks.netns_bench import ManyNetns, netns_unavailable

pytestmark = pytest.mark.root

N = 1000


def _fd_sampler(pid: int, peak: list[int], stop: threading.Event) -> None:
    while not stop.wait(0.05):
        try:
            peak[0] = max(peak[0], len(os.listdir(f"/proc/{pid}/fd")))
        except OSError:
            return


def test_a_thousand_namespaces_each_once_and_ok(tmp_path) -> None:
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    with ManyNetns(N, sockets=False) as many:
        assert len(set(many.inodes)) == N
        proc = subprocess.Popen(
            [*many.prefix(), sys.executable, "-m", "tcpaudit", "host", "--all-netns", "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,  # nsenter keeps the working directory (--wd): no .tcpaudit.toml picked up
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        peak, stop = [0], threading.Event()
        sampler = threading.Thread(target=_fd_sampler, args=(proc.pid, peak, stop), daemon=True)
        sampler.start()
        try:
            out, err = proc.communicate(timeout=600)
        finally:
            stop.set()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        sampler.join()
    assert "Traceback" not in err, err[-3000:]
    assert proc.returncode in (0, 1, 3), err[-2000:]  # 3: another helper's namespace may vanish meanwhile
    report = json.loads(out)
    seen: dict[int, list[dict]] = {}
    for t in report["targets"]:
        if t.get("netns"):
            seen.setdefault(t["netns"]["inode"], []).append(t)
    for inode in many.inodes:
        targets = seen.get(inode, [])
        assert len(targets) == 1, f"namespace {inode} appears {len(targets)} times"
        t = targets[0]
        assert t["status"] == "ok", (t["name"], t.get("error"))
        assert t["kind"] == "netns" and t["netns"]["name_source"] == "bind-mount"
        assert t["netns"]["name"].startswith("ta-nsscale-")
    assert len({t["name"] for t in report["targets"]}) == len(report["targets"])  # target names are unique
    assert report["extra"]["netns"]["namespaces"] == len(report["targets"])
    # One namespace at a time: the fds in use do not grow with the number of namespaces.
    assert 0 < peak[0] < 64, peak[0]


def _ours(enum, inodes):  # type: ignore[no-untyped-def]
    """The enumeration cut down to the host and the given namespaces (others' namespaces are not ours)."""
    wanted = set(inodes)
    enum.entries = [e for e in enum.entries if e.inode == enum.host_inode or e.inode in wanted]
    return enum


def test_sample_reads_every_namespace_around_one_sleep() -> None:
    """--sample: every namespace's first counters are read, then one sleep, then the sweep. The holder opens
    two connections in each of its namespaces once, during the sleep: every namespace's interval contains that
    moment (ActiveOpens grew by exactly 2 in each), which one sleep per namespace in turn could not give."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    from tcpaudit.collect.netns import collect_all_netns, enumerate_netns, name_entries

    with ManyNetns(3) as many:
        # The bind mounts live in the holder's mount namespace: seen through /proc/PID/mountinfo and opened
        # below /proc/PID/root, as a container with hostPID sees the host's /run/netns.
        enum = _ours(enumerate_netns(mountinfo=(f"/proc/{many.pid}/mountinfo",)), many.inodes)
        name_entries(enum)
        assert {e.inode for e in enum.entries} == {enum.host_inode, *many.inodes}
        timer = threading.Timer(1.0, many.refresh_time_wait)
        timer.start()
        try:
            caps = {c.entry.inode: c for c in collect_all_netns(enum, sample_s=3.0)}
        finally:
            timer.cancel()
            timer.join()
    for inode in many.inodes:
        snap = caps[inode].snapshot
        assert caps[inode].status == "ok" and snap is not None and snap.previous is not None
        assert snap.previous.interval_s >= 3.0
        before = snap.previous.counters.get("Tcp.ActiveOpens")
        after = snap.counters.get("Tcp.ActiveOpens")
        assert before is not None and after is not None and after - before == 2, (before, after)
    host = caps[enum.host_inode].snapshot
    assert host is not None and host.previous is not None and host.previous.interval_s >= 3.0


def _signature(report: dict) -> list:
    return [
        (
            t["name"],
            t["kind"],
            t["status"],
            t.get("error"),
            (t.get("netns") or {}).get("inode"),
            sorted((f["rule"], f.get("title")) for f in t["findings"]),
            sorted((c["rule"], c["outcome"]) for c in t["checks"]),
        )
        for t in report["targets"]
    ]


def test_save_snapshot_round_trip(tmp_path) -> None:
    """--all-netns --save-snapshot FILE (with --sample) writes one file; `tcpaudit audit FILE` gives the same
    targets, statuses and findings, and the same report.extra["netns"]."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    saved = tmp_path / "sweep.jsonl"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with ManyNetns(3) as many:
        live = subprocess.run(
            [*many.prefix(), sys.executable, "-m", "tcpaudit", "host", "--all-netns", "--format", "json"]
            + ["--save-snapshot", str(saved), "--sample", "0.5"],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=tmp_path,
            env=env,
        )
    assert "Traceback" not in live.stderr and live.returncode in (0, 1, 3), live.stderr[-2000:]
    report = json.loads(live.stdout)
    lines = saved.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["tcpaudit_netns_sweep"] == 1
    assert len(lines) == 1 + len(report["targets"])  # one line per namespace
    inodes = {(t.get("netns") or {}).get("inode") for t in report["targets"]}
    assert set(many.inodes) <= inodes
    for line in lines[1:]:  # --sample through the CLI: each saved namespace carries its first sample
        rec = json.loads(line)
        if rec["netns"]["inode"] in many.inodes:
            assert rec["status"] == "ok" and rec["snapshot"]["previous"]["interval_s"] >= 0.5
    back = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "audit", str(saved), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert back.returncode == live.returncode, back.stderr[-2000:]
    again = json.loads(back.stdout)
    assert _signature(again) == _signature(report)
    assert again["extra"]["netns"] == report["extra"]["netns"]
    assert again["summary"]["by_rule"] == report["summary"]["by_rule"]


def test_a_damaged_sweep_file_is_one_line_and_exit_2(tmp_path) -> None:
    bad = tmp_path / "sweep.jsonl"
    bad.write_text('{"tcpaudit_netns_sweep": 1, "netns": {}}\n{"name": "x", "snapshot": {"kernel": 5}}\n')
    r = subprocess.run(
        [sys.executable, "-m", "tcpaudit", "audit", str(bad)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "line 2" in r.stderr and "Traceback" not in r.stderr


def _as_nobody_with(many: ManyNetns, caps: list[str], cwd) -> tuple[int, dict | None, str]:  # type: ignore[no-untyped-def]
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if caps:
        spec = ",".join(f"+{c}" for c in caps)
        argv += [f"--inh-caps={spec}", f"--ambient-caps={spec}"]
    r = subprocess.run(
        [*many.prefix(), *argv, sys.executable, "-m", "tcpaudit", "host", "--all-netns", "--format", "json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return r.returncode, json.loads(r.stdout) if r.stdout.strip() else None, r.stderr


def test_capabilities_it_needs(tmp_path) -> None:
    """What the README says --all-netns needs, by experiment (a non-root uid given ambient capabilities):
    CAP_SYS_PTRACE to look at other processes' namespaces, CAP_SYS_ADMIN to enter them; CAP_NET_ADMIN adds the
    root-only (0600) net sysctls; the NAT rules need uid 0."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    os.chmod(tmp_path, 0o1777)
    with ManyNetns(2) as many:
        rc, report, err = _as_nobody_with(many, ["sys_admin", "sys_ptrace"], tmp_path)
        assert report is not None and "Traceback" not in err, err[-2000:]
        ours = {t["netns"]["inode"]: t for t in report["targets"] if t.get("netns")}
        assert all(ours[i]["status"] == "ok" for i in many.inodes), [ours[i]["status"] for i in many.inodes]
        host_gaps = next(t for t in report["targets"] if t["kind"] == "host")["gaps"]
        assert any(g.startswith("iptables-nat: permission_denied") for g in host_gaps), host_gaps

        rc, report, err = _as_nobody_with(many, ["sys_admin", "sys_ptrace", "net_admin"], tmp_path)
        assert report is not None
        t = next(t for t in report["targets"] if t.get("netns") and t["netns"]["inode"] == many.inodes[0])
        assert t["status"] == "ok" and not any("fastopen_key" in g for g in t["gaps"]), t["gaps"]

        rc, report, err = _as_nobody_with(many, ["sys_ptrace"], tmp_path)
        assert rc == 3 and report is not None and "Traceback" not in err
        ours = {t["netns"]["inode"]: t for t in report["targets"] if t.get("netns")}
        # held by a bind mount only (no process whose /proc/PID/net could stand in): skipped, saying why
        first = ours[many.inodes[0]]
        assert first["status"] == "skipped" and "CAP_SYS_ADMIN" in first["error"], first
        # the holder process sits in the last one: its counters are read from /proc/PID/net
        assert ours[many.inodes[-1]]["status"] == "partial"

        rc, report, err = _as_nobody_with(many, ["sys_admin"], tmp_path)
        assert rc == 3 and report is None and err.count("\n") == 1 and "CAP_SYS_PTRACE" in err


def test_netns_bench_runs_on_two_namespaces() -> None:
    """benchmarks/netns_bench.py's pieces work (tiny: 2 namespaces, one round); nothing about time."""
    why = netns_unavailable()
    if why:
        pytest.skip(why)
    from benchmarks import netns_bench

    assert "tcpaudit" not in netns_bench.FLOOR_PROCESS.replace("tcpaudit's", "")
    rows = netns_bench.run_netns_bench((2,), repeats=1)
    assert [r["status"] for r in rows] == ["ok", "ok", "ok"], rows
    inproc = rows[0]["raw"]
    assert inproc["tcpaudit_targets"] == inproc["tcpaudit_ok"] == 3  # the host and the bench's two
    assert inproc["floor_namespaces"] == 3
    assert all(r["subject_m"]["peak_rss_kb"] > 0 for r in rows)
