"""Network namespaces for the real-kernel tests (tests/test_runtime_*.py) and the socket benchmark.

Every namespace is named `tcpaudit-test-<random>`, gets `lo` up, and is deleted - after killing
whatever this module started inside it - when its fixture is finalised. Addresses are only ever
configured inside namespaces this module created (veth pairs with 10.x addresses), so the tests
send nothing outside loopback and their own veth links.

Kernel state is created by small Python scripts run inside a namespace (`Netns.spawn`): each
prints `READY {json}` once its sockets exist, then serves one-line commands on stdin
(`OK {json}` replies) until stdin closes. The collector runs inside the namespace too
(`Netns.tcpaudit`), exactly as a user would run it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]

# Imported by every script run with Netns.spawn.
PRELUDE = r'''
import errno, json, os, socket, sys, time

def ready(**info):
    sys.stdout.write("READY " + json.dumps(info) + "\n")
    sys.stdout.flush()

def reply(**info):
    sys.stdout.write("OK " + json.dumps(info) + "\n")
    sys.stdout.flush()

def commands():
    """One command per stdin line until stdin closes (the test is done)."""
    for line in sys.stdin:
        line = line.strip()
        if line:
            yield line

_TCP_STATES = {"01": "ESTAB", "02": "SYN-SENT", "03": "SYN-RECV", "04": "FIN-WAIT-1", "05": "FIN-WAIT-2",
               "06": "TIME-WAIT", "07": "CLOSE", "08": "CLOSE-WAIT", "09": "LAST-ACK", "0A": "LISTEN", "0B": "CLOSING"}

def tcp_states():
    """This namespace's TCP sockets counted by state (ss's names), from /proc/net/tcp and tcp6."""
    counts = {}
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                rows = f.read().splitlines()[1:]
        except FileNotFoundError:
            continue
        for row in rows:
            state = _TCP_STATES.get(row.split()[3], row.split()[3])
            counts[state] = counts.get(state, 0) + 1
    return counts

def wait_states(want, timeout=120.0):
    """Until this namespace holds exactly want[state] sockets in each state named ({"CLOSE-WAIT": 3}, 0 for
    none): the kernel finishes handshakes and FINs in its own time, later still on a loaded machine."""
    deadline = time.monotonic() + timeout
    while True:
        have = tcp_states()
        if all(have.get(k, 0) == v for k, v in want.items()):
            return have
        if time.monotonic() > deadline:
            raise RuntimeError(f"TCP states {have} after {timeout} s, wanted {want}")
        time.sleep(0.02)
'''

_unavailable: list[str | None] = []


def netns_unavailable() -> str | None:
    """Why namespace tests cannot run here (None: they can). Probed once per process."""
    if not _unavailable:
        reason = None
        if not hasattr(os, "geteuid") or os.geteuid() != 0:
            reason = "needs root to create network namespaces (run the runtime tests as root)"
        elif shutil.which("ip") is None:
            reason = "iproute2 `ip` is not installed"
        elif shutil.which("ss") is None:
            reason = "iproute2 `ss` is not installed"
        else:
            probe = f"tcpaudit-test-probe{secrets.token_hex(3)}"
            r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
            if r.returncode != 0:
                reason = f"`ip netns add` failed: {r.stderr.strip()[:200]}"
            else:
                subprocess.run(["ip", "netns", "del", probe], capture_output=True)
        _unavailable.append(reason)
    return _unavailable[0]


def require_netns() -> None:
    reason = netns_unavailable()
    if reason:
        pytest.skip(reason)


def _run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    r = subprocess.run(argv, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {(r.stderr or '').strip()[:500]}")
    return r


@dataclass
class AuditRun:
    """One `tcpaudit host --format json` run inside a namespace."""

    rc: int
    report: dict[str, Any]
    snapshot: dict[str, Any] | None
    stderr: str

    @property
    def target(self) -> dict[str, Any]:
        return self.report["targets"][0]

    def findings(self, rule: str) -> list[dict[str, Any]]:
        return [f for f in self.target["findings"] if f["rule"] == rule]

    def outcome(self, rule: str) -> str:
        return next(c["outcome"] for c in self.target["checks"] if c["rule"] == rule)


class Script:
    """A Python process inside a namespace that holds kernel state until stopped."""

    def __init__(self, proc: subprocess.Popen, path: str):
        self.proc = proc
        self.path = path

    def _line(self, prefix: str, timeout: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        import select

        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {prefix} line from {self.path} within {timeout:.0f}s")
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            line = self.proc.stdout.readline()
            if not line:
                self.proc.wait(5)
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"script exited {self.proc.returncode} before {prefix}: {err[-2000:]}")
            if line.startswith(prefix + " "):
                return json.loads(line[len(prefix) + 1 :])

    def ready(self, timeout: float = 60) -> dict[str, Any]:
        return self._line("READY", timeout)

    def send(self, command: str, timeout: float = 60) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return self._line("OK", timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
                self.proc.wait(3)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait(5)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


@dataclass
class Netns:
    name: str = field(default_factory=lambda: f"tcpaudit-test-{secrets.token_hex(4)}")
    scripts: list[Script] = field(default_factory=list)
    workdir: str = ""

    def create(self) -> Netns:
        _run(["ip", "netns", "add", self.name])
        self.workdir = tempfile.mkdtemp(prefix=f"{self.name}-")
        os.chmod(self.workdir, 0o1777)  # the unprivileged run writes its snapshot here
        self.run(["ip", "link", "set", "lo", "up"])
        return self

    def argv(self, argv: list[str], user: str | None = None) -> list[str]:
        prefix = ["ip", "netns", "exec", self.name]
        if user == "nobody":
            prefix += NOBODY
        elif user is not None:
            raise ValueError(f"unsupported user {user!r}")
        return prefix + argv

    def run(self, argv: list[str], user: str | None = None, **kw: Any) -> subprocess.CompletedProcess:
        return _run(self.argv(argv, user), **kw)

    def sysctl(self, **values: Any) -> None:
        """sysctl(net__ipv4__tcp_tw_reuse=0): double underscores stand for dots."""
        for key, value in values.items():
            self.run(["sysctl", "-q", "-w", f"{key.replace('__', '.')}={value}"])

    def read_sysctl(self, key: str) -> str:
        return self.run(["sysctl", "-n", key]).stdout.strip()

    def spawn(self, source: str, *args: str) -> Script:
        fd, path = tempfile.mkstemp(prefix="tcpaudit-ns-", suffix=".py", dir=self.workdir)
        with os.fdopen(fd, "w") as f:
            f.write(PRELUDE + "\n" + source)
        proc = subprocess.Popen(
            self.argv([PYTHON, "-u", path, *args]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        script = Script(proc, path)
        self.scripts.append(script)
        return script

    def tcpaudit(self, *args: str, user: str | None = None, snapshot: bool = True, timeout: float = 120) -> AuditRun:
        """`python -m tcpaudit host --format json ARGS` inside the namespace; cwd is a scratch dir
        (no .tcpaudit.toml is picked up by accident)."""
        snap_path = os.path.join(self.workdir, f"snapshot-{secrets.token_hex(4)}.json")
        argv = [PYTHON, "-m", "tcpaudit", "host", "--format", "json", *args]
        if snapshot:
            argv += ["--save-snapshot", snap_path]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
        r = subprocess.run(
            self.argv(argv, user), capture_output=True, text=True, timeout=timeout, cwd=self.workdir, env=env
        )
        try:
            report = json.loads(r.stdout)
        except ValueError:
            raise AssertionError(
                f"tcpaudit exited {r.returncode} without a JSON report: "
                f"stdout={r.stdout[:500]!r} stderr={r.stderr[-2000:]!r}"
            ) from None
        snap = None
        if snapshot and os.path.exists(snap_path):
            with open(snap_path, encoding="utf-8") as f:
                snap = json.load(f)
            os.unlink(snap_path)
        return AuditRun(r.returncode, report, snap, r.stderr)

    def close(self) -> None:
        for script in self.scripts:
            try:
                script.stop()
            except Exception:  # noqa: BLE001 - cleanup must go on
                pass
        self.scripts.clear()
        # Anything else still inside (an `ip netns exec` child that outlived its test) dies with it.
        r = subprocess.run(["ip", "netns", "pids", self.name], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), 9)
            except (OSError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def veth(a: Netns, b: Netns) -> tuple[str, str]:
    """Link two namespaces with a veth pair; returns (address in a, address in b), both 10.x/24.

    Both ends are created directly inside the namespaces: nothing appears in the caller's namespace.
    """
    net = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
    addr_a, addr_b = f"{net}.1", f"{net}.2"
    _run(["ip", "-n", a.name, "link", "add", "veth0", "type", "veth", "peer", "name", "veth0", "netns", b.name])
    a.run(["ip", "addr", "add", f"{addr_a}/24", "dev", "veth0"])
    b.run(["ip", "addr", "add", f"{addr_b}/24", "dev", "veth0"])
    a.run(["ip", "link", "set", "veth0", "up"])
    b.run(["ip", "link", "set", "veth0", "up"])
    return addr_a, addr_b


class NetnsFactory:
    def __init__(self) -> None:
        self.made: list[Netns] = []

    def __call__(self, **sysctls: Any) -> Netns:
        ns = Netns()
        self.made.append(ns)  # registered before create(): a half-made namespace is still removed
        ns.create()
        if sysctls:
            ns.sysctl(**sysctls)
        return ns

    def close(self) -> None:
        for ns in reversed(self.made):
            ns.close()
        self.made.clear()


@pytest.fixture
def make_netns() -> Iterator[NetnsFactory]:
    """make_netns(net__ipv4__tcp_tw_reuse=0) -> a fresh Netns; all are deleted after the test."""
    require_netns()
    factory = NetnsFactory()
    try:
        yield factory
    finally:
        factory.close()
