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

import contextlib
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


def _tests_sshd():
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
            n = 0  # chunks as they come: ChannelFile.read() concatenates bytes, quadratic in the dump size
            while True:
                chunk = stdout.channel.recv(1 << 16)
                if not chunk:
                    return n
                n += len(chunk)
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


def _minimal_module():
    ns: dict[str, Any] = {"__name__": "minimal_paramiko"}
    exec(compile(MINIMAL, "minimal_paramiko", "exec"), ns)
    return ns["collect_all"]


# ---- the runs -------------------------------------------------------------------------------------------
def _run_tcpaudit(fleet, jobs: int) -> dict[str, Any]:
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


def _run_tcpaudit_cli(fleet, jobs: int, sshd) -> dict[str, Any]:
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


def _spec(fleet, jobs: int, sshd) -> dict[str, Any]:
    return {
        "hosts": fleet.endpoints(),
        "user": sshd.login_user(),
        "key": str(fleet.keys.client_key),
        "known_hosts": str(fleet.keys.known_hosts),
        "script": str(sshd.COLLECTOR),
        "jobs": jobs,
    }


def _run_paramiko(fleet, jobs: int, sshd) -> dict[str, Any]:
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


def _run_paramiko_cli(fleet, jobs: int, sshd) -> dict[str, Any]:
    p = subprocess.run(
        [sys.executable, "-c", MINIMAL],
        input=json.dumps(_spec(fleet, jobs, sshd)).encode(),
        capture_output=True,
        timeout=600,
    )
    if p.returncode != 0:
        raise RuntimeError(f"minimal paramiko: {p.stderr.decode(errors='replace')[-300:]}")
    return {"hosts_ok": sum(1 for n in json.loads(p.stdout) if n > 0)}


def _run_xargs(fleet, jobs: int, sshd) -> dict[str, Any]:
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


# ---- scale: 500 and 1,000 hosts, the controllers as their own processes, sampled ------------------------
SCALE_SIZES = [100, 500, 1000]
PORTS_PER_SSHD = 16  # 1,000 hosts = 63 sshd listeners (each connection still gets its own sshd process)
SAMPLE_S = 0.05


def raise_nofile() -> dict[str, int]:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit (inherited by what it starts)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    new_soft, new_hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft_before": soft, "soft": new_soft, "hard": new_hard}


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        pass
    return out


def _tree(pid: int) -> list[int]:
    todo, seen = [pid], []
    while todo:
        p = todo.pop()
        seen.append(p)
        todo += _children(p)
    return seen


def _status_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB of one process; (0, 0) when it is gone."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _nfds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


class _Sampler:
    """Samples a running process (and, tree=True, everything under it) every SAMPLE_S: peak RSS, peak open
    fds, the number of processes; and the process's own VmHWM (its exact peak RSS, kept by the kernel)."""

    def __init__(self, pid: int, tree: bool):
        import threading

        self.pid, self.tree = pid, tree
        self.peak_rss_kb = self.peak_fds = self.peak_procs = self.hwm_kb = self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        pids = _tree(self.pid) if self.tree else [self.pid]
        rss = fds = 0
        for p in pids:
            r, h = _status_kb(p)
            rss += r
            fds += _nfds(p)
            if p == self.pid and h:
                self.hwm_kb = max(self.hwm_kb, h)
        self.samples += 1
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_fds = max(self.peak_fds, fds)
        self.peak_procs = max(self.peak_procs, len(pids))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(SAMPLE_S)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def _sshd_cpu(fleet) -> float:
    """CPU seconds of the hosts' side so far: the sshd listeners and the per-connection sshd processes they
    reaped (with the shells and collector commands those reaped), from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for s in fleet.servers:
        try:
            with open(f"/proc/{s.proc.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        except (OSError, ValueError, AttributeError):
            pass
    return total


def _run_sampled(
    argv: list[str],
    *,
    tree: bool,
    stdin_bytes: bytes | None,
    stdout_path: Path,
    env: dict[str, str] | None = None,
    timeout: float = 3600,
) -> dict[str, Any]:
    """Start argv as its own process, sample it while it runs, reap it with wait4 (its own CPU and that of
    the children it reaped). RSS comes from /proc (VmHWM of the process; the sampled sum of a tree), never
    from ru_maxrss, which after a vfork+exec from this large process carries this process's high-water mark."""
    import threading

    with open(stdout_path, "wb") as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin_bytes is not None else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=env,
        )
        sampler = _Sampler(p.pid, tree)
        if stdin_bytes is not None:
            pipe = p.stdin
            assert pipe is not None

            def feed() -> None:
                with contextlib.suppress(OSError):
                    pipe.write(stdin_bytes)
                    pipe.close()

            threading.Thread(target=feed, daemon=True).start()
        killer = threading.Timer(timeout, lambda: os.kill(p.pid, 9))
        killer.start()
        try:
            _, status, ru = os.wait4(p.pid, 0)
        finally:
            killer.cancel()
            sampler.stop()
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        err.seek(0)
        err_text = err.read().decode("utf-8", "replace")
    return {
        "wall_s": wall,
        "cpu_user_s": ru.ru_utime,
        "cpu_sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_kb": sampler.hwm_kb if not tree else sampler.peak_rss_kb,
        "peak_rss_sampled_kb": sampler.peak_rss_kb,
        "peak_fds": sampler.peak_fds,
        "peak_procs": sampler.peak_procs,
        "samples": sampler.samples,
        "rc": p.returncode,
        "stderr_tail": err_text.strip().splitlines()[-3:],
    }


def _scale_tcpaudit(fleet, jobs: int | None, work: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SSH_AUTH_SOCK", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    hosts = work / "hosts.txt"
    hosts.write_text("".join(a + "\n" for a in fleet.aliases()))
    out = work / "tcpaudit.json"
    argv = [sys.executable, "-m", "tcpaudit", "fleet", "--inventory", str(hosts)]
    argv += ["--ssh-config", str(fleet.ssh_config), "-f", "json"]
    if jobs is not None:
        argv += ["--jobs", str(jobs)]
    m = _run_sampled(argv, tree=False, stdin_bytes=None, stdout_path=out, env=env)
    try:
        report = json.loads(out.read_text())
    except ValueError:
        raise RuntimeError(f"tcpaudit fleet exit {m['rc']}: {m['stderr_tail']}") from None
    names = [t["name"] for t in report["targets"]]
    m["hosts_ok"] = sum(1 for t in report["targets"] if t["status"] == "ok")
    m["hosts_reported"] = len(names)
    m["hosts_once"] = sorted(names) == sorted(fleet.aliases())
    m["failed"] = [f"{t['name']}: {t['status']}: {t['error']}" for t in report["targets"] if t["status"] != "ok"][:5]
    timeline = report.get("extra", {}).get("fleet", {}).get("timeline", {})
    m["timeline_entries"] = len(timeline)
    m["phases"] = _phase_stats(timeline)
    m["report_bytes"] = out.stat().st_size
    out.unlink()
    return m


def _phase_stats(timeline: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Median, 90th and 99th percentile and maximum of each phase's seconds over the hosts of one sweep."""
    out = {}
    for phase in ("connect_s", "collect_s", "audit_s"):
        v = sorted(e[phase] for e in timeline.values())
        if v:
            out[phase] = {
                "p50": v[len(v) // 2],
                "p90": v[min(len(v) - 1, len(v) * 9 // 10)],
                "p99": v[min(len(v) - 1, len(v) * 99 // 100)],
                "max": v[-1],
            }
    return out


def _sockets_now() -> int:
    """Sockets in this namespace: every test host's collector reports this table (they share the machine)."""
    try:
        p = subprocess.run(["ss", "-tanH"], capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        return len(p.stdout.splitlines())
    except (OSError, subprocess.SubprocessError):
        return -1


def _scale_paramiko(fleet, jobs: int, sshd, work: Path) -> dict[str, Any]:
    out = work / "paramiko.json"
    spec = json.dumps(_spec(fleet, jobs, sshd)).encode()
    m = _run_sampled([sys.executable, "-c", MINIMAL], tree=False, stdin_bytes=spec, stdout_path=out)
    try:
        sizes = json.loads(out.read_text())
    except ValueError:
        raise RuntimeError(f"minimal paramiko exit {m['rc']}: {m['stderr_tail']}") from None
    m["hosts_ok"] = sum(1 for n in sizes if n > 0)
    m["hosts_reported"] = len(sizes)
    m["hosts_once"] = len(sizes) == len(fleet.aliases())
    return m


def _scale_xargs(fleet, jobs: int, sshd, work: Path) -> dict[str, Any]:
    outdir = work / "xargs-out"
    outdir.mkdir(exist_ok=True)
    lines = "".join(f"{a} {sshd.COLLECTOR} {outdir / a}\n" for a in fleet.aliases())
    script = 'exec ssh -F "$0" -o BatchMode=yes -o StrictHostKeyChecking=yes "$1" sh -s < "$2" > "$3"'
    m = _run_sampled(
        ["xargs", "-P", str(jobs), "-L", "1", "sh", "-c", script, str(fleet.ssh_config)],
        tree=True,
        stdin_bytes=lines.encode(),
        stdout_path=work / "xargs.stdout",
    )
    files = list(outdir.iterdir())
    m["hosts_ok"] = sum(1 for p in files if p.stat().st_size > 0)
    m["hosts_reported"] = len(files)
    m["hosts_once"] = sorted(p.name for p in files) == sorted(fleet.aliases())
    for p in files:
        p.unlink()
    return m


SCALE_TOOLS = ("tcpaudit", "paramiko", "xargs")


def run_scale_bench(
    n_hosts: int, jobs: int = MAX_JOBS, tools: tuple[str, ...] = SCALE_TOOLS, tcpaudit_jobs: list[int] | None = None
) -> dict[str, Any]:
    """A test fleet of n real sshd hosts (127.0.0.1, one port each, PORTS_PER_SSHD ports per sshd process),
    swept once by each contender as its own process at the same parallelism: `tcpaudit fleet --jobs J`, the
    minimal paramiko pool, `xargs -P J` OpenSSH. Per contender: wall, controller CPU (and per host), peak RSS,
    peak open fds, hosts ok, and the hosts' own CPU during that sweep. `tcpaudit_jobs`: extra tcpaudit
    sweeps at other --jobs (fds and wall against parallelism)."""
    sshd = _tests_sshd()
    if not sshd.have_sshd():
        raise RuntimeError("OpenSSH server (/usr/sbin/sshd) or ssh-keygen not installed")
    nofile = raise_nofile()
    out: dict[str, Any] = {"hosts": n_hosts, "jobs": jobs, "nofile": nofile, "ports_per_sshd": PORTS_PER_SSHD}
    with tempfile.TemporaryDirectory(prefix="tcpaudit-fleet-scale-") as tmp:
        t0 = time.perf_counter()
        fleet = sshd.start_fleet(Path(tmp), n_hosts, prefix="s", ports_per_server=PORTS_PER_SSHD)
        out["fleet_start_s"] = round(time.perf_counter() - t0, 2)
        out["sshd_processes"] = len(fleet.servers)
        work = Path(tmp) / "work"
        work.mkdir()
        try:
            runners: dict[str, Callable[[], dict[str, Any]]] = {
                "tcpaudit": lambda: _scale_tcpaudit(fleet, jobs, work),
                "paramiko": lambda: _scale_paramiko(fleet, jobs, sshd, work),
                "xargs": lambda: _scale_xargs(fleet, jobs, sshd, work),
            }
            for j in tcpaudit_jobs or []:
                runners[f"tcpaudit_j{j}"] = lambda j=j: _scale_tcpaudit(fleet, j, work)  # type: ignore[misc]
            for name in (*tools, *(f"tcpaudit_j{j}" for j in tcpaudit_jobs or [])):
                h0 = _sshd_cpu(fleet)
                log(f"scale: {n_hosts} hosts: {name}")
                sockets = _sockets_now()
                m = runners[name]()
                m["hosts_cpu_s"] = round(_sshd_cpu(fleet) - h0, 2)
                m["cpu_per_host_ms"] = 1000 * m["cpu_s"] / n_hosts
                m["tcp_sockets_at_start"] = sockets
                out[name] = m
        finally:
            fleet.stop()
    if "tcpaudit" in out and "paramiko" in out:
        out["cpu_ratio_tcpaudit_paramiko"] = out["tcpaudit"]["cpu_s"] / out["paramiko"]["cpu_s"]
    out["notes"] = [
        f"{n_hosts} sshd hosts on 127.0.0.1 ({out['sshd_processes']} sshd listeners, up to {PORTS_PER_SSHD} "
        f"ports each), {jobs} in parallel, {os.cpu_count()} CPU(s), RLIMIT_NOFILE {nofile['soft']}/{nofile['hard']}"
    ]
    return out


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


RSS_LIMIT_MIB = 200
CPU_TARGET = 1.5


def scale_rows(sizes: list[int], jobs: int = MAX_JOBS) -> list[dict[str, Any]]:
    """benchmarks/run.py's `scale` section: per size, tcpaudit fleet against the minimal paramiko pool
    (judged on controller CPU) and xargs -P ssh, plus its peak RSS and peak open fds."""
    from benchmarks._common import failed, row

    rows: list[dict[str, Any]] = []
    for n in sizes:
        try:
            res = run_scale_bench(n, jobs)
        except Exception as exc:  # noqa: BLE001 - one broken size must not sink the run
            why = f"{type(exc).__name__}: {exc}"
            rows.append(failed("scale", f"{n} hosts", "tcpaudit fleet", "paramiko pool", why))
            continue
        t, p, x = res["tcpaudit"], res["paramiko"], res["xargs"]
        every = all(res[k]["hosts_once"] and res[k]["hosts_ok"] == n for k in SCALE_TOOLS)
        note = (
            f"{res['notes'][0]}; every host once and ok for all three: {'yes' if every else 'NO'}; "
            f"peak RSS MiB {t['peak_rss_kb'] / 1024:.0f} / {p['peak_rss_kb'] / 1024:.0f} / "
            f"{x['peak_rss_kb'] / 1024:.0f} (xargs: its whole tree), peak fds {t['peak_fds']} / {p['peak_fds']} / "
            f"{x['peak_fds']}; hosts' CPU s {t['hosts_cpu_s']:.0f} / {p['hosts_cpu_s']:.0f} / {x['hosts_cpu_s']:.0f}"
        )
        r = row(
            "scale",
            f"{n} hosts",
            subject="tcpaudit fleet",
            baseline="paramiko pool script",
            s=t,
            b=p,
            note=note,
            extra={"raw": res},
        )
        r["target"] = f"CPU <= {CPU_TARGET:g}x"
        r["met"] = r["ratio_cpu"] <= CPU_TARGET
        r["margin"] = CPU_TARGET / r["ratio_cpu"]
        rows.append(r)
        rows.append(row("scale", f"{n} hosts", subject="tcpaudit fleet", baseline="xargs -P ssh", s=t, b=x))
        r = row("scale", f"{n} hosts, peak RSS", subject="tcpaudit fleet", baseline="-")
        r["target"] = f"< {RSS_LIMIT_MIB} MiB"
        r["verdict"] = (
            f"{t['peak_rss_kb'] / 1024:.0f} MiB: {'met' if t['peak_rss_kb'] < RSS_LIMIT_MIB * 1024 else 'MISSED'}"
        )
        rows.append(r)
        r = row("scale", f"{n} hosts, peak open fds", subject="tcpaudit fleet", baseline="-")
        r["verdict"] = f"{t['peak_fds']} at --jobs {jobs}"
        rows.append(r)
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("hosts", nargs="?", type=int, default=50)
    ap.add_argument("--scale", action="store_true", help="scale mode: each contender its own sampled process")
    ap.add_argument("--jobs", type=int, default=MAX_JOBS)
    ap.add_argument("--tools", default=",".join(SCALE_TOOLS))
    ap.add_argument("--tcpaudit-jobs", default="", help="scale mode: extra tcpaudit sweeps at these --jobs")
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    if a.scale:
        extra_jobs = [int(x) for x in a.tcpaudit_jobs.split(",") if x]
        res = run_scale_bench(a.hosts, a.jobs, tuple(x for x in a.tools.split(",") if x), extra_jobs)
        text = json.dumps(res, indent=1)
        if a.out:
            a.out.write_text(text)
        print(text)
    else:
        print(render(run_fleet_bench(a.hosts)))
