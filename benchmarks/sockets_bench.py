"""Socket-table scale benchmark: `tcpaudit host` over N real sockets, against the floor.

    sudo .venv/bin/python benchmarks/sockets_bench.py 200000 [--profile out.prof]

`run_socket_bench(n_sockets)` builds a fresh network namespace (`tcpaudit-test-<random>`, loopback
only) and fills it with real kernel sockets:

- ESTABLISHED pairs (25% of n), held open by several child processes, each below the per-process
  open-file limit (raised to its hard limit, ~20,000 here): a pair costs two descriptors;
- TIME-WAIT sockets (the rest), which hold no descriptor: connect/close cycles, client closing first,
  to 8 loopback addresses 127.0.0.x times several server ports, with ip_local_port_range 1024-65535,
  tcp_tw_reuse=0 and tcp_max_tw_buckets raised;
- a few listeners, on ports below the ephemeral range (500+, 600+).

Then it times, inside the namespace, `python -m tcpaudit host --format json` against the floor: a
process that imports only tcpaudit's runtime dependencies (typer, pydantic, paramiko, tabulate,
packaging, yaml), reads the same /proc and /sys files, runs the same `ss -tanoeH`,
`ss -tinH state established` and `iptables-save -t nat`, and does nothing with the output. The
difference is tcpaudit's own cost: parsing, building the Snapshot, running the rules, reporting.

TIME-WAIT lasts 60 s, so all timing happens within a minute of creating them; the result records
the socket count right before and after the timed runs.

Returned dict (all times in seconds, RSS in MiB):
    sockets            sockets in the namespace during the timed runs (ss count, min of before/after);
                       valid is False when TIME-WAIT sockets expired under the runs (machine too busy)
    composition        {"ESTAB": ..., "TIME-WAIT": ..., "LISTEN": ...} as created
    setup_s            time to create them
    tcpaudit_s         median wall time of `tcpaudit host --format json` (best, all runs too)
    floor_s            median wall time of the floor
    overhead_s         tcpaudit_s - floor_s
    sockets_per_s      sockets / overhead_s: tcpaudit's own throughput (wall clock)
    floor_netlink_*    the stricter floor: the same, with the socket table received over NETLINK_SOCK_DIAG (as
                       tcpaudit reads it) and not parsed, instead of running ss; sockets_per_s_netlink_floor
                       is tcpaudit's throughput against it
    tcpaudit_ss_*      tcpaudit made to take the table from ss text (TCPAUDIT_SOCKET_SOURCE=ss), its fallback
    floor_ratio        tcpaudit_s / floor_s
    tcpaudit_rss_mib   peak RSS of the tcpaudit process tree (wait4 rusage: python and its ss children)
    floor_rss_mib      the same for the floor
    tcpaudit_cpu_s     user+sys CPU of the tcpaudit process tree (floor_cpu_s: of the floor)
    cpu_overhead_s     tcpaudit_cpu_s - floor_cpu_s; sockets_per_cpu_s = sockets / cpu_overhead_s. tcpaudit runs
                       both ss commands at once and parses while they print, so on 2 cores its wall-clock
                       overhead hides part of its CPU cost; the CPU numbers do not.
    empty_*            the same runs in the namespace before any socket exists; fixed_overhead_s is
                       tcpaudit's cost that does not depend on the table (imports, models, rules),
                       marginal_sockets_per_s(_cpu_s) what is left per socket
    load_average       os.getloadavg() at the end: other work on the machine skews every number
    findings           rules that fired on the table (sanity: the run did the whole job)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
ADDRS = 8  # 127.0.0.1 .. 127.0.0.8 as destinations
PAIRS_PER_HOLDER = 8000  # 16,000 descriptors per holder process
TW_PORTS_PER_MAKER = 3

HOLDER = r"""
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
port, pairs, addrs = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("0.0.0.0", port))
srv.listen(4096)
held = []
for i in range(pairs):
    c = socket.create_connection((f"127.0.0.{i % addrs + 1}", port))
    held.append(c)
    held.append(srv.accept()[0])
print("READY", flush=True)
sys.stdin.read()  # hold the sockets until the benchmark closes stdin
"""

TW_MAKER = r"""
import socket, sys
ports, count, addrs = [int(p) for p in sys.argv[1].split(",")], int(sys.argv[2]), int(sys.argv[3])
servers = []
for p in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p))
    s.listen(4096)
    servers.append(s)
dests = [(f"127.0.0.{a + 1}", p, s.accept) for a in range(addrs) for p, s in zip(ports, servers)]
S, n = socket.socket, len(dests)
for i in range(count):
    addr, port, accept = dests[i % n]
    c = S()
    c.connect((addr, port))
    a = accept()[0]
    c.close()  # the client closes first: TIME-WAIT on its side, no descriptor held
    a.close()
print("READY", flush=True)
"""

# The floor: what any collector must pay - interpreter start, the same dependencies imported, the
# same files read, the same commands run - and nothing else.
FLOOR = r"""
import os, subprocess, sys
import typer, pydantic, paramiko, tabulate, packaging.version, yaml  # noqa: F401 - tcpaudit's runtime deps
FILES = sys.argv[1].split(",")
def read(path):
    try:
        with open(path, "rb", buffering=0) as f:
            while f.read(65536):
                pass
    except OSError:
        pass
for path in FILES:
    read(path)
for root in ("ipv4", "ipv6", "core", "netfilter"):
    for dirpath, dirnames, filenames in os.walk("/proc/sys/net/" + root):
        for fn in filenames:
            read(os.path.join(dirpath, fn))
subprocess.run(["ss", "-tanoeH"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
subprocess.run(["ss", "-tinH", "state", "established"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
if os.geteuid() == 0:
    subprocess.run(["iptables-save", "-t", "nat"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL)
"""


# The same floor, with the socket table read the way tcpaudit reads it locally now: the NETLINK_SOCK_DIAG
# dumps (IPv4 and IPv6, tcp_info asked for) received whole and not parsed, instead of running ss.
FLOOR_NETLINK = (
    FLOOR.split('subprocess.run(["ss"')[0]
    + r"""
import socket, struct
for family in (socket.AF_INET, socket.AF_INET6):
    nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 4)
    nl.send(struct.pack("=IHHII BBBB I 48x", 72, 20, 0x301, 1, 0, family, 6, 2, 0, 0xFFFFFFFF))
    done = False
    while not done:
        buf = nl.recv(65536)
        off = 0
        while off + 16 <= len(buf):
            length, kind = struct.unpack_from("=IH", buf, off)
            if kind in (2, 3) or length < 16:
                done = True
                break
            off += (length + 3) & ~3
    nl.close()
if os.geteuid() == 0:
    subprocess.run(["iptables-save", "-t", "nat"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                   stdin=subprocess.DEVNULL)
"""
)


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=60)


class _Namespace:
    def __init__(self) -> None:
        self.name = f"tcpaudit-test-{secrets.token_hex(4)}"
        self.procs: list[subprocess.Popen] = []
        self.dir = tempfile.mkdtemp(prefix="tcpaudit-bench-")

    def __enter__(self) -> _Namespace:
        _ip("netns", "add", self.name)
        self.exec_ok(["ip", "link", "set", "lo", "up"])
        return self

    def argv(self, argv: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]

    nice: int | None = None

    def setns_argv(self, argv: list[str]) -> list[str]:
        """Enter only the network namespace (setns). `ip netns exec` also remounts /sys privately, which hides
        /sys/fs/cgroup: `ss -e` then prints 'Failed to find cgroup2 mount' for every socket and runs ~4x
        slower - an artefact of the harness that no real host has, so the timed runs do not use it."""
        prefix = ["nice", "-n", str(self.nice)] if self.nice is not None else []
        return [*prefix, "nsenter", f"--net=/run/netns/{self.name}", *argv]

    def exec_ok(self, argv: list[str]) -> str:
        return subprocess.run(self.argv(argv), check=True, capture_output=True, text=True, timeout=120).stdout

    def script(self, name: str, source: str) -> str:
        path = os.path.join(self.dir, name)
        Path(path).write_text(source)
        return path

    def start(self, path: str, *args: str) -> subprocess.Popen:
        prefix = ["nice", "-n", str(self.nice)] if self.nice is not None else []
        p = subprocess.Popen(
            [*prefix, *self.argv([PYTHON, path, *args])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        return p

    def __exit__(self, *exc: object) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    s.close()
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def _await_ready(procs: list[subprocess.Popen], what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        assert p.stdout is not None
        line = p.stdout.readline()
        if line.strip() != "READY":
            err = p.stderr.read() if p.stderr else ""
            raise RuntimeError(f"{what} failed (exit {p.poll()}): {err[-1500:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} took longer than {timeout:.0f}s")


def _timed(argv: list[str], cwd: str) -> tuple[float, float, float, int]:
    """Wall time, peak RSS (MiB) and CPU seconds of a process tree, from wait4 on the child."""
    with open(os.devnull, "wb") as null:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=null, stderr=subprocess.PIPE, cwd=cwd)
        assert p.stderr is not None
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
    p.returncode = os.waitstatus_to_exitcode(status)
    p.stderr.close()
    if p.returncode not in (0, 1):
        raise RuntimeError(f"{' '.join(argv)} exited {p.returncode}: {err.decode(errors='replace')[-1500:]}")
    return wall, ru.ru_maxrss / 1024, ru.ru_utime + ru.ru_stime, p.returncode


def _count(ns: _Namespace) -> dict[str, int]:
    text = ns.exec_ok(["cat", "/proc/net/sockstat"])
    tcp = next(line.split() for line in text.splitlines() if line.startswith("TCP:"))
    vals = dict(zip(tcp[1::2], map(int, tcp[2::2]), strict=False))
    return {"inuse": vals["inuse"], "tw": vals["tw"], "total": vals["inuse"] + vals["tw"]}


def run_socket_bench(
    n_sockets: int = 200_000, repeats: int = 3, profile: str | None = None, nice: int | None = None
) -> dict[str, Any]:
    """See the module docstring. `nice` (e.g. -20) runs every timed command at that priority, tcpaudit and
    floor alike: on a machine shared with other work it approximates an idle one."""
    if os.geteuid() != 0:
        raise RuntimeError("run_socket_bench needs root (network namespaces, raised limits)")
    from tcpaudit.collect.local import FILES

    estab_pairs = max(1, n_sockets // 8)  # 25% of the sockets are ESTABLISHED
    holders = max(1, -(-estab_pairs // PAIRS_PER_HOLDER))
    makers = 2
    listeners = holders + makers * TW_PORTS_PER_MAKER
    tw = max(0, n_sockets - 2 * estab_pairs - listeners)
    result: dict[str, Any] = {
        "requested": n_sockets,
        "composition": {"ESTAB": 2 * estab_pairs, "TIME-WAIT": tw, "LISTEN": listeners},
    }
    with _Namespace() as ns:
        ns.nice = nice
        ns.exec_ok(
            [
                "sysctl",
                "-q",
                "-w",
                "net.ipv4.ip_local_port_range=1024 65535",
                "net.ipv4.tcp_tw_reuse=0",
                f"net.ipv4.tcp_max_tw_buckets={max(262144, 2 * n_sockets)}",
                "net.core.somaxconn=4096",
            ]
        )
        holder = ns.script("holder.py", HOLDER)
        maker = ns.script("tw_maker.py", TW_MAKER)
        floor = ns.script("floor.py", FLOOR)
        floor_nl = ns.script("floor_netlink.py", FLOOR_NETLINK)
        cmd = [PYTHON, "-m", "tcpaudit", "host", "--format", "json"]
        ss_cmd = ["env", "TCPAUDIT_SOCKET_SOURCE=ss", *cmd]  # the text path: ss, parsed while it prints
        floor_cmd = [PYTHON, floor, ",".join(FILES.values())]
        floor_nl_cmd = [PYTHON, floor_nl, ",".join(FILES.values())]
        # The empty namespace first: what both cost with no sockets (interpreter, imports, files, rules).
        empty: dict[str, list[tuple[float, float, float, int]]] = {"tcpaudit": [], "floor": []}
        for _ in range(repeats):
            empty["floor"].append(_timed(ns.setns_argv(floor_cmd), ns.dir))
            empty["tcpaudit"].append(_timed(ns.setns_argv(cmd), ns.dir))
        t0 = time.perf_counter()
        hs = []
        for h in range(holders):
            pairs = min(PAIRS_PER_HOLDER, estab_pairs - h * PAIRS_PER_HOLDER)
            hs.append(ns.start(holder, str(500 + h), str(pairs), str(ADDRS)))
        _await_ready(hs, "ESTABLISHED holders")
        tw_started = time.monotonic()
        ms = []
        for m in range(makers):
            ports = ",".join(str(600 + m * 10 + k) for k in range(TW_PORTS_PER_MAKER))
            share = tw // makers + (tw % makers if m == 0 else 0)
            ms.append(ns.start(maker, ports, str(share), str(ADDRS)))
        _await_ready(ms, "TIME-WAIT makers")
        result["setup_s"] = round(time.perf_counter() - t0, 2)
        before = _count(ns)

        if profile:
            cmd = [PYTHON, "-m", "cProfile", "-o", profile, "-m", "tcpaudit", "host", "--format", "json"]
        runs: dict[str, list[tuple[float, float, float, int]]] = {
            "tcpaudit": [],
            "floor": [],
            "floor_netlink": [],
            "tcpaudit_ss": [],
        }
        for _ in range(repeats):  # interleaved, so drift affects all alike
            runs["floor"].append(_timed(ns.setns_argv(floor_cmd), ns.dir))
            runs["tcpaudit"].append(_timed(ns.setns_argv(cmd), ns.dir))
            runs["floor_netlink"].append(_timed(ns.setns_argv(floor_nl_cmd), ns.dir))
            runs["tcpaudit_ss"].append(_timed(ns.setns_argv(ss_cmd), ns.dir))
        after = _count(ns)
        # One untimed run for the findings (and proof the table was complete).
        out = subprocess.run(
            ns.setns_argv([PYTHON, "-m", "tcpaudit", "host", "--format", "json"]),
            capture_output=True,
            text=True,
            cwd=ns.dir,
            timeout=300,
        )
        report = json.loads(out.stdout)
        result["elapsed_since_first_time_wait_s"] = round(time.monotonic() - tw_started, 1)
        for p in hs:
            assert p.stdin is not None
            p.stdin.close()

    sockets = min(before["total"], after["total"])
    ta = statistics.median(r[0] for r in runs["tcpaudit"])
    fl = statistics.median(r[0] for r in runs["floor"])
    overhead = ta - fl
    cpu_ta = statistics.median(r[2] for r in runs["tcpaudit"])
    cpu_fl = statistics.median(r[2] for r in runs["floor"])
    fixed = statistics.median(r[0] for r in empty["tcpaudit"]) - statistics.median(r[0] for r in empty["floor"])
    fixed_cpu = statistics.median(r[2] for r in empty["tcpaudit"]) - statistics.median(r[2] for r in empty["floor"])
    target = report["targets"][0]
    result.update(
        {
            "sockets": sockets,
            "sockets_before_after": [before["total"], after["total"]],
            # TIME-WAIT sockets expire after 60 s: on a machine too busy to finish in time the table shrank
            # under the timed runs and the numbers describe a smaller table than asked for
            "valid": after["total"] >= 0.98 * before["total"] and before["total"] >= 0.98 * n_sockets,
            "tcpaudit_s": round(ta, 3),
            "tcpaudit_best_s": round(min(r[0] for r in runs["tcpaudit"]), 3),
            "tcpaudit_runs_s": [round(r[0], 3) for r in runs["tcpaudit"]],
            "floor_s": round(fl, 3),
            "floor_runs_s": [round(r[0], 3) for r in runs["floor"]],
            "overhead_s": round(overhead, 3),
            "sockets_per_s": round(sockets / overhead) if overhead > 0 else None,
            "floor_ratio": round(ta / fl, 2) if fl > 0 else None,
            "tcpaudit_rss_mib": round(max(r[1] for r in runs["tcpaudit"]), 1),
            "floor_rss_mib": round(max(r[1] for r in runs["floor"]), 1),
            "tcpaudit_cpu_s": round(cpu_ta, 3),
            "floor_cpu_s": round(cpu_fl, 3),
            "cpu_overhead_s": round(cpu_ta - cpu_fl, 3),
            "sockets_per_cpu_s": round(sockets / (cpu_ta - cpu_fl)) if cpu_ta > cpu_fl else None,
            # the same with no sockets: start-up, imports and rules that do not depend on the table
            "empty_tcpaudit_s": round(statistics.median(r[0] for r in empty["tcpaudit"]), 3),
            "empty_floor_s": round(statistics.median(r[0] for r in empty["floor"]), 3),
            "fixed_overhead_s": round(fixed, 3),
            "marginal_sockets_per_s": round(sockets / (overhead - fixed)) if overhead > fixed else None,
            "marginal_sockets_per_cpu_s": (
                round(sockets / (cpu_ta - cpu_fl - fixed_cpu)) if cpu_ta - cpu_fl > fixed_cpu else None
            ),
            "empty_tcpaudit_rss_mib": round(max(r[1] for r in empty["tcpaudit"]), 1),
            # the stricter floor (sock_diag received, not parsed) and tcpaudit's own ss text path (the fallback)
            **{
                f"{name}_{key}": val
                for name in ("floor_netlink", "tcpaudit_ss")
                for key, val in (
                    ("s", round(statistics.median(r[0] for r in runs[name]), 3)),
                    ("runs_s", [round(r[0], 3) for r in runs[name]]),
                    ("cpu_s", round(statistics.median(r[2] for r in runs[name]), 3)),
                    ("rss_mib", round(max(r[1] for r in runs[name]), 1)),
                )
            },
            "sockets_per_s_netlink_floor": (
                round(sockets / (ta - statistics.median(r[0] for r in runs["floor_netlink"])))
                if ta > statistics.median(r[0] for r in runs["floor_netlink"])
                else None
            ),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "nice": nice,
            "note": (
                "timed inside the namespace via nsenter --net (setns); tcpaudit reads the table over "
                "NETLINK_SOCK_DIAG, the floor runs ss -tanoeH and ss -tinH (floor_netlink: receives the same "
                "netlink dumps and parses nothing; tcpaudit_ss: tcpaudit made to run and parse ss)"
                + (
                    ""
                    if after["total"] >= 0.98 * before["total"]
                    else "; NOT VALID: TIME-WAIT sockets expired under the timed runs (machine too busy)"
                )
                + (
                    f"; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
                    if os.getloadavg()[0] > 1.5
                    else ""
                )
            ),
            "exit_code": report["summary"]["exit_code"],
            "findings": sorted({f["rule"] for f in target["findings"]}),
            "gaps": target["gaps"],
        }
    )
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("n_sockets", type=int, nargs="?", default=200_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--profile", help="also write a cProfile of the tcpaudit runs to this path")
    ap.add_argument("--nice", type=int, help="run the timed commands at this priority (e.g. -20 on a busy machine)")
    args = ap.parse_args(argv)
    res = run_socket_bench(
        args.n_sockets,
        repeats=args.repeats,
        profile=os.path.abspath(args.profile) if args.profile else None,
        nice=args.nice,
    )
    print(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
