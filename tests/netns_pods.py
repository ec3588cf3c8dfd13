"""Pod-like network namespaces for the --all-netns tests (tests/test_netns_*.py) and benchmarks/netns_bench.py.

A "pod" is what kubelet and a CRI runtime leave on a node, minus Kubernetes: a process started with
`unshare --net --mount --pid --fork`, placed (before it unshares, so every process of it is) in a
kubepods-style cgroup - /kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid>.slice/
cri-containerd-<id>.scope, the systemd driver's shape (fixtures/netns/cgroup_paths.toml) - below a
`ta-netns-<random>` directory of the cgroup v2 hierarchy (v1's name=systemd where there is none), and a
/var/log/pods/<namespace>_<name>_<uid> directory naming it. Everything is created by the fixture and removed
after: the processes it started are stopped, the cgroups and log directories removed, `ip netns` names
deleted. Nothing here touches the host namespace's sysctls or iptables; each pod's script changes only its
own namespace.

The pod's script (Python, run as PID 1 of its PID namespace) prints `READY {json}` once its state exists and
then serves one-line commands on stdin (`OK {json}` replies), as tests/netns.py's scripts do.
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
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .netns import PRELUDE, Script

PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]
PREFIX = "ta-netns-"
POD_LOGS = "/var/log/pods"

# Run first in every pod script: loopback up, from inside (ip acts on the caller's namespace).
POD_PRELUDE = (
    PRELUDE
    + r"""
import subprocess
subprocess.run(["ip", "link", "set", "lo", "up"], check=True)

def sysctl(key, value):
    with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
        f.write(str(value))

def netns_inode():
    return os.stat("/proc/self/ns/net").st_ino
"""
)


def unavailable() -> str | None:
    """Why pod namespaces cannot be made here (None: they can)."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: creates network namespaces, cgroups and nsfs bind mounts"
    for tool in ("unshare", "ip", "lsns"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    if cgroup_root() is None:
        return "no writable cgroup hierarchy (cgroup2 or name=systemd) is mounted"
    return None


def require() -> None:
    reason = unavailable()
    if reason:
        pytest.skip(reason)


def cgroup_root() -> tuple[str, str] | None:
    """(mount point, "v2"|"v1") of the hierarchy to make pod cgroups in: cgroup2 if mounted, else name=systemd."""
    v1 = None
    with open("/proc/self/mountinfo", encoding="utf-8") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields, rest = left.split(), right.split()
            if not rest:
                continue
            if rest[0] == "cgroup2" and os.access(fields[4], os.W_OK):
                return fields[4], "v2"
            if rest[0] == "cgroup" and "name=systemd" in (rest[2] if len(rest) > 2 else "") and v1 is None:
                v1 = fields[4]
    return (v1, "v1") if v1 else None


def run(argv: list[str], **kw: Any) -> subprocess.CompletedProcess:
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 60)
    r = subprocess.run(argv, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {r.returncode}: {(r.stderr or '').strip()[:500]}")
    return r


@dataclass
class Pod:
    """One pod-like namespace; `script` runs as its main process."""

    script: str
    args: tuple[str, ...] = ()
    qos: str = "burstable"
    k8s_namespace: str = field(default_factory=lambda: f"{PREFIX}{secrets.token_hex(3)}")
    pod_name: str = field(default_factory=lambda: f"app-{secrets.token_hex(3)}")
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    container_id: str = field(default_factory=lambda: secrets.token_hex(32))
    top: str = ""  # the ta-netns-* cgroup directory holding this pod's cgroups
    cgroup: str = ""
    log_dir: str = ""
    proc: Script | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        """The unshare process: it unshared the namespace itself, so it is in it (its child, PID 1 inside,
        too)."""
        assert self.proc is not None
        return self.proc.proc.pid

    @property
    def inode(self) -> int:
        return int(self.info["inode"])

    @property
    def expected_name(self) -> str:
        return f"{self.k8s_namespace}/{self.pod_name}"

    def start(self, workdir: str) -> Pod:
        root = cgroup_root()
        assert root is not None
        mount, _ = root
        self.top = os.path.join(mount, f"{PREFIX}{secrets.token_hex(4)}")
        esc = self.uid.replace("-", "_")
        parts = ["kubepods.slice"]
        if self.qos != "guaranteed":
            parts.append(f"kubepods-{self.qos}.slice")
            parts.append(f"kubepods-{self.qos}-pod{esc}.slice")
        else:
            parts.append(f"kubepods-pod{esc}.slice")
        parts.append(f"cri-containerd-{self.container_id}.scope")
        self.cgroup = os.path.join(self.top, *parts)
        os.makedirs(self.cgroup)
        self.log_dir = os.path.join(POD_LOGS, f"{self.k8s_namespace}_{self.pod_name}_{self.uid}")
        os.makedirs(self.log_dir)
        fd, path = tempfile.mkstemp(prefix=PREFIX, suffix=".py", dir=workdir)
        with os.fdopen(fd, "w") as f:
            f.write(POD_PRELUDE + "\n" + self.script)
        # The shell joins the cgroup first, then becomes unshare: every process of the pod is in it.
        wrapper = 'echo $$ > "$0/cgroup.procs" && exec unshare --net --mount --pid --fork --kill-child "$@"'
        proc = subprocess.Popen(
            ["sh", "-c", wrapper, self.cgroup, PYTHON, "-u", path, *self.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.proc = Script(proc, path)
        self.info = self.proc.ready()
        return self

    def nsenter(self, argv: list[str]) -> subprocess.CompletedProcess:
        return run(["nsenter", f"--net=/proc/{self.pid}/ns/net", *argv])

    def stop(self) -> None:
        if self.proc is not None:
            try:
                self.proc.stop()
            except Exception:  # noqa: BLE001 - cleanup goes on
                pass
            if self.proc.proc.poll() is None:
                self.proc.proc.kill()
                self.proc.proc.wait(10)
        for d in _cgroup_dirs(self.top):
            for _ in range(50):
                try:
                    os.rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)  # the last process is still leaving
        if self.log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)


def _cgroup_dirs(top: str) -> list[str]:
    """Every directory below and including top, deepest first."""
    if not top or not os.path.isdir(top):
        return []
    out = []
    for dirpath, _dirnames, _files in os.walk(top):
        out.append(dirpath)
    return sorted(out, key=lambda p: p.count("/"), reverse=True)


@dataclass
class NamedNetns:
    """`ip netns add ta-netns-...`: a namespace held by an nsfs bind mount under /run/netns."""

    name: str = field(default_factory=lambda: f"{PREFIX}{secrets.token_hex(4)}")
    procs: list[subprocess.Popen] = field(default_factory=list)

    def create(self) -> NamedNetns:
        run(["ip", "netns", "add", self.name])
        run(["ip", "-n", self.name, "link", "set", "lo", "up"])
        return self

    @property
    def inode(self) -> int:
        return os.stat(f"/run/netns/{self.name}").st_ino

    def exec(self, argv: list[str]) -> subprocess.CompletedProcess:
        return run(["ip", "netns", "exec", self.name, *argv])

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        p = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.procs.append(p)
        return p

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait(10)
            for s in (p.stdin, p.stdout, p.stderr):
                if s:
                    s.close()
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


class Cluster:
    """Everything one test made; closed in reverse order."""

    def __init__(self) -> None:
        self.workdir = tempfile.mkdtemp(prefix=PREFIX)
        os.chmod(self.workdir, 0o755)
        self.pods: list[Pod] = []
        self.named: list[NamedNetns] = []

    def pod(self, script: str, *args: str, **kw: Any) -> Pod:
        p = Pod(script, args, **kw)
        self.pods.append(p)  # registered first: a half-made pod is still cleaned up
        return p.start(self.workdir)

    def named_netns(self) -> NamedNetns:
        n = NamedNetns()
        self.named.append(n)
        return n.create()

    def veth(self, pod: Pod, peer: NamedNetns) -> tuple[str, str]:
        """A veth pair from the pod to the named namespace, made inside the two (never in the host's):
        returns (pod address, peer address)."""
        net = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        a, b = f"{net}.1", f"{net}.2"
        run(
            [
                "ip",
                "-n",
                peer.name,
                "link",
                "add",
                "veth0",
                "type",
                "veth",
                "peer",
                "name",
                "veth0",
                "netns",
                str(pod.pid),
            ]
        )
        pod.nsenter(["ip", "addr", "add", f"{a}/24", "dev", "veth0"])
        pod.nsenter(["ip", "link", "set", "veth0", "up"])
        peer.exec(["ip", "addr", "add", f"{b}/24", "dev", "veth0"])
        peer.exec(["ip", "link", "set", "veth0", "up"])
        return a, b

    def close(self) -> None:
        for p in reversed(self.pods):
            p.stop()
        for n in reversed(self.named):
            n.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    require()
    c = Cluster()
    try:
        yield c
    finally:
        c.close()


def lsns_net() -> dict[int, dict[str, Any]]:
    """`lsns -t net -J`: inode -> row."""
    r = run(["lsns", "-t", "net", "-J"])
    return {int(row["ns"]): row for row in json.loads(r.stdout)["namespaces"]}


def tcpaudit_all_netns(*args: str, prefix: list[str] | None = None, timeout: float = 300) -> tuple[int, Any, str]:
    """`python -m tcpaudit host --all-netns --format json ARGS` -> (exit code, report, stderr)."""
    argv = [*(prefix or []), PYTHON, "-m", "tcpaudit", "host", "--all-netns", "--format", "json", *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=tempfile.gettempdir(), env=env)
    try:
        report = json.loads(r.stdout)
    except ValueError:
        raise AssertionError(
            f"exit {r.returncode} without a JSON report: {r.stdout[:500]!r} {r.stderr[-2000:]!r}"
        ) from None
    return r.returncode, report, r.stderr
