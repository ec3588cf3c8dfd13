#!/usr/bin/env python3
"""Fleet sweep cost: `tcpaudit fleet` vs a minimal paramiko thread pool vs OpenSSH `ssh` under `xargs -P`.

All three run the same collector script (tcpaudit/collect/collector.sh) as `sh -s` on the same N real
sshd hosts (127.0.0.1 high ports, tests/sshd.py), with the same client key and known_hosts, N at a time
(capped at 32, tcpaudit's default). Measured per round, interleaved, median of `rounds`:

  tcpaudit        the sweep as the library runs it (SSHCollector + fleet.sweep + fleet report), in process
  tcpaudit_cli    `python -m tcpaudit fleet ...` as a user runs it (interpreter start-up and imports included)
  paramiko        the minimal collector: ThreadPoolExecutor, SSHClient.connect, exec `sh -s`, read stdout
  paramiko_cli    the same as its own `python` process (start-up included), the fair peer of tcpaudit_cli
  xargs           `xargs -P N ssh -F CONFIG -o BatchMode=yes HOST sh -s < collector.sh`

Wall seconds, and CPU seconds of this process and its children (getrusage SELF + CHILDREN deltas: the
sshd servers are not counted; they are not reaped until the end). Target: tcpaudit <= 1.2x paramiko.

    python benchmarks/fleet_bench.py 50          # prints the table and the ratios
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_JOBS = 32


def _tests_sshd():  # type: ignore[no-untyped-def]
    sys.path.insert(0, str(ROOT / "tests"))
    import sshd  # tests/sshd.py: real sshd helpers shared with the tests

    return sshd


def _cpu() -> float:
    s = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _measure(fn: Callable[[], Any]) -> dict[str, Any]:
    c0, t0 = _cpu(), time.perf_counter()
    detail = fn()
    return {"wall_s": time.perf_counter() - t0, "cpu_s": _cpu() - c0, "detail": detail}


# ---- the minimal paramiko collector ---------------------------------------------------------------------
MINIMAL = r'''
import sys, paramiko
from concurrent.futures import ThreadPoolExecutor

def collect_all(hosts, user, key_file, known_hosts, script, jobs):
    """hosts: [(address, port)]. One connection, one `sh -s` per host; returns bytes received per host."""
    pkey = paramiko.PKey.from_path(key_file)

    def one(hp):
        c = paramiko.SSHClient()
        c.load_host_keys(known_hosts)
        c.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            c.connect(hp[0], hp[1], user, pkey=pkey, look_for_keys=False, allow_agent=False, timeout=10)
            stdin, stdout, _ = c.exec_command("sh -s")
            stdin.write(script)
            stdin.channel.shutdown_write()
            return len(stdout.read())
        finally:
            c.close()

    with ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, hosts))

if __name__ == "__main__":
    import json
    spec = json.load(sys.stdin)
    sizes = collect_all([tuple(h) for h in spec["hosts"]], spec["user"], spec["key"], spec["known_hosts"],
                        open(spec["script"], "rb").read(), spec["jobs"])
    print(json.dumps(sizes))
'''


def _minimal_module():  # type: ignore[no-untyped-def]
    ns: dict[str, Any] = {"__name__": "minimal_paramiko"}
    exec(compile(MINIMAL, "minimal_paramiko", "exec"), ns)
    return ns["collect_all"]


# ---- the runs -------------------------------------------------------------------------------------------
def _run_tcpaudit(fleet, jobs: int) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    from tcpaudit.audit import AuditOptions
    from tcpaudit.collect.ssh import SSHCollector, SSHSettings, parse_destination
    from tcpaudit.fleet import fleet_report, sweep

    collector = SSHCollector(
        SSHSettings(ssh_config=fleet.ssh_config, connect_timeout=10, command_timeout=60, use_agent=False)
    )
    try:
        result = sweep([parse_destination(a) for a in fleet.aliases()], collector, AuditOptions(), jobs=jobs)
    finally:
        collector.close()
    report = fleet_report(result, "high")
    failed = [t.error for t in report.targets if t.status.value != "ok"]
    if failed:
        raise RuntimeError(f"tcpaudit: {len(failed)} host(s) failed: {failed[:2]}")
    return {"hosts_ok": report.summary.targets_ok}


def _run_tcpaudit_cli(fleet, jobs: int, sshd) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SSH_AUTH_SOCK", None)
    p = subprocess.run(
        [
            sys.executable,
            "-m",
            "tcpaudit",
            "fleet",
            *fleet.aliases(),
            "--ssh-config",
            str(fleet.ssh_config),
            "--jobs",
            str(jobs),
            "-f",
            "json",
        ],
        capture_output=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=600,
    )
    report = json.loads(p.stdout)
    if report["summary"]["targets_failed"]:
        raise RuntimeError(f"tcpaudit fleet: {p.stderr.decode(errors='replace')[-300:]}")
    return {"hosts_ok": report["summary"]["targets_ok"]}


def _spec(fleet, jobs: int, sshd) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return {
        "hosts": [(s.address, s.port) for s in fleet.servers],
        "user": sshd.login_user(),
        "key": str(fleet.keys.client_key),
        "known_hosts": str(fleet.keys.known_hosts),
        "script": str(sshd.COLLECTOR),
        "jobs": jobs,
    }


def _run_paramiko(fleet, jobs: int, sshd) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    spec = _spec(fleet, jobs, sshd)
    sizes = _minimal_module()(
        [tuple(h) for h in spec["hosts"]],
        spec["user"],
        spec["key"],
        spec["known_hosts"],
        sshd.COLLECTOR.read_bytes(),
        jobs,
    )
    return {"hosts_ok": sum(1 for n in sizes if n > 0)}


def _run_paramiko_cli(fleet, jobs: int, sshd) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    p = subprocess.run(
        [sys.executable, "-c", MINIMAL],
        input=json.dumps(_spec(fleet, jobs, sshd)).encode(),
        capture_output=True,
        timeout=600,
    )
    if p.returncode != 0:
        raise RuntimeError(f"minimal paramiko: {p.stderr.decode(errors='replace')[-300:]}")
    return {"hosts_ok": sum(1 for n in json.loads(p.stdout) if n > 0)}


def _run_xargs(fleet, jobs: int, sshd) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    # one `ssh ALIAS sh -s < collector.sh` per input line (our own aliases and path), `jobs` at a time
    lines = "".join(f"{a} {sshd.COLLECTOR}\n" for a in fleet.aliases())
    p = subprocess.run(
        [
            "xargs",
            "-P",
            str(jobs),
            "-L",
            "1",
            "sh",
            "-c",
            'exec ssh -F "$0" -o BatchMode=yes -o StrictHostKeyChecking=yes "$1" sh -s < "$2" > /dev/null',
            str(fleet.ssh_config),
        ],
        input=lines.encode(),
        capture_output=True,
        timeout=600,
    )
    if p.returncode != 0:
        raise RuntimeError(f"xargs ssh exit {p.returncode}: {p.stderr.decode(errors='replace')[-300:]}")
    return {"hosts_ok": len(fleet.aliases())}


def run_fleet_bench(n_hosts: int, rounds: int = 3, cli: bool = True) -> dict[str, Any]:
    """Start n sshd hosts, time the three ways of sweeping them (median of `rounds`), return the numbers.

    Result: {"hosts": n, "jobs": j, "tcpaudit": {wall_s, cpu_s, runs}, "paramiko": {...}, "xargs": {...},
    "tcpaudit_cli": {...}, "paramiko_cli": {...}, "ratios": {...}, "notes": [...]}.
    """
    sshd = _tests_sshd()
    if not sshd.have_sshd():
        raise RuntimeError("OpenSSH server (/usr/sbin/sshd) or ssh-keygen not installed")
    jobs = min(MAX_JOBS, n_hosts)
    with tempfile.TemporaryDirectory(prefix="tcpaudit-fleet-bench-") as tmp:
        fleet = sshd.start_fleet(Path(tmp), n_hosts, prefix="b")
        try:
            tools: dict[str, Callable[[], Any]] = {
                "tcpaudit": lambda: _run_tcpaudit(fleet, jobs),
                "paramiko": lambda: _run_paramiko(fleet, jobs, sshd),
                "xargs": lambda: _run_xargs(fleet, jobs, sshd),
            }
            if cli:
                tools["tcpaudit_cli"] = lambda: _run_tcpaudit_cli(fleet, jobs, sshd)
                tools["paramiko_cli"] = lambda: _run_paramiko_cli(fleet, jobs, sshd)
            # warm-up: imports, rule catalogue, page cache, sshd's first forks
            _run_tcpaudit(fleet, jobs)
            _run_paramiko(fleet, jobs, sshd)
            runs: dict[str, list[dict[str, Any]]] = {k: [] for k in tools}
            for _ in range(rounds):
                for name, fn in tools.items():
                    runs[name].append(_measure(fn))
        finally:
            fleet.stop()
    out: dict[str, Any] = {"hosts": n_hosts, "jobs": jobs, "rounds": rounds}
    for name, rs in runs.items():
        out[name] = {
            "wall_s": statistics.median(r["wall_s"] for r in rs),
            "cpu_s": statistics.median(r["cpu_s"] for r in rs),
            "runs": [{"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]} for r in rs],
        }
    ratios = {}
    for a, b in (
        ("tcpaudit", "paramiko"),
        ("tcpaudit", "xargs"),
        ("tcpaudit_cli", "paramiko_cli"),
        ("tcpaudit_cli", "xargs"),
    ):
        if a in out and b in out:
            ratios[f"{a}/{b}"] = {"wall": out[a]["wall_s"] / out[b]["wall_s"], "cpu": out[a]["cpu_s"] / out[b]["cpu_s"]}
    out["ratios"] = ratios
    out["target"] = "tcpaudit <= 1.2x paramiko (wall)"
    out["notes"] = [
        f"{n_hosts} sshd on 127.0.0.1 high ports, {jobs} in parallel, {os.cpu_count()} CPU(s)",
        "CPU: this process + children (ssh, xargs); sshd servers excluded",
    ]
    return out


def render(res: dict[str, Any]) -> str:
    lines = [f"fleet sweep, {res['hosts']} hosts, {res['jobs']} jobs, median of {res['rounds']}:"]
    for name in ("tcpaudit", "paramiko", "xargs", "tcpaudit_cli", "paramiko_cli"):
        if name in res:
            lines.append(f"  {name:13s} wall {res[name]['wall_s']:7.2f}s   cpu {res[name]['cpu_s']:7.2f}s")
    for k, r in res["ratios"].items():
        lines.append(f"  {k:27s} wall {r['wall']:.2f}x   cpu {r['cpu']:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    result = run_fleet_bench(n)
    print(render(result))
