"""`tcpaudit host --all-netns` on 10 and 200 network namespaces, against the floor of reading the same data.

    sudo .venv/bin/python benchmarks/netns_bench.py 10 200 [--repeats 5] [--out r.json]

The namespaces (ManyNetns) are made by one holder process, started as `unshare --mount --propagation
private`: for each namespace it calls unshare(CLONE_NEWNET), sets `lo` up (SIOCSIFFLAGS), opens a few real
sockets there - a listener, two established pairs it keeps, TIME-WAIT sockets from connections it closes
client-first - and bind-mounts /proc/thread-self/ns/net onto `ta-nsscale-<i>` in a tmpfs it mounted over
a private temporary directory, as `ip netns add` does under /run/netns. Everything lives in the holder's
private mount namespace: when the holder exits (stdin closed, or killed) the mounts go with it and the
kernel frees the namespaces; nothing is left on the machine whatever happens to the benchmark. Every
measured process runs in that mount namespace (`nsenter --mount=/proc/HOLDER/ns/mnt`), where
/proc/self/mountinfo shows the bind mounts. 1,000 namespaces take ~1 s to make this way.

Two comparisons, each interleaved (A B A B ...) after a warm-up, median of N:

  in process   one Python process (IN_PROCESS) that imports tcpaudit once, then alternates
               - tcpaudit: enumerate_netns + name_entries + collect_all_netns + audit_netns + build_report,
                 cut to the bench's namespaces and the host;
               - the plain floor: one worker thread, setns into each of the same namespaces in turn, read
                 every file under /proc/sys/net/{ipv4,ipv6,core,netfilter} (os.walk, open, read 64 KiB),
                 the /proc/thread-self/net counters tcpaudit reads, and receive the IPv4 and IPv6
                 sock_diag dumps whole (tcp_info asked for), parsing nothing - the issue's floor;
               - the strict floor: the same, opening each sysctl relative to its directory's fd, reading
                 4 KiB, and one TCPDIAG_GETSOCK dump for both families (what tcpaudit does; the cheapest way
                 known here to read the same data).
  CLI          `tcpaudit host --all-netns --format json` as its own process, against the floor as its own
               process (imports tcpaudit's runtime dependencies, enumerates /proc/*/ns/net and mountinfo,
               then the plain floor over every namespace found). Both see every namespace of the machine,
               the bench's and whatever else exists; the row says how many.

Per namespace: the wall time of a run divided by the namespaces it covered. Peak RSS: of the
in-process script (ru_maxrss) and of the CLI process, at each namespace count; flat means the
per-namespace snapshots are dropped once audited.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402
    BenchError,
    interleaved,
    log,
    measure_process,
    row,
    tcpaudit_argv,
    unavailable,
)

PREFIX = "ta-nsscale-"
SIZES = (10, 200)
QUICK_SIZES = (10,)

# The holder: run as `unshare --mount --propagation private python -c HOLDER N DIR SOCKETS`.
HOLDER = r"""
import ctypes, fcntl, json, os, socket, struct, sys
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET, MS_BIND, SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x40000000, 4096, 0x8913, 0x8914, 1

def check(ret, what):
    if ret != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")

n, top, sockets = int(sys.argv[1]), sys.argv[2], sys.argv[3] == "1"
check(libc.mount(b"ta-nsscale", top.encode(), b"tmpfs", 0, b"size=4m,mode=0755"), "mount tmpfs")
held, inodes, fds = [], [], []

def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, SIOCGIFFLAGS, struct.pack("16sH14x", b"lo", 0))
    flags = struct.unpack("16sH14x", ifr)[1]
    fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | IFF_UP))
    s.close()

def time_wait(srv, k=2):
    for _ in range(k):
        c = socket.create_connection(srv.getsockname())
        a = srv.accept()[0]
        c.close()  # the client closes first: its side stays in TIME-WAIT, holding no descriptor
        a.close()

servers = []
for i in range(n):
    check(libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
    lo_up()
    if sockets:
        srv = socket.socket()
        srv.bind(("127.0.0.1", 8080))
        srv.listen(16)
        servers.append(srv)
        for _ in range(2):
            c = socket.create_connection(("127.0.0.1", 8080))
            held += [c, srv.accept()[0]]
        time_wait(srv)
    path = f"{top}/ta-nsscale-{i}"
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
    check(libc.mount(b"/proc/thread-self/ns/net", path.encode(), None, MS_BIND, None), "bind mount")
    inodes.append(os.stat(path).st_ino)
    if sockets:
        fds.append(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
print("READY " + json.dumps({"pid": os.getpid(), "inodes": inodes}), flush=True)
for line in sys.stdin:  # "tw": new TIME-WAIT sockets everywhere (they last 60 s)
    for fd, srv in zip(fds, servers):
        check(libc.setns(fd, CLONE_NEWNET), "setns")
        time_wait(srv)
    print("OK", flush=True)
"""


class ManyNetns:
    """N namespaces held by one process in a private mount namespace (see the module docstring).

    with ManyNetns(1000, sockets=False) as m: m.inodes, m.pid, m.prefix() (argv prefix that enters the
    holder's mount namespace). Leaving the block (or the holder dying) frees everything."""

    def __init__(self, n: int, sockets: bool = True, python: str = sys.executable):
        self.n, self.sockets, self.python = n, sockets, python
        self.dir = ""
        self.proc: subprocess.Popen | None = None
        self.pid = 0
        self.inodes: list[int] = []
        self.setup_s = 0.0

    def __enter__(self) -> ManyNetns:
        if shutil.which("unshare") is None or shutil.which("nsenter") is None:
            raise BenchError("util-linux unshare/nsenter are needed")
        self.dir = tempfile.mkdtemp(prefix=PREFIX)
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", self.python, "-c", HOLDER]
            + [str(self.n), self.dir, "1" if self.sockets else "0"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if not line.startswith("READY "):
                self.proc.wait(10)
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise BenchError(f"the namespace holder failed: {err.strip()[-500:] or 'no output'}")
            info = json.loads(line[6:])
        except BaseException:
            self.close()
            raise
        self.setup_s = time.perf_counter() - t0
        self.pid, self.inodes = info["pid"], info["inodes"]
        return self

    def prefix(self) -> list[str]:
        """argv prefix: run a command in the holder's mount namespace (cwd kept)."""
        return ["nsenter", f"--mount=/proc/{self.pid}/ns/mnt", f"--wd={os.getcwd()}", "--"]

    def refresh_time_wait(self) -> None:
        if self.proc is not None and self.sockets and self.proc.stdin and self.proc.stdout:
            self.proc.stdin.write("tw\n")
            self.proc.stdin.flush()
            if self.proc.stdout.readline().strip() != "OK":
                raise BenchError("the namespace holder did not refresh its TIME-WAIT sockets")

    def close(self) -> None:
        if self.proc is not None:
            for stream in (self.proc.stdin,):
                try:
                    if stream:
                        stream.close()
                except OSError:
                    pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()
            self.proc = None
        if self.dir:
            try:
                os.rmdir(self.dir)  # empty again: the tmpfs lived in the holder's mount namespace only
            except OSError:
                pass
            self.dir = ""

    def __exit__(self, *exc: object) -> None:
        self.close()


# The plain and strict floors, shared by the in-process script and the floor process (no tcpaudit import).
FLOOR_CODE = r"""
import ctypes, os, socket, struct, threading
_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000
COUNTERS = ("netstat", "snmp", "sockstat", "sockstat6", "stat/nf_conntrack")
SYSCTL_DIRS = ("/proc/sys/net/ipv4", "/proc/sys/net/ipv6", "/proc/sys/net/core", "/proc/sys/net/netfilter")
_REQ = struct.Struct("=IHHII BBBB I 48x")
_REQ_V1 = struct.Struct("=IHHII BBBB 48x II")

def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")

def _read(path):
    try:
        with open(path, "rb", buffering=0) as f:
            while f.read(65536):
                pass
    except OSError:
        pass

def _plain_sysctls():
    for top in SYSCTL_DIRS:
        for dirpath, dirnames, filenames in os.walk(top):
            for fn in filenames:
                _read(os.path.join(dirpath, fn))

def _strict_dir(path):
    try:
        dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with os.scandir(dfd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
        for name, is_dir in entries:
            if is_dir:
                _strict_dir(path + "/" + name)
                continue
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dfd)
            except OSError:
                continue
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            os.close(fd)
    finally:
        os.close(dfd)

def _strict_sysctls():
    for top in SYSCTL_DIRS:
        _strict_dir(top)

def _dump(family):
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 4)  # NETLINK_SOCK_DIAG
    try:
        if family == socket.AF_UNSPEC:  # TCPDIAG_GETSOCK: both families in one walk of the hash tables
            s.send(_REQ_V1.pack(_REQ_V1.size, 18, 0x301, 1, 0, 0, 0, 0, 1 << 1, 0xFFF, 0))
        else:  # SOCK_DIAG_BY_FAMILY, tcp_info, every state
            s.send(_REQ.pack(_REQ.size, 20, 0x301, 1, 0, family, 6, 1 << 1, 0, 0xFFF))
        while True:
            buf = s.recv(1 << 16)
            off = 0
            while off + 16 <= len(buf):
                length, kind = struct.unpack_from("=IH", buf, off)
                if kind in (2, 3) or length < 16:  # NLMSG_ERROR, NLMSG_DONE
                    return
                off += (length + 3) & ~3
            if not buf:
                return
    finally:
        s.close()

def floor_sweep(paths, strict=False):
    # One worker thread enters each namespace (path: an nsfs file) in turn, reads, and comes back.
    sysctls = _strict_sysctls if strict else _plain_sysctls
    done = []
    def work():
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                _setns(fd)
            except OSError:
                os.close(fd)
                continue
            sysctls()
            for name in COUNTERS:
                _read("/proc/thread-self/net/" + name)
            if strict:
                _dump(socket.AF_UNSPEC)
            else:
                _dump(socket.AF_INET)
                _dump(socket.AF_INET6)
            _setns(home)
            os.close(fd)
            done.append(path)
        os.close(home)
    t = threading.Thread(target=work)
    t.start()
    t.join()
    return len(done)

def enumerate_paths():
    # What any sweep must do first: every /proc/PID/ns/net (one per inode) and every nsfs bind mount.
    seen, paths = set(), []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                ino = os.stat(f"/proc/{pid}/ns/net").st_ino
            except OSError:
                continue
            if ino not in seen:
                seen.add(ino)
                paths.append(f"/proc/{pid}/ns/net")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if right.startswith("nsfs ") and fields[3].startswith("net:["):
                ino = int(fields[3][5:-1])
                if ino not in seen:
                    seen.add(ino)
                    paths.append(fields[4])
    return paths
"""

FLOOR_PROCESS = (
    "import typer, pydantic, paramiko, tabulate, packaging.version, yaml  # tcpaudit's runtime dependencies\n"
    + FLOOR_CODE
    + "\nimport sys\nn = floor_sweep(enumerate_paths())\nsys.stdout.write(str(n))\n"
)

# In one process: tcpaudit's sweep and the two floors over the same namespaces, interleaved.
IN_PROCESS = (
    FLOOR_CODE
    + r"""
import json, resource, statistics, sys, time
from tcpaudit.audit import AuditOptions, audit_netns, build_report
from tcpaudit.collect.netns import collect_all_netns, enumerate_netns, name_entries

wanted, repeats, top = set(json.loads(sys.argv[1])), int(sys.argv[2]), sys.argv[3]
# the host namespace too, as tcpaudit reads it (setns into one's own namespace is allowed and changes nothing)
paths = ["/proc/self/ns/net"] + sorted(os.path.join(top, p) for p in os.listdir(top))

def tcpaudit_sweep():
    enum = enumerate_netns()
    name_entries(enum)
    enum.entries = [e for e in enum.entries if e.inode == enum.host_inode or e.inode in wanted]
    report = build_report(audit_netns(collect_all_netns(enum), AuditOptions()))
    statuses = [t.status.value for t in report.targets]
    return len(report.targets), statuses.count("ok")

def timed(fn):
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = fn()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = sum(getattr(b, f) - getattr(a, f) for a, b in ((r0, r1), (c0, c1)) for f in ("ru_utime", "ru_stime"))
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_kb": r1.ru_maxrss}, out

subjects = {
    "tcpaudit": tcpaudit_sweep,
    "floor": lambda: floor_sweep(paths),
    "strict_floor": lambda: floor_sweep(paths, strict=True),
}
for fn in subjects.values():  # warm-up: imports done, caches filled, as in a long-running process
    fn()
samples = {k: [] for k in subjects}
outs = {}
for _ in range(repeats):
    for name, fn in subjects.items():
        m, outs[name] = timed(fn)
        samples[name].append(m)
result = {}
for name, ms in samples.items():
    walls = sorted(m["wall_s"] for m in ms)
    result[name] = {
        "wall_s": statistics.median(walls),
        "cpu_s": statistics.median(m["cpu_s"] for m in ms),
        "peak_rss_kb": max(m["peak_rss_kb"] for m in ms),
        "walls_s": [round(w, 4) for w in walls],
        "n": len(ms),
    }
result["tcpaudit_targets"], result["tcpaudit_ok"] = outs["tcpaudit"]
result["floor_namespaces"] = outs["floor"]
print(json.dumps(result))
"""
)


def _in_process(m: ManyNetns, repeats: int) -> dict[str, Any]:
    out = subprocess.run(
        [*m.prefix(), sys.executable, "-c", IN_PROCESS, json.dumps(m.inodes), str(repeats), m.dir],
        capture_output=True,
        text=True,
        timeout=1800,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0:
        raise BenchError(f"in-process bench exited {out.returncode}: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _cli_runs(m: ManyNetns, repeats: int) -> tuple[dict[str, dict[str, Any]], int]:
    work = tempfile.mkdtemp(prefix=PREFIX + "cli-")
    report = os.path.join(work, "report.json")
    try:
        runs = {
            "tcpaudit": lambda: measure_process(
                [*m.prefix(), *tcpaudit_argv("host", "--all-netns", "--format", "json")],
                cwd=work,
                stdout=report,
                ok_codes=(0, 1, 3),  # findings, or another helper's namespace vanishing mid-run
            ),
            "floor": lambda: measure_process([*m.prefix(), sys.executable, "-c", FLOOR_PROCESS], cwd=work),
        }
        res = interleaved(runs, repeats)
        with open(report, encoding="utf-8") as f:
            targets = len(json.load(f)["targets"])
        return res, targets
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_netns_bench(sizes: tuple[int, ...] = SIZES, repeats: int = 5) -> list[dict[str, Any]]:
    """Rows for benchmarks/run.py (section `netns`)."""
    why = netns_unavailable()
    if why:
        return [
            unavailable("netns", f"{n} namespaces", "tcpaudit --all-netns", "setns floor", why, "<= 2x") for n in sizes
        ]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        log(f"netns: {n} namespaces")
        with ManyNetns(n) as m:
            inproc = _in_process(m, repeats)
            m.refresh_time_wait()
            cli, targets = _cli_runs(m, repeats)
        t, f, sf = inproc["tcpaudit"], inproc["floor"], inproc["strict_floor"]
        covered = n + 1  # the host namespace is read too
        per_ns = t["wall_s"] / covered * 1000
        note = (
            f"setup {m.setup_s:.1f}s; {inproc['tcpaudit_targets']} targets ({inproc['tcpaudit_ok']} ok); "
            f"{per_ns:.1f} ms/namespace (target <= 10), floor {f['wall_s'] / covered * 1000:.1f}, strict floor "
            f"{sf['wall_s'] / covered * 1000:.1f}; CPU {t['cpu_s'] / covered * 1000:.1f} ms/namespace; "
            f"peak RSS {t['peak_rss_kb'] / 1024:.0f} MiB"
        )
        extra = {"namespaces": n, "ms_per_namespace": per_ns, "raw": inproc}
        rows.append(
            row("netns", f"{n} ns, in process", subject="tcpaudit sweep", baseline="setns floor", s=t, b=f)
            | {"target": "<= 2x", "met": t["wall_s"] <= 2 * f["wall_s"], "margin": 2 * f["wall_s"] / t["wall_s"]}
            | {"note": note}
            | extra
        )
        rows.append(row("netns", f"{n} ns, in process", subject="tcpaudit sweep", baseline="strict floor", s=t, b=sf))
        c, cf = cli["tcpaudit"], cli["floor"]
        rows.append(
            row(
                "netns",
                f"{n} ns, CLI process",
                subject="tcpaudit host --all-netns",
                baseline="floor process",
                s=c,
                b=cf,
                target=2.0,
                note=f"{targets} targets (every namespace on the machine); "
                f"{c['wall_s'] / targets * 1000:.1f} ms/namespace end to end; "
                f"peak RSS {c['peak_rss_kb'] / 1024:.0f} MiB",
                extra={"namespaces": n, "targets": targets, "ms_per_namespace": c["wall_s"] / targets * 1000},
            )
        )
    return rows


def netns_unavailable() -> str | None:
    """Why ManyNetns cannot run here (None: it can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root (creates network namespaces)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"util-linux {tool} is not installed"
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    from benchmarks._common import render_table

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sizes", nargs="*", type=int, default=list(SIZES))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    rows = run_netns_bench(tuple(args.sizes), args.repeats)
    print(render_table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
