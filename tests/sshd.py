"""Real OpenSSH servers for the SSH and fleet tests (and benchmarks/fleet_bench.py).

Not a conftest: import it explicitly (`import sshd` from tests, which pytest puts on sys.path).
Everything listens on 127.0.0.1 high ports, or (as root) inside network namespaces this module creates
with `ip netns add` + a veth pair, each namespace with its own sysctls. Only processes and namespaces
started here are ever stopped or deleted here, by pid and by name.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SSHD = "/usr/sbin/sshd"
REPO = Path(__file__).resolve().parent.parent
COLLECTOR = REPO / "tcpaudit" / "collect" / "collector.sh"


def is_root() -> bool:
    return os.geteuid() == 0


def have_sshd() -> bool:
    return os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None


def have_netns() -> bool:
    return is_root() and shutil.which("ip") is not None


def login_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


# Test servers listen below the default ephemeral range (32768-60999): a port picked there, closed and then
# bound by sshd moments later can meanwhile become the local port of some outgoing connection (a 100-host
# benchmark fleet hit exactly that: "Bind to port ... failed: Address already in use").
_LISTEN_PORTS = range(20000, 32768)


_handed_out: set[int] = set()  # ports given to servers of this process that may not be bound yet


def free_port() -> int:
    for _ in range(200):
        port = random.choice(_LISTEN_PORTS)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> str:
    """A new key pair at path (+ .pub); returns the public key line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for p in (path, path.with_name(path.name + ".pub")):
        if p.exists():
            p.unlink()
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "tcpaudit-test", "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
        capture_output=True,
    )
    return path.with_name(path.name + ".pub").read_text().strip()


@dataclass
class Keys:
    dir: Path
    client_key: Path
    client_pub: str
    host_key: Path
    host_pub: str
    authorized_keys: Path
    known_hosts: Path

    def known_line(self, address: str, port: int, pub: str | None = None) -> str:
        name = address if port == 22 else f"[{address}]:{port}"
        kind, b64 = (pub or self.host_pub).split()[:2]
        return f"{name} {kind} {b64}\n"


def make_keys(workdir: Path) -> Keys:
    d = workdir / "keys"
    d.mkdir(parents=True, exist_ok=True)
    client_pub = keygen(d / "id_ed25519")
    host_pub = keygen(d / "ssh_host_ed25519_key")
    ak = d / "authorized_keys"
    ak.write_text(client_pub + "\n")
    kh = workdir / "known_hosts"
    kh.write_text("")
    return Keys(d, d / "id_ed25519", client_pub, d / "ssh_host_ed25519_key", host_pub, ak, kh)


def _prepare_privsep() -> None:
    if is_root():
        # sshd running as root insists on its privilege-separation directory (normally made by systemd).
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)


@dataclass
class SSHServer:
    """One `sshd -D -e -f CONFIG` on address:port (inside netns when given)."""

    workdir: Path
    keys: Keys
    address: str = "127.0.0.1"
    port: int = 0
    netns: str | None = None
    force_command: str | None = None
    host_key: Path | None = None
    authorized_keys: Path | None = None
    password_auth: bool = False
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen | None = None
    name: str = "sshd"
    extra_ports: list[int] = field(default_factory=list)  # more ListenAddress ports of this sshd (0: pick one)

    def ports(self) -> list[int]:
        return [self.port, *self.extra_ports]

    def config_text(self) -> str:
        lines = [
            *(f"ListenAddress {self.address}:{p}" for p in self.ports()),
            f"HostKey {self.host_key or self.keys.host_key}",
            f"AuthorizedKeysFile {self.authorized_keys or self.keys.authorized_keys}",
            "PermitRootLogin yes",
            "UsePAM no",
            "StrictModes no",
            "PidFile none",
            f"PasswordAuthentication {'yes' if self.password_auth else 'no'}",
            "KbdInteractiveAuthentication no",
            "PubkeyAuthentication yes",
            "UseDNS no",
            "PrintMotd no",
            "PrintLastLog no",
            "MaxStartups 200:30:400",
            "MaxSessions 20",
            "LoginGraceTime 30",
            "LogLevel ERROR",
            "Subsystem sftp internal-sftp",
        ]
        if self.force_command:
            lines.append(f"ForceCommand {self.force_command}")
        lines += self.extra
        return "\n".join(lines) + "\n"

    def start(self, wait: bool = True) -> SSHServer:
        _prepare_privsep()
        if not self.port:
            self.port = free_port() if self.netns is None else 22
        self.extra_ports = [p or free_port() for p in self.extra_ports]
        d = self.workdir / f"{self.name}-{self.port}-{self.address}"
        d.mkdir(parents=True, exist_ok=True)
        cfg = d / "sshd_config"
        cfg.write_text(self.config_text())
        argv = [SSHD, "-D", "-e", "-f", str(cfg)]
        if self.netns:
            argv = ["ip", "netns", "exec", self.netns, *argv]
        self.log = d / "sshd.log"
        self._logf = open(self.log, "wb")
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._logf, stderr=subprocess.STDOUT, start_new_session=True
        )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0, retries: int = 3) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                log = self.log.read_text()
                if retries and self.netns is None and "Address already in use" in log:
                    self._logf.close()  # someone took the port between free_port() and sshd's bind: another
                    self.port = 0
                    self.extra_ports = [0] * len(self.extra_ports)
                    self.start(wait=False)
                    return self.wait_ready(timeout, retries - 1)
                raise RuntimeError(f"sshd exited with {self.proc.returncode}: {log[-2000:]}")
            if all(self._answers(p) for p in self.ports()):
                return
            time.sleep(0.02)
        raise RuntimeError(f"sshd on {self.address}:{self.port} did not come up: {self.log.read_text()[-2000:]}")

    def _answers(self, port: int) -> bool:
        try:
            with socket.create_connection((self.address, port), timeout=0.5) as s:
                s.settimeout(2)
                return s.recv(4) == b"SSH-"
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: the listener and its children
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        if getattr(self, "_logf", None):
            self._logf.close()

    def known_line(self, pub: str | None = None) -> str:
        return self.keys.known_line(self.address, self.port, pub)


class SilentServer:
    """A TCP listener that accepts connections and never says a word (no SSH banner): a hung host."""

    def __init__(self, address: str = "127.0.0.1"):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((address, 0))
        self.sock.listen(64)
        self.address = address
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.conns.append(conn)

    def stop(self) -> None:
        self._stop = True
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


class RefusingPort:
    """A port on address that refuses every connection for as long as this object holds it: a socket bound
    there and never listening. A port merely found free can meanwhile be taken by another test's server on a
    shared machine (and then it answers); a bound one cannot be bound again, nor picked as a local port."""

    def __init__(self, address: str = "127.0.0.1"):
        self.sock = socket.socket()
        self.sock.bind((address, 0))
        self.address = address
        self.port = self.sock.getsockname()[1]

    def stop(self) -> None:
        self.sock.close()


@contextlib.contextmanager
def _subnet_lock():
    import fcntl

    with open("/tmp/tcpaudit-test-netns.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _free_subnet() -> tuple[str, str]:
    """A /30 in 10.250.0.0/16 that no interface of the root namespace uses yet: (outside, inside)."""
    import random

    out = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, stdin=subprocess.DEVNULL
    ).stdout
    used = set(re.findall(r"inet 10\.250\.(\d+)\.(\d+)/", out))
    used_blocks = {(int(a) * 256 + int(b)) // 4 for a, b in used}
    start = random.randrange(16384)
    for i in range(16384):
        block = (start + i) % 16384
        if block in used_blocks:
            continue
        base = block * 4
        return f"10.250.{base // 256}.{base % 256 + 1}", f"10.250.{base // 256}.{base % 256 + 2}"
    raise RuntimeError("no free /30 left in 10.250.0.0/16")


class NetNS:
    """A network namespace with a veth link to the root namespace, on a free /30 of 10.250.0.0/16
    (.2 inside: `address`, .1 outside)."""

    _counter = 0
    _lock = threading.Lock()

    def __init__(self, sysctls: dict[str, str] | None = None, drop_input: bool = False):
        with NetNS._lock:
            NetNS._counter += 1
        # A random tag: namespaces and the veth's root-namespace end are machine-wide, and other test runs on a
        # shared machine make them too (the pid-derived tag this replaces repeats across processes whose pids
        # differ by 10,000).
        tag = secrets.token_hex(4)
        self.name = f"tcpaudit-test-{tag}"
        self.host_if = f"ta{tag}h"  # 11 characters: interface names have at most 15
        self.ns_if = f"ta{tag}n"
        run = self._run
        run(["ip", "netns", "add", self.name])
        try:
            run(["ip", "link", "add", self.host_if, "type", "veth", "peer", "name", self.ns_if])
            run(["ip", "link", "set", self.ns_if, "netns", self.name])
            with _subnet_lock():  # other test runs on this machine allocate from the same range
                self.outside, self.address = _free_subnet()
                run(["ip", "addr", "add", f"{self.outside}/30", "dev", self.host_if])
            run(["ip", "link", "set", self.host_if, "up"])
            self.exec(["ip", "addr", "add", f"{self.address}/30", "dev", self.ns_if])
            self.exec(["ip", "link", "set", self.ns_if, "up"])
            self.exec(["ip", "link", "set", "lo", "up"])
            for k, v in (sysctls or {}).items():
                self.exec(["sysctl", "-qw", f"{k}={v}"])
            if drop_input:
                self.exec(["iptables", "-A", "INPUT", "-j", "DROP"])
        except BaseException:
            self.delete()
            raise

    @staticmethod
    def _run(argv: list[str]) -> None:
        p = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)}: {p.stderr.strip()}")

    def exec(self, argv: list[str]) -> None:
        self._run(["ip", "netns", "exec", self.name, *argv])

    def wait_listening(self, address: str, port: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            p = subprocess.run(
                ["ip", "netns", "exec", self.name, "ss", "-Hltn", f"src {address}:{port}"],
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
            )
            if p.stdout.strip():
                return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {address}:{port} in {self.name}")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.host_if], capture_output=True, stdin=subprocess.DEVNULL)
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, stdin=subprocess.DEVNULL)


_IFACE_KEY = re.compile(r"^net\.ipv[46]\.(?:conf|neigh)\.([^.]+)\.")
# A counter, and a global switch that every namespace shows and any namespace can turn on: nf_hooks_lwtunnel
# is registered in each namespace with mode 0644, a write of 1 enables one kernel-wide static key and 0 is
# refused with EBUSY once on (net/netfilter/nf_hooks_lwtunnel.c, torvalds/linux 0abc76bc2082).
VOLATILE_SYSCTLS = frozenset({"net.netfilter.nf_conntrack_count", "net.netfilter.nf_hooks_lwtunnel"})


def comparable_sysctls(a: dict[str, str], b: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """Two sysctl maps of one machine read moments apart, minus what legitimately moves in between:
    counters, and per-interface keys of interfaces that came or went (other tests create veths)."""

    def ifaces(d: dict[str, str]) -> set[str]:
        return {m.group(1) for k in d if (m := _IFACE_KEY.match(k))}

    common = ifaces(a) & ifaces(b)

    def keep(k: str) -> bool:
        m = _IFACE_KEY.match(k)
        return k not in VOLATILE_SYSCTLS and (m is None or m.group(1) in common)

    return {k: v for k, v in a.items() if keep(k)}, {k: v for k, v in b.items() if keep(k)}


def comparable_gaps(gaps) -> set[tuple[str, str, str]]:
    """Gaps as (item, reason, detail) with numbers masked (a count of interfaces can move too)."""
    out = set()
    for g in gaps:
        item, reason, detail = (
            (g["item"], g["reason"], g["detail"]) if isinstance(g, dict) else (g.item, g.reason.value, g.detail)
        )
        if _IFACE_KEY.match(item.removeprefix("sysctl:")) and "*" not in item:
            continue
        out.add((item, reason, re.sub(r"\d+", "N", detail)))
    return out


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def tcpaudit_argv() -> list[str]:
    return [sys.executable, "-m", "tcpaudit"]


def ssh_args(keys: Keys, connect_timeout: float = 3, command_timeout: float = 5) -> list[str]:
    return [
        "--known-hosts",
        str(keys.known_hosts),
        "-i",
        str(keys.client_key),
        "--ssh-config",
        str(empty_config(keys)),
        "--connect-timeout",
        str(connect_timeout),
        "--command-timeout",
        str(command_timeout),
    ]


def empty_config(keys: Keys) -> Path:
    p = keys.dir / "empty_ssh_config"
    if not p.exists():
        p.write_text("")
    return p


def run_tcpaudit(
    args: list[str], timeout: float = 120, env: dict[str, str] | None = None, input: bytes | None = None
) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    e.pop("SSH_AUTH_SOCK", None)  # tests use their own key, never an agent
    e["PYTHONPATH"] = str(REPO) + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run(
        [*tcpaudit_argv(), *args],
        capture_output=True,
        timeout=timeout,
        env=e,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )


@dataclass
class Fleet:
    """n healthy sshd hosts on loopback sharing one host key, with a known_hosts and an ssh config.

    A host is one listening address:port; `servers` are the sshd processes behind them (one each, or with
    `ports_per_server` > 1 several ports per sshd process, which a 1,000-host benchmark fleet needs on 2 cores)."""

    workdir: Path
    keys: Keys
    servers: list[SSHServer]
    ssh_config: Path
    hosts: list[tuple[str, str, int]] = field(default_factory=list)  # (alias, address, port)

    def aliases(self) -> list[str]:
        return [h[0] for h in self.hosts] if self.hosts else [s.name for s in self.servers]

    def endpoints(self) -> list[tuple[str, int]]:
        return [(h[1], h[2]) for h in self.hosts] if self.hosts else [(s.address, s.port) for s in self.servers]

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


# OpenSSH's sshd listens on at most 16 sockets (MAX_LISTEN_SOCKS in sshd.c)
MAX_PORTS_PER_SSHD = 16


def start_fleet(workdir: Path, n: int, keys: Keys | None = None, prefix: str = "h", ports_per_server: int = 1) -> Fleet:
    keys = keys or make_keys(workdir)
    per = max(1, min(ports_per_server, MAX_PORTS_PER_SSHD))
    if per == 1:
        servers = [SSHServer(workdir, keys, name=f"{prefix}{i:02d}") for i in range(n)]
    else:
        servers = [
            SSHServer(workdir, keys, name=f"{prefix}s{j:03d}", extra_ports=[0] * (min(per, n - j * per) - 1))
            for j in range((n + per - 1) // per)
        ]
    try:
        for s in servers:
            s.start(wait=False)
        for s in servers:
            s.wait_ready()
    except BaseException:
        for s in servers:
            s.stop()
        raise
    hosts: list[tuple[str, str, int]] = []
    if per > 1:
        width = len(str(n - 1))
        for s in servers:
            for port in s.ports():
                hosts.append((f"{prefix}{len(hosts):0{width}d}", s.address, port))
    with open(keys.known_hosts, "a") as f:
        if hosts:
            f.writelines(keys.known_line(a, p) for _, a, p in hosts)
        else:
            f.writelines(s.known_line() for s in servers)
    cfg = workdir / f"ssh_config_{prefix}"
    entries = hosts or [(s.name, s.address, s.port) for s in servers]
    cfg.write_text(
        "".join(f"Host {a}\n  HostName {addr}\n  Port {p}\n  User {login_user()}\n" for a, addr, p in entries)
        + f"Host *\n  IdentityFile {keys.client_key}\n  UserKnownHostsFile {keys.known_hosts}\n"
    )
    return Fleet(workdir, keys, servers, cfg, hosts)
