"""The SSH collector: one paramiko connection and one fixed command per host.

The command is always the fixed string `sh -s` (`sudo -n sh -s` with --sudo); the collector script
(collector.sh) goes on stdin. Nothing from an inventory, a config file or a remote host is ever put into
a command line, local or remote.

Host keys are checked like OpenSSH with StrictHostKeyChecking=yes: an unknown key is refused unless
accept-new is on (then it is appended to the known_hosts file), and a key that differs from the recorded
one is always refused. ~/.ssh/config (or --ssh-config) is read once per run: Host patterns, HostName,
User, Port, IdentityFile, IdentitiesOnly, ProxyJump (through direct-tcpip channels, shared between hosts
behind the same jump host), UserKnownHostsFile, StrictHostKeyChecking, HostKeyAlias, HashKnownHosts,
ConnectTimeout and Include.

Every failure becomes a TargetStatus and a one-line reason; `collect` never raises for a host problem.
Output is bounded in bytes and line length (DumpReader) and in time (command timeout), so a host that
prints forever, drips slowly or prints garbage ends with `bad_output` or `timeout`, never a hang.
Secrets (password, passphrase) are never logged, echoed, put in argv, errors or reports.
"""

from __future__ import annotations

import errno
import getpass
import logging
import os
import select
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from ..model import TargetStatus
from ..sanitize import clean_text
from ..snapshot import CounterSample, Snapshot, Source
from .build import build_snapshot
from .dump import MAX_DUMP_BYTES, DumpError, DumpReader, collector_script, snapshot_from_dump
from .netns_remote import PART_HEADER, RemoteNetns, remote_netns
from .ssh_config import (  # noqa: F401  (re-exported: tcpaudit.collect.ssh is where callers find them)
    ConfigIndex,
    Destination,
    DestinationError,
    SSHSetupError,
    _bad_chars,
    _expand_path,
    concrete_config_hosts,
    display_name,
    load_ssh_config,
    parse_destination,
    validate_host,
    validate_port,
    validate_user,
)

# paramiko logs transport failures (a host that closes before its banner, a socket closed under a timed-out
# handshake) with tracebacks; with no handler Python's last-resort handler prints them on stderr in the middle
# of a sweep. Each failure already becomes that host's status and reason; TCPAUDIT_DEBUG=1 shows the log.
if not os.environ.get("TCPAUDIT_DEBUG"):
    logging.getLogger("paramiko").addHandler(logging.NullHandler())
    logging.getLogger("paramiko").propagate = False

REMOTE_COMMAND = "sh -s"
SUDO_COMMAND = "sudo -n sh -s"
# --all-netns: the same script with its one fixed argument (collector.sh, "Every network namespace").
NETNS_COMMAND = "sh -s all-netns"
SUDO_NETNS_COMMAND = "sudo -n sh -s all-netns"
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_COMMAND_TIMEOUT = 120.0
MAX_STDERR = 16 << 10
MAX_JUMP_DEPTH = 8
DEFAULT_IDENTITIES = ("id_ed25519", "id_ecdsa", "id_rsa")


class HostKeyRefused(paramiko.SSHException):
    """A host key that known_hosts does not vouch for (a changed key is paramiko's BadHostKeyException)."""

    def __init__(self, hostname: str, key: paramiko.PKey):
        self.hostname = hostname
        self.key = key
        super().__init__(self.describe(f"{hostname} ({key.get_name()} {key.fingerprint})"))

    def describe(self, host: str) -> str:  # pragma: no cover - abstract
        raise NotImplementedError


class UnknownHostKeyError(HostKeyRefused):
    def describe(self, host: str) -> str:
        return f"unknown host key for {host}; verify it and add it to known_hosts, or use --accept-new"


class RevokedHostKeyError(HostKeyRefused):
    def describe(self, host: str) -> str:
        return f"host key for {host} is marked @revoked in known_hosts; refusing to connect"


class _Timeout(Exception):
    pass


class _Interrupted(Exception):
    pass


class _NetnsTimeout(_Timeout):
    """--all-netns ran out of time after the namespace part began: the data so far is still usable."""

    def __init__(self, message: str, data: bytes):
        super().__init__(message)
        self.data = data


# ---- settings and results ---------------------------------------------------------------------------------
@dataclass
class SSHSettings:
    ssh_config: Path | None = None  # None: ~/.ssh/config when it exists
    known_hosts: Path | None = None  # None: UserKnownHostsFile from the config, else ~/.ssh/known_hosts
    accept_new: bool = False
    sudo: bool = False
    identities: list[Path] = field(default_factory=list)
    password: str | None = field(default=None, repr=False)  # also the passphrase of encrypted keys
    connect_timeout: float | None = None  # None: ConnectTimeout from the config, else 10 s
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    max_output: int = MAX_DUMP_BYTES
    user: str | None = None
    port: int | None = None
    use_agent: bool = True


@dataclass
class HostResult:
    destination: Destination
    status: TargetStatus
    error: str | None = None
    snapshot: Snapshot | None = None
    elapsed_s: float = 0.0
    connect_s: float = 0.0  # TCP connect, key exchange, host key and authentication (or until they failed)
    collect_s: float = 0.0  # the collector command(s) and parsing the dump (0 when never connected)
    netns: RemoteNetns | None = None  # --all-netns: the host's namespaces (snapshot: the session's namespace)


@dataclass
class _Resolved:
    alias: str
    hostname: str
    user: str
    port: int
    proxyjump: str | None
    identity_files: list[str]
    identities_only: bool
    use_agent: bool
    known_hosts_read: list[str]
    known_hosts_write: str
    accept_new: bool
    hash_known_hosts: bool
    key_alias: str | None
    connect_timeout: float


# ---- host keys ---------------------------------------------------------------------------------------------
class _KnownHosts:
    """known_hosts files loaded once per run and shared by all hosts; new keys appended under a lock.

    Lines are read as sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT" describes them. Marker lines are OpenSSH's:
    `@revoked` keys are refused for every host (as OpenSSH does, even with --accept-new); `@cert-authority`
    lines trust host certificates, which paramiko cannot verify, so they are skipped and such a host needs a
    plain key line (otherwise its key is unknown and refused). A line paramiko cannot parse is skipped as
    OpenSSH skips it, instead of failing every host of the sweep.
    """

    def __init__(self, read_files: list[str], write_file: str):
        self.keys = paramiko.HostKeys()
        self.revoked: set[tuple[str, str]] = set()  # (key type, base64 blob)
        self.write_file = write_file
        self.lock = threading.Lock()
        for f in read_files:
            if os.path.isfile(f):
                try:
                    with open(f, encoding="utf-8") as fh:
                        self._load(fh)
                except (OSError, UnicodeDecodeError) as exc:
                    raise SSHSetupError(f"cannot read known_hosts file {f}: {exc}") from None

    def _load(self, lines) -> None:
        for lineno, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                marker, _, rest = line.partition(" ")
                if marker == "@revoked":
                    fields = rest.split()
                    if len(fields) >= 3:
                        self.revoked.add((fields[1], fields[2]))
                continue  # @cert-authority (unsupported) or an unknown marker: not a plain host key
            try:
                entry = paramiko.hostkeys.HostKeyEntry.from_line(line, lineno)
            except Exception:  # noqa: BLE001 - InvalidHostKey, SSHException, binascii.Error...: skipped, as OpenSSH does
                continue
            if entry is None or entry.key is None:
                continue
            for host in entry.hostnames:
                self.keys.add(host, entry.key.get_name(), entry.key)

    def is_revoked(self, key: paramiko.PKey) -> bool:
        return (key.get_name(), key.get_base64()) in self.revoked

    def lookup(self, name: str):
        with self.lock:
            return self.keys.lookup(name)

    def add(self, name: str, key: paramiko.PKey, hashed: bool) -> None:
        with self.lock:
            known = self.keys.lookup(name)
            if known is not None and key.get_name() in known:
                if known[key.get_name()] != key:
                    raise paramiko.BadHostKeyException(name, key, known[key.get_name()])
                return
            entry_name = paramiko.HostKeys.hash_host(name) if hashed else name
            line = f"{entry_name} {key.get_name()} {key.get_base64()}\n"
            path = Path(self.write_file)
            try:
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    if f.tell() > 0:
                        with open(path, "rb") as r:
                            r.seek(-1, os.SEEK_END)
                            if r.read(1) != b"\n":
                                f.write("\n")
                    f.write(line)
            except OSError as exc:
                raise paramiko.SSHException(
                    f"cannot record the new host key in {path}: {exc.strerror or exc}"
                ) from None
            self.keys.add(name, key.get_name(), key)


class RefuseUnknownHostKey(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=yes: an unknown host key is an error."""

    def missing_host_key(self, client, hostname, key):
        raise UnknownHostKeyError(hostname, key)


class AcceptNewHostKey(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=accept-new: record an unknown key; a changed key is still refused elsewhere."""

    def __init__(self, store: _KnownHosts, hashed: bool):
        self.store = store
        self.hashed = hashed

    def missing_host_key(self, client, hostname, key):
        self.store.add(hostname, key, self.hashed)


# ---- the collector ------------------------------------------------------------------------------------------
class SSHCollector:
    """Collects hosts over SSH. Thread-safe: one instance serves a whole fleet sweep.

    Everything that can be shared is loaded once: the ssh config, its per-host lookups, known_hosts
    files, private keys, the collector script, and transports to jump hosts.
    """

    def __init__(self, settings: SSHSettings):
        self.settings = settings
        self.config = load_ssh_config(settings.ssh_config)
        self._config_index = ConfigIndex(self.config)
        self.script = collector_script().encode()
        self._lock = threading.Lock()
        self._lookups: dict[str, paramiko.config.SSHConfigDict] = {}
        self._known: dict[tuple[tuple[str, ...], str], _KnownHosts] = {}
        self._keys: dict[str, paramiko.PKey | str] = {}
        self._key_lock = threading.Lock()
        self._jumps: dict[tuple[str, str, int], paramiko.Transport | BaseException] = {}
        self._jump_locks: dict[tuple[str, str, int], threading.Lock] = {}
        self._active: set[paramiko.Transport] = set()
        self._stop = threading.Event()
        for p in settings.identities:
            if not Path(p).expanduser().is_file():
                raise SSHSetupError(f"identity file {p} does not exist")
        if settings.known_hosts is not None and Path(settings.known_hosts).is_dir():
            raise SSHSetupError(f"--known-hosts {settings.known_hosts} is a directory")

    # -- configuration ------------------------------------------------------------------
    def lookup(self, alias: str):
        with self._lock:
            cfg = self._lookups.get(alias)
        if cfg is None:
            cfg = self._config_index.lookup(alias)
            with self._lock:
                self._lookups[alias] = cfg
        return cfg

    def resolve(self, alias: str, user: str | None, port: int | None) -> _Resolved:
        s = self.settings
        cfg = self.lookup(alias)
        if cfg.get("proxycommand"):
            raise SSHSetupError("ProxyCommand is not supported (use ProxyJump)")
        hostname = validate_host(str(cfg.get("hostname", alias)), "HostName")
        user = user or s.user or cfg.get("user") or getpass.getuser()
        validate_user(user)
        port = validate_port(port or s.port or cfg.get("port", 22))
        jump = cfg.get("proxyjump")
        if jump and jump.lower() == "none":
            jump = None
        ids = [str(Path(p).expanduser()) for p in s.identities]
        ids += [_expand_path(p, hostname) for p in cfg.get("identityfile", [])]
        if s.known_hosts is not None:
            read = [str(Path(s.known_hosts).expanduser())]
            write = read[0]
        else:
            files = cfg.get("userknownhostsfile", "~/.ssh/known_hosts ~/.ssh/known_hosts2").split()
            read = [_expand_path(f, hostname) for f in files]
            write = read[0]
            glob_files = cfg.get("globalknownhostsfile", "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2")
            read += [_expand_path(f, hostname) for f in glob_files.split()]
        strict = str(cfg.get("stricthostkeychecking", "yes")).lower()
        timeout = s.connect_timeout
        if timeout is None:
            try:
                timeout = float(cfg.get("connecttimeout", DEFAULT_CONNECT_TIMEOUT))
            except ValueError:
                timeout = DEFAULT_CONNECT_TIMEOUT
        agent_cfg = str(cfg.get("identityagent", "")).lower()
        return _Resolved(
            alias=alias,
            hostname=hostname,
            user=user,
            port=port,
            proxyjump=jump,
            identity_files=ids,
            identities_only=str(cfg.get("identitiesonly", "no")).lower() == "yes",
            use_agent=s.use_agent and agent_cfg != "none" and bool(os.environ.get("SSH_AUTH_SOCK")),
            known_hosts_read=read,
            known_hosts_write=write,
            accept_new=s.accept_new or strict in ("accept-new", "no", "off"),
            hash_known_hosts=str(cfg.get("hashknownhosts", "no")).lower() == "yes",
            key_alias=cfg.get("hostkeyalias"),
            connect_timeout=max(0.1, timeout),
        )

    def _known_hosts(self, r: _Resolved) -> _KnownHosts:
        key = (tuple(r.known_hosts_read), r.known_hosts_write)
        with self._lock:
            kh = self._known.get(key)
            if kh is None:
                kh = self._known[key] = _KnownHosts(r.known_hosts_read, r.known_hosts_write)
        return kh

    def _identity(self, path: str) -> paramiko.PKey | str:
        """A private key loaded once per run, or why it could not be used."""
        with self._key_lock:
            if path not in self._keys:
                self._keys[path] = _load_key(path, self.settings.password)
            return self._keys[path]

    def _key_files(self, r: _Resolved) -> list[str]:
        if r.identity_files:
            return r.identity_files
        home = os.path.expanduser("~/.ssh")
        return [p for p in (os.path.join(home, n) for n in DEFAULT_IDENTITIES) if os.path.isfile(p)]

    # -- connection -------------------------------------------------------------------------
    def interrupt(self) -> None:
        """Ctrl-C: stop every collection in progress (their hosts end as `interrupted`)."""
        self._stop.set()
        with self._lock:
            active = list(self._active)
        for t in active:
            t.close()

    def close(self) -> None:
        with self._lock:
            jumps = list(self._jumps.values())
            self._jumps.clear()
        for t in jumps:
            if isinstance(t, paramiko.Transport):
                t.close()

    def _check(self, deadline: float, stage: str) -> float:
        if self._stop.is_set():
            raise _Interrupted()
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Timeout(f"timed out during {stage}")
        return left

    def _open_socket(self, r: _Resolved, deadline: float, depth: int):
        if r.proxyjump:
            return self._jump_channel(r, deadline, depth)
        left = self._check(deadline, "connect")
        try:
            infos = socket.getaddrinfo(r.hostname, r.port, 0, socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConnectionError(f"cannot resolve {r.hostname}: {exc.strerror or exc}") from None
        last: OSError | None = None
        for family, stype, proto, _, addr in infos:
            sock = socket.socket(family, stype, proto)
            try:
                self._tcp_connect(sock, addr, deadline)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                return sock
            except _Timeout:
                sock.close()
                raise _Timeout(f"TCP connect to {r.hostname} port {r.port} timed out after {left:.1f}s") from None
            except OSError as exc:
                sock.close()
                last = exc
            except BaseException:
                sock.close()
                raise
        assert last is not None
        raise last

    def _tcp_connect(self, sock: socket.socket, addr, deadline: float) -> None:
        """Non-blocking connect, watched in short slices so Ctrl-C and the deadline both end it at once."""
        sock.setblocking(False)
        rc = sock.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS, errno.EALREADY, errno.EWOULDBLOCK):
            raise OSError(rc, os.strerror(rc))
        while rc != 0:
            left = self._check(deadline, "connect")
            _, writable, _ = select.select([], [sock], [], min(0.2, left))
            if writable:
                rc = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if rc:
                    raise OSError(rc, os.strerror(rc))
                break
        sock.setblocking(True)

    def _jump_channel(self, r: _Resolved, deadline: float, depth: int):
        if depth >= MAX_JUMP_DEPTH:
            raise SSHSetupError(f"ProxyJump chain of {r.alias} is longer than {MAX_JUMP_DEPTH}")
        hops = [h.strip() for h in r.proxyjump.split(",") if h.strip()]  # type: ignore[union-attr]
        # The last hop is the one next to the target; the hops before it are its own jump chain.
        spec = hops[-1]
        d = parse_destination(spec)
        jr = self.resolve(d.host, d.user, d.port)
        if len(hops) > 1:
            jr.proxyjump = ",".join(hops[:-1])
        transport = self._jump_transport(jr, deadline, depth + 1)
        left = self._check(deadline, f"opening a channel through jump host {jr.alias}")
        try:
            return transport.open_channel("direct-tcpip", (r.hostname, r.port), ("127.0.0.1", 0), timeout=left)
        except paramiko.ChannelException as exc:
            raise ConnectionError(f"jump host {jr.alias} cannot reach {r.hostname}:{r.port}: {exc.text}") from None

    def _jump_transport(self, jr: _Resolved, deadline: float, depth: int) -> paramiko.Transport:
        key = (jr.alias, jr.user, jr.port)
        with self._lock:
            lock = self._jump_locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                cached = self._jumps.get(key)
            if isinstance(cached, paramiko.Transport) and cached.is_active():
                return cached
            if isinstance(cached, BaseException):
                raise cached
            try:
                t = self._connect(jr, deadline, depth)
            except (_Timeout, _Interrupted):
                raise
            except BaseException as exc:
                wrapped = _JumpFailed(jr.alias, exc)
                with self._lock:
                    self._jumps[key] = wrapped
                raise wrapped from None
            with self._lock:
                self._jumps[key] = t
            return t

    def _connect(self, r: _Resolved, deadline: float, depth: int = 0) -> paramiko.Transport:
        sock = self._open_socket(r, deadline, depth)
        t = paramiko.Transport(sock)
        with self._lock:
            self._active.add(t)
        try:
            left = self._check(deadline, "SSH handshake")
            t.banner_timeout = left
            t.handshake_timeout = left
            t.auth_timeout = left
            self._verify_host_key(t, r, deadline)
            self._authenticate(t, r, deadline)
            return t
        except BaseException:
            t.close()
            with self._lock:
                self._active.discard(t)
            raise

    def _verify_host_key(self, t: paramiko.Transport, r: _Resolved, deadline: float) -> None:
        store = self._known_hosts(r)
        # As OpenSSH: HostKeyAlias is used as is; otherwise "[host]:port" for a port other than 22.
        name = r.key_alias or (r.hostname if r.port == 22 else f"[{r.hostname}]:{r.port}")
        known = store.lookup(name)
        if known is not None and len(known):
            # Ask for the key type we already know, as OpenSSH does, so a host with several keys is not
            # mistaken for a changed one.
            opts = t.get_security_options()
            wanted = []
            for kt in known.keys():
                if kt == "ssh-rsa":
                    wanted += [x for x in ("rsa-sha2-512", "rsa-sha2-256") if x in opts.key_types]
                elif kt in opts.key_types:
                    wanted.append(kt)
            opts.key_types = wanted + [x for x in opts.key_types if x not in wanted]
        done = threading.Event()
        t.start_client(event=done)
        while not done.wait(min(0.2, self._check(deadline, "the SSH banner and key exchange"))):
            if time.monotonic() >= deadline:
                raise _Timeout("timed out waiting for the SSH banner and key exchange")
            if not t.is_active():
                break
        if not t.is_active():
            exc = t.get_exception()
            if self._stop.is_set():
                raise _Interrupted()
            if exc is not None and time.monotonic() >= deadline - 0.05:
                raise _Timeout("timed out waiting for the SSH banner and key exchange")
            raise exc or paramiko.SSHException("SSH negotiation failed")
        server_key = t.get_remote_server_key()
        if store.is_revoked(server_key):
            raise RevokedHostKeyError(name, server_key)
        if known is None or not len(known):
            policy = AcceptNewHostKey(store, r.hash_known_hosts) if r.accept_new else RefuseUnknownHostKey()
            policy.missing_host_key(self, name, server_key)
            return
        expected = known.get(server_key.get_name())
        if expected != server_key:
            raise paramiko.BadHostKeyException(name, server_key, expected or list(known.values())[0])

    def _authenticate(self, t: paramiko.Transport, r: _Resolved, deadline: float) -> None:
        tried: list[str] = []
        problems: list[str] = []

        def attempt(label: str, fn) -> bool:
            t.auth_timeout = self._check(deadline, "authentication")
            tried.append(label)
            try:
                fn()
            except paramiko.BadAuthenticationType as exc:
                problems.append(f"server allows only {', '.join(exc.allowed_types)}")
                return False
            except paramiko.AuthenticationException:
                return False
            except paramiko.SSHException:
                if not t.is_active():
                    if time.monotonic() >= deadline:
                        raise _Timeout("timed out during authentication") from None
                    raise paramiko.AuthenticationException(
                        "the server closed the connection during authentication (too many keys tried?)"
                    ) from None
                raise
            return t.is_authenticated()

        for path in self._key_files(r):
            key = self._identity(path)
            if isinstance(key, str):
                problems.append(key)
                continue
            if attempt(f"key {os.path.basename(path)}", lambda k=key: t.auth_publickey(r.user, k)):
                return
        if r.use_agent and not r.identities_only:
            agent = None
            try:
                agent = paramiko.Agent()
                for akey in agent.get_keys():
                    if attempt("agent key", lambda k=akey: t.auth_publickey(r.user, k)):
                        return
            except paramiko.SSHException as exc:
                if isinstance(exc, paramiko.AuthenticationException):
                    raise
                problems.append("ssh-agent not usable")
            finally:
                if agent is not None:
                    agent.close()
        if self.settings.password is not None:
            pw = self.settings.password
            if attempt("password", lambda: t.auth_password(r.user, pw, fallback=False)):
                return

            def answer(title, instructions, prompts):
                return [pw if not echo else "" for _, echo in prompts]

            if attempt("keyboard-interactive", lambda: t.auth_interactive(r.user, answer)):
                return
        what = ", ".join(dict.fromkeys(tried)) or "nothing (no key, agent or password available)"
        extra = f"; {'; '.join(dict.fromkeys(problems))}" if problems else ""
        raise paramiko.AuthenticationException(f"authentication as {r.user} failed (tried {what}){extra}")

    # -- running the collector ------------------------------------------------------------------
    def _command(self, all_netns: bool) -> str:
        if all_netns:
            return SUDO_NETNS_COMMAND if self.settings.sudo else NETNS_COMMAND
        return SUDO_COMMAND if self.settings.sudo else REMOTE_COMMAND

    def _run(
        self, t: paramiko.Transport, r: _Resolved, command_deadline: float, all_netns: bool = False
    ) -> tuple[bytes, int | None, str]:
        chan = t.open_session(timeout=self._check(command_deadline, "opening a session"))
        try:
            chan.settimeout(self._check(command_deadline, "sending the collector"))
            chan.exec_command(self._command(all_netns))
            chan.sendall(self.script)
            chan.shutdown_write()
            reader = DumpReader(max_bytes=self.settings.max_output)
            err = bytearray()
            while True:
                try:
                    left = self._check(command_deadline, "the collector command")
                except _Timeout as exc:
                    if all_netns and b"\n" + PART_HEADER.encode() + b"\n" in reader.data():
                        raise _NetnsTimeout(str(exc), reader.data()) from None  # what was read is kept
                    raise
                chan.settimeout(min(left, 0.5))
                try:
                    data = chan.recv(1 << 16)
                except TimeoutError:
                    data = None
                while chan.recv_stderr_ready():
                    chunk = chan.recv_stderr(1 << 14)
                    if len(err) < MAX_STDERR:
                        err += chunk[: MAX_STDERR - len(err)]
                if data is None:
                    continue
                if not data:
                    break
                reader.feed(data)
            status = None
            if chan.status_event.wait(min(2.0, max(0.05, command_deadline - time.monotonic()))):
                status = chan.recv_exit_status()
            return reader.data(), status, err.decode("utf-8", "replace")
        finally:
            chan.close()

    def collect(self, dest: Destination, sample_s: float = 0.0, all_netns: bool = False) -> HostResult:
        """Audit input for one host: a Snapshot, or a status and a one-line reason. Never raises for host problems.
        all_netns: one command that also reads every network namespace (HostResult.netns); no sampling."""
        t0 = time.monotonic()
        transport: paramiko.Transport | None = None
        r: _Resolved | None = None
        t_connected: float | None = None

        def result(
            status: TargetStatus, error: str | None = None, snap: Snapshot | None = None, ns: RemoteNetns | None = None
        ) -> HostResult:
            now = time.monotonic()
            connect_s = (t_connected if t_connected is not None else now) - t0
            collect_s = now - t_connected if t_connected is not None else 0.0
            return HostResult(
                dest, status, clean_text(error, 500) if error else None, snap, now - t0, connect_s, collect_s, ns
            )

        try:
            if self._stop.is_set():
                raise _Interrupted()
            r = self.resolve(dest.host, dest.user, dest.port)
            transport = self._connect(r, time.monotonic() + r.connect_timeout)
            t_connected = time.monotonic()
            if all_netns:
                timeout = self.settings.command_timeout
                try:
                    data, status, err = self._run(transport, r, time.monotonic() + timeout, all_netns=True)
                    cut = None
                except _NetnsTimeout as exc:  # the namespaces not reached are listed as such
                    data, status, err = exc.data, None, ""
                    cut = f"the collector was stopped by --command-timeout ({timeout:g} s)"
                self._check_output(data, status, err)
                try:
                    ns = remote_netns(data, cut_short=cut)
                except DumpError:
                    if cut is not None:  # stopped before the namespaces were even listed
                        raise _Timeout("timed out during the collector command") from None
                    raise
                return result(TargetStatus.ok, None, build_snapshot(ns.main), ns)
            first = None
            if sample_s > 0:
                data, status, err = self._run(transport, r, time.monotonic() + self.settings.command_timeout)
                first = self._finish(dest, data, status, err)
                t_first = time.monotonic()
                if self._stop.wait(sample_s):
                    raise _Interrupted()
            data, status, err = self._run(transport, r, time.monotonic() + self.settings.command_timeout)
            snap = self._finish(dest, data, status, err)
            if first is not None:
                snap.previous = CounterSample(
                    interval_s=time.monotonic() - t_first,
                    counters=first.counters,
                    conntrack_stats_per_cpu=first.conntrack.stats_per_cpu,
                )
            return result(TargetStatus.ok, None, snap)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure is a status and a reason, never a traceback
            failure, msg = _classify(exc, self._stop.is_set())
            if isinstance(exc, (DestinationError, SSHSetupError)):
                return result(failure, f"{dest.name}: {msg}")
            return result(failure, f"{_where(dest, r)}: {msg}")
        finally:
            if transport is not None:
                transport.close()
                with self._lock:
                    self._active.discard(transport)

    def _finish(self, dest: Destination, data: bytes, status: int | None, err: str) -> Snapshot:
        self._check_output(data, status, err)
        return snapshot_from_dump(data, dest.name, Source.ssh)

    def _check_output(self, data: bytes, status: int | None, err: str) -> None:
        if not data.strip():
            last = next((ln for ln in reversed(err.splitlines()) if ln.strip()), "")
            if self.settings.sudo and "sudo" in last:
                raise _SudoFailed(f"sudo -n failed: {last}")
            raise _CommandFailed(
                f"the collector printed nothing (exit status {status}" + (f"; stderr: {last}" if last else "") + ")"
            )


def _load_key(path: str, password: str | None) -> paramiko.PKey | str:
    """paramiko 5 reports an encrypted key as TypeError (from cryptography) and wants the passphrase as bytes."""
    try:
        return paramiko.PKey.from_path(path)
    except FileNotFoundError:
        return f"{path}: no such file"
    except (TypeError, paramiko.PasswordRequiredException) as exc:
        if not isinstance(exc, paramiko.PasswordRequiredException) and "password" not in str(exc).lower():
            return f"{path}: cannot load ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - cryptography raises assorted types for odd key files
        return f"{path}: cannot load ({type(exc).__name__})"
    if password is None:
        return f"{path} is encrypted: load it into ssh-agent or use --password-prompt"
    try:
        return paramiko.PKey.from_path(path, password.encode())  # type: ignore[arg-type]  # bytes work; stubs say str
    except Exception:  # noqa: BLE001 - never let the passphrase near an error message
        return f"{path}: wrong passphrase, or not a private key"


class _JumpFailed(Exception):
    def __init__(self, alias: str, cause: BaseException):
        self.alias = alias
        self.cause = cause
        super().__init__(f"jump host {alias}: {cause}")


class _SudoFailed(Exception):
    pass


class _CommandFailed(Exception):
    pass


def _where(dest: Destination, r: _Resolved | None) -> str:
    if r is None:
        return dest.name
    return f"{r.user}@{r.hostname}:{r.port}"


_UNREACHABLE_ERRNOS = {
    errno.ECONNREFUSED,
    errno.EHOSTUNREACH,
    errno.ENETUNREACH,
    errno.ECONNRESET,
    errno.ECONNABORTED,
    errno.EHOSTDOWN,
    errno.ENETDOWN,
    errno.EADDRNOTAVAIL,
}


def _classify(exc: BaseException, stopping: bool) -> tuple[TargetStatus, str]:
    """An exception from connecting, authenticating or running -> (status, one-line reason)."""
    if stopping or isinstance(exc, _Interrupted):
        return TargetStatus.interrupted, "interrupted before this host was done"
    if isinstance(exc, _JumpFailed):
        status, msg = _classify(exc.cause, stopping)
        return status, f"via jump host {exc.alias}: {msg}"
    if isinstance(exc, _SudoFailed):
        return TargetStatus.auth_failed, str(exc)
    if isinstance(exc, _CommandFailed):
        return TargetStatus.error, str(exc)
    if isinstance(exc, _Timeout):
        return TargetStatus.timeout, str(exc)
    if isinstance(exc, HostKeyRefused):
        return TargetStatus.host_key_rejected, str(exc)
    if isinstance(exc, paramiko.BadHostKeyException):
        return TargetStatus.host_key_rejected, (
            f"host key for {exc.hostname} does not match known_hosts (got {exc.key.get_name()} "
            f"{exc.key.fingerprint}); refusing to connect (possible man-in-the-middle, or the host was "
            "reinstalled: remove the old key with ssh-keygen -R)"
        )
    if isinstance(exc, paramiko.AuthenticationException):
        return TargetStatus.auth_failed, str(exc) or "authentication failed"
    if isinstance(exc, DumpError):
        return TargetStatus.bad_output, f"bad collector output: {exc}"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return TargetStatus.timeout, "timed out"
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE_ERRNOS:
        return TargetStatus.unreachable, exc.strerror or str(exc)
    if isinstance(exc, ConnectionError):
        return TargetStatus.unreachable, str(exc)
    if isinstance(exc, paramiko.SSHException):
        text = str(exc)
        if "banner" in text.lower():
            return TargetStatus.error, "no valid SSH banner (not an SSH server, or it closed the connection)"
        return TargetStatus.error, f"SSH error: {text}"
    if isinstance(exc, SSHSetupError):
        return TargetStatus.error, str(exc)
    if isinstance(exc, OSError):
        return TargetStatus.unreachable, exc.strerror or str(exc)
    return TargetStatus.error, f"{type(exc).__name__}: {exc}"
