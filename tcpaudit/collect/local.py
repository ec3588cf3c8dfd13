"""The local collector: reads /proc and /sys directly, the socket table over netlink (sock_diag, as `ss`
does), running `ss` when sock_diag is refused and reading /proc/net/tcp{,6} when neither works.

Works unprivileged: whatever it cannot read becomes a CollectionGap in the
Snapshot, never an exception and never a silent omission. It only reads.
"""

from __future__ import annotations

import datetime as _dt
import errno
import functools
import os
import selectors
import shutil
import subprocess
import time

from ..snapshot import Counters, CounterSample, GapReason, Snapshot, Source
from .build import build_snapshot
from .parsers import (
    ParseError,
    SsDetailParser,
    SsTableParser,
    fold_value,
    parse_conntrack_stat,
    parse_counter_pairs,
    parse_sockstat,
)
from .persisted import read_local as read_persisted
from .raw import SECRET_SYSCTL_FILES, SYSCTL_ROOTS, RawCapture

DEFAULT_DETAIL_CAP = 50_000
# A local audit analyses every socket up to this many (≈1.5 GB of ss text on a huge proxy would otherwise be
# held whole); the remote collector caps at dump.SS_CAP because the table also crosses the network.
DEFAULT_TABLE_CAP = 1_000_000
COMMAND_TIMEOUT_S = 20.0

FILES = {
    "hostname": "/proc/sys/kernel/hostname",
    "osrelease": "/proc/sys/kernel/osrelease",
    "proc_version": "/proc/version",  # its `uname -v` tail names Debian's stable release (kernel/release.py)
    "version_signature": "/proc/version_signature",  # Ubuntu only
    "uptime": "/proc/uptime",
    "netstat": "/proc/net/netstat",
    "snmp": "/proc/net/snmp",
    "sockstat": "/proc/net/sockstat",
    "sockstat6": "/proc/net/sockstat6",
    "nf_conntrack_stat": "/proc/net/stat/nf_conntrack",
    "dmi.sys_vendor": "/sys/class/dmi/id/sys_vendor",
    "dmi.product_name": "/sys/class/dmi/id/product_name",
    "dmi.bios_vendor": "/sys/class/dmi/id/bios_vendor",
    "dmi.chassis_asset_tag": "/sys/class/dmi/id/chassis_asset_tag",
    "dmi.board_vendor": "/sys/class/dmi/id/board_vendor",
    "cgroup": "/proc/1/cgroup",
}
# The files of the network namespace being read, relative to its /proc/net: read under /proc/thread-self/net by
# a thread that entered another namespace (/proc/net is a link to self/net, the main thread's namespace), or
# under /proc/PID/net in the counters-only mode. The other FILES are the host's, whichever namespace reads them.
PER_NETNS_FILES = {k: v[len("/proc/net/") :] for k, v in FILES.items() if v.startswith("/proc/net/")}
MARKERS = {
    "marker.dockerenv": "/.dockerenv",
    "marker.containerenv": "/run/.containerenv",
    "marker.k8s-serviceaccount": "/var/run/secrets/kubernetes.io/serviceaccount",
}
# Items whose absence is normal and not worth a gap (no DMI in VMs without it, no conntrack module).
OPTIONAL = {"nf_conntrack_stat", "sockstat6", "proc_version", "version_signature"} | {
    k for k in FILES if k.startswith("dmi.")
}

_ERRNO_REASON = {
    errno.EACCES: GapReason.permission_denied,
    errno.EPERM: GapReason.permission_denied,
    errno.ENOENT: GapReason.missing,
    errno.ENOTDIR: GapReason.missing,
}


def _reason(exc: OSError) -> GapReason:
    return _ERRNO_REASON.get(exc.errno or 0, GapReason.error)


def _read(path: str, limit: int = 16 << 20) -> str:
    # Small reads: procfs/sysfs handlers may kmalloc the requested size and fail with ENOMEM on huge ones.
    chunks = []
    size = 0
    with open(path, "rb", buffering=0) as f:
        while size < limit:
            chunk = f.read(min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def read_sysctls(raw: RawCapture, proc_sys: str = "/proc/sys") -> None:
    """Every sysctl under net.ipv4, net.ipv6, net.core and net.netfilter.

    One open and one read per file, nothing else (a namespace sweep reads this tree hundreds of times): the
    mode is looked at only when an open fails, to tell a write-only trigger such as route.flush (no setting
    to read) from a file that could not be read. Files are opened relative to their directory's fd: with
    many network namespaces every /proc/sys/net name has one dentry per namespace in the same hash chain
    (proc_sys_compare skips the ones not seen from the reader's namespace), so a full path walk per file
    cost 3-5x the read itself on a machine with 200 namespaces (docs/benchmarks.md, `netns`). Secrets
    (raw.SECRET_SYSCTL_FILES) are not opened at all."""
    sysctls = raw.sysctls
    flags = os.O_RDONLY | os.O_CLOEXEC
    dir_flags = flags | getattr(os, "O_DIRECTORY", 0)

    def value(dfd: int, fn: str) -> str:
        fd = os.open(fn, flags, dir_fd=dfd)
        try:
            # 4 KiB reads: proc_sys_call_handler allocates a kernel buffer of the size asked for
            data = os.read(fd, 4096)
            if len(data) == 4096:
                chunks = [data]
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
                data = b"".join(chunks)
        finally:
            os.close(fd)
        return data.decode("utf-8", "replace")

    def walk(path: str, prefix: str) -> None:
        try:
            dfd = os.open(path, dir_flags)
        except OSError as exc:
            raw.gap(f"sysctl:{prefix}", _reason(exc), exc.strerror or str(exc))
            return
        try:
            try:
                with os.scandir(dfd) as it:
                    entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in it)
            except OSError as exc:
                raw.gap(f"sysctl:{prefix}", _reason(exc), exc.strerror or str(exc))
                return
            subdirs = []
            for fn, is_dir in entries:
                name = f"{prefix}.{fn.replace('.', '/')}"
                if is_dir:
                    subdirs.append((f"{path}/{fn}", name))
                    continue
                if fn in SECRET_SYSCTL_FILES:
                    continue  # a key, not a setting: never read, never a gap
                try:
                    sysctls[name] = fold_value(value(dfd, fn))
                except OSError as exc:
                    try:
                        if exc.errno in (errno.EACCES, errno.EPERM) and not os.stat(fn, dir_fd=dfd).st_mode & 0o444:
                            continue  # write-only triggers such as route.flush hold no setting
                    except OSError:
                        pass
                    raw.gap(f"sysctl:{name}", _reason(exc), exc.strerror or str(exc))
        finally:
            os.close(dfd)
        for sub, name in subdirs:
            walk(sub, name)

    for root in SYSCTL_ROOTS:
        top = os.path.join(proc_sys, *root.split("."))
        if not os.path.isdir(top):
            if root != "net.netfilter":  # no conntrack module loaded: normal
                raw.gap(f"sysctl:{root}", GapReason.missing, f"{top} does not exist")
            continue
        raw.sysctl_roots.append(root)
        walk(top, root)


@functools.cache
def _which(name: str) -> str | None:
    """shutil.which, once per process: a namespace sweep would otherwise search PATH per namespace."""
    return shutil.which(name)


def _run(argv: list[str], raw: RawCapture, item: str, limit_lines: int | None = None) -> str | None:
    exe = _which(argv[0])
    if exe is None:
        raw.gap(item, GapReason.missing, f"{argv[0]} not installed")
        return None
    try:
        if limit_lines is None:
            proc = subprocess.run(
                [exe, *argv[1:]], capture_output=True, timeout=COMMAND_TIMEOUT_S, stdin=subprocess.DEVNULL
            )
            out = proc.stdout.decode("utf-8", "replace")
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                detail = err[-1] if err else f"exit {proc.returncode}"
                reason = GapReason.permission_denied if "ermission" in detail else GapReason.error
                raw.gap(item, reason, f"{' '.join(argv)}: {detail}")
                return None
            return out
        # Stream and stop reading after limit_lines: huge tables do not get shipped whole.
        p = subprocess.Popen(
            [exe, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )
        assert p.stdout is not None
        lines = []
        for n, line in enumerate(p.stdout):
            if n >= limit_lines:
                raw.gap(item, GapReason.truncated, f"stopped after {limit_lines} lines")
                break
            lines.append(line)
        p.kill()
        p.wait()
        return b"".join(lines).decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        raw.gap(item, GapReason.timeout, f"{' '.join(argv)} took longer than {COMMAND_TIMEOUT_S:.0f}s")
    except OSError as exc:
        raw.gap(item, _reason(exc), f"{argv[0]}: {exc.strerror or exc}")
    return None


class _Stream:
    """One command's stdout, read as it is printed: kept for the RawCapture and fed to a parser on the way.

    `limit_lines` mirrors _run's: keep that many lines, and record a truncation gap only if more followed.
    """

    def __init__(self, item: str, argv: list[str], parser, limit_lines: int | None = None):
        self.item, self.argv, self.parser, self.limit_lines = item, argv, parser, limit_lines
        self.pieces: list[str] = []  # the decoded output, in pieces that end at line breaks
        self.tail = b""
        self.lines = 0
        self.truncated = False
        self.full = False  # limit reached: anything more means truncation
        self.proc: subprocess.Popen | None = None
        self.err = b""  # the end of its stderr (ss may print a line per socket there: no cgroup2 mount)

    def start(self, raw: RawCapture) -> bool:
        exe = shutil.which(self.argv[0])
        try:
            self.proc = subprocess.Popen(
                [exe or self.argv[0], *self.argv[1:]],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            raw.gap(self.item, _reason(exc), f"{self.argv[0]}: {exc.strerror or exc}")
            return False
        try:  # a bigger pipe lets ss run ahead while a piece is parsed
            import fcntl

            assert self.proc.stdout is not None
            fcntl.fcntl(self.proc.stdout, fcntl.F_SETPIPE_SZ, 1 << 20)
        except (ImportError, AttributeError, OSError):
            pass
        return True

    def _parse(self, data: bytes) -> None:
        # Pieces end at b"\n", so decoding them one by one gives exactly the decoded whole.
        text = data.decode("utf-8", "replace")
        self.pieces.append(text)
        if self.parser is not None and text:
            try:
                self.parser.feed(text)
            except ParseError:
                self.parser = None  # build_snapshot parses the text again and records the error as a gap

    def feed(self, chunk: bytes) -> bool:
        """Take a chunk; False once no more output is wanted."""
        if self.full:
            self.truncated = True
            return False
        if self.limit_lines is not None and self.lines + chunk.count(b"\n") >= self.limit_lines:
            cut = -1
            for _ in range(self.limit_lines - self.lines):
                cut = chunk.index(b"\n", cut + 1)
            chunk, rest = chunk[: cut + 1], chunk[cut + 1 :]
            self.full = True
            self.truncated = bool(rest)
        self.lines += chunk.count(b"\n")
        data = self.tail + chunk
        end = data.rfind(b"\n") + 1
        self.tail = data[end:]
        self._parse(data[:end])
        return not self.truncated

    def close(self) -> None:
        self._parse(self.tail)
        self.tail = b""

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream:
                    stream.close()

    def stderr_tail(self) -> str:
        lines = self.err.decode("utf-8", "replace").strip().splitlines()
        return lines[-1] if lines else ""

    def text(self) -> str:
        text = "".join(self.pieces)
        self.pieces = [text]
        return text


class _SocketTables:
    """`ss -tanoeH` and `ss -tinH state established`, both at once, parsed while they print.

    The two commands and the RawCapture items are exactly those of collector.sh, so the SSH collector and
    `tcpaudit audit` of a dump build the same Snapshot; here the parse results ride along in raw.parsed.
    """

    def __init__(self, detail_cap: int, table_cap: int = DEFAULT_TABLE_CAP):
        self.table = _Stream("ss", ["ss", "-tanoeH"], SsTableParser("ss"), limit_lines=table_cap)
        self.detail = _Stream(
            "ss-detail",
            ["ss", "-tinH", "state", "established"],
            SsDetailParser("ss-detail", detail_cap),
            limit_lines=2 * detail_cap + 2,
        )
        self.started: list[_Stream] = []
        self.missing = shutil.which("ss") is None

    def start(self, raw: RawCapture) -> None:
        if not self.missing:
            self.started = [s for s in (self.table, self.detail) if s.start(raw)]

    def finish(self, raw: RawCapture) -> bool:
        """Read both to the end; True when the socket table was captured."""
        if self.missing:
            raw.gap("ss", GapReason.missing, "ss not installed")
            return False
        try:
            timed_out = self._pump()
            for s in self.started:
                s.close()
        finally:
            for s in self.started:
                s.stop()
        t, d = self.table, self.detail
        if t not in self.started:
            return False
        if t in timed_out:
            raw.gap("ss", GapReason.timeout, f"ss -tanoeH took longer than {COMMAND_TIMEOUT_S:.0f}s")
            return False
        assert t.proc is not None
        if t.truncated:  # stopped (and killed) on purpose at the cap: what was read is good, and incomplete
            raw.gap("ss", GapReason.truncated, f"stopped after {t.limit_lines} sockets; counts are lower bounds")
        elif t.proc.returncode != 0:
            detail = t.stderr_tail() or f"exit {t.proc.returncode}"
            reason = GapReason.permission_denied if "ermission" in detail else GapReason.error
            raw.gap("ss", reason, f"ss -tanoeH: {detail}")
            return False
        raw.items["ss"] = t.text()
        if t.parser is not None:
            raw.parsed["ss"] = t.parser.columns()
            established = "ESTAB" in raw.parsed["ss"]["state"]
        else:
            established = any(line.startswith("ESTAB") for line in raw.items["ss"].splitlines())
        if not established:
            raw.gaps = [g for g in raw.gaps if g.item != "ss-detail"]
        elif d in self.started:  # as before: detail only where there is something to detail
            if d in timed_out:
                raw.gap("ss-detail", GapReason.timeout, f"ss -tinH took longer than {COMMAND_TIMEOUT_S:.0f}s")
            else:
                if d.truncated:
                    raw.gap("ss-detail", GapReason.truncated, f"stopped after {d.limit_lines} lines")
                raw.items["ss-detail"] = d.text()
                if d.parser is not None:
                    raw.parsed["ss-detail"] = d.parser.result()
        return True

    def _pump(self) -> list[_Stream]:
        sel = selectors.DefaultSelector()
        for s in self.started:
            assert s.proc is not None and s.proc.stdout is not None and s.proc.stderr is not None
            sel.register(s.proc.stdout, selectors.EVENT_READ, s)
            sel.register(s.proc.stderr, selectors.EVENT_READ, None)
        errs = {s.proc.stderr.fileno(): s for s in self.started if s.proc and s.proc.stderr}
        deadline = time.monotonic() + COMMAND_TIMEOUT_S
        try:
            while sel.get_map():
                left = deadline - time.monotonic()
                if left <= 0:
                    return [key.data for key in sel.get_map().values() if key.data is not None]
                for key, _ in sel.select(left):
                    s = key.data
                    chunk = os.read(key.fd, 1 << 20)
                    if s is None:  # stderr: keep the end, for the gap's detail
                        if chunk:
                            errs[key.fd].err = (errs[key.fd].err + chunk)[-4096:]
                        else:
                            sel.unregister(key.fileobj)
                        continue
                    if not chunk or not s.feed(chunk):
                        sel.unregister(key.fileobj)
                        if chunk and s.proc is not None:
                            s.proc.kill()  # enough of it
        finally:
            sel.close()
        return []


# Where the socket table comes from: "netlink" (sock_diag, the default), "ss" (run ss and parse its text,
# as the remote collector does; also the fallback when sock_diag is refused), or "auto". Library callers
# pass `sockets=`; TCPAUDIT_SOCKET_SOURCE sets it for a whole process (benchmarks, debugging).
SOCKET_SOURCES = ("auto", "netlink", "ss")


def _socket_source(sockets: str | None) -> str:
    mode = sockets or os.environ.get("TCPAUDIT_SOCKET_SOURCE") or "auto"
    return mode if mode in SOCKET_SOURCES else "auto"


def _capture_sock_diag(raw: RawCapture, table_cap: int, proc_net: str = "/proc/net") -> bool | None:
    """The socket table over NETLINK_SOCK_DIAG into raw.parsed["sock_diag"].

    True: captured; False: the dump timed out (a gap; the caller falls back to /proc); None: the kernel or a
    sandbox refuses sock_diag here, and ss (which needs the same interface, or reads /proc) is tried instead.
    """
    from .sockdiag import SockDiagTimeout, SockDiagUnavailable, dump_tcp

    try:
        cols, truncated = dump_tcp(timeout_s=COMMAND_TIMEOUT_S, limit=table_cap, proc_net=proc_net)
    except SockDiagUnavailable:  # the table's source ("ss" or "proc") then says what was used instead
        return None
    except SockDiagTimeout:
        raw.gap("sock_diag", GapReason.timeout, f"the netlink socket dump took longer than {COMMAND_TIMEOUT_S:.0f}s")
        return False
    if truncated:
        raw.gap("sock_diag", GapReason.truncated, f"stopped after {table_cap} sockets; counts are lower bounds")
    raw.parsed["sock_diag"] = cols
    return True


def capture_local(
    detail_cap: int = DEFAULT_DETAIL_CAP,
    proc_sys: str = "/proc/sys",
    table_cap: int = DEFAULT_TABLE_CAP,
    sockets: str | None = None,
    proc_net: str = "/proc/net",
    scope: str = "host",
) -> RawCapture:
    """Everything the local collector reads. `sockets`: one of SOCKET_SOURCES (default: the environment's
    TCPAUDIT_SOCKET_SOURCE, else auto = netlink, then ss when sock_diag is refused).

    `scope` "host" reads everything; "netns" only what belongs to the calling thread's network namespace
    (the /proc/net files under `proc_net`, /proc/sys/net, the socket table, the NAT rules): the host-wide
    items (kernel, hostname, DMI, os-release) come from the host's capture (collect/netns.py). "counters"
    reads only the files under `proc_net` (/proc/PID/net without entering the namespace): counters and the
    /proc socket table, no sysctls.
    """
    raw = RawCapture(source=Source.local, collected_at=_dt.datetime.now(_dt.timezone.utc), detail_cap=detail_cap)
    if scope == "counters":
        _capture_netns_files(raw, proc_net)
        _capture_proc_tcp(raw, proc_net)
        return raw
    tables = _SocketTables(detail_cap, table_cap) if _socket_source(sockets) == "ss" else None
    captured = False
    try:
        if tables is not None:
            tables.start(raw)  # ss runs while the files below are read
        if scope == "host":
            _capture_host_files(raw)
        _capture_netns_files(raw, proc_net)
        read_sysctls(raw, proc_sys)
        if tables is None:
            got = _capture_sock_diag(raw, table_cap, proc_net)
            if got is None:
                tables = _SocketTables(detail_cap, table_cap)
                tables.start(raw)
            else:
                captured = got
        if tables is not None:
            captured = tables.finish(raw)
    finally:
        for s in tables.started if tables is not None else ():
            s.stop()
    if not captured:
        _capture_proc_tcp(raw, proc_net)

    if _which("iptables-save"):
        if os.geteuid() == 0 and scope == "netns" and not nat_table_may_exist(proc_net):
            raw.items["iptables-nat"] = ""  # no IPv4 nat table here, legacy or nf_tables: no NAT rules to read
        elif os.geteuid() == 0:
            nat = _run(["iptables-save", "-t", "nat"], raw, "iptables-nat")
            if nat is not None:
                raw.items["iptables-nat"] = nat
        else:
            raw.gap("iptables-nat", GapReason.permission_denied, "reading NAT rules needs root")
    return raw


# nfnetlink (include/uapi/linux/netfilter/nfnetlink.h, nf_tables.h): subsystem NFNL_SUBSYS_NFTABLES = 10,
# NFT_MSG_GETTABLE = 1 (NEWTABLE = 0 in replies), attribute NFTA_TABLE_NAME = 1; NFPROTO_IPV4 = 2.
_NFT_GETTABLE = (10 << 8) | 1
_NFT_NEWTABLE = 10 << 8
NETLINK_NETFILTER = 12


def nat_table_may_exist(proc_net: str = "/proc/net") -> bool:
    """Whether this (the calling thread's) network namespace may have IPv4 NAT rules for iptables-save -t nat
    to print: an x_tables "nat" table (listed in PROC_NET/ip_tables_names once initialised there) or an
    nf_tables table named "nat" of family ip (what iptables-nft makes). False only when both are known to be
    absent; any doubt (no answer, an unexpected reply) says True, and iptables-save runs as before. A namespace
    sweep saves one iptables-save process per namespace without NAT (most pods under kube-proxy's nftables
    mode or no NAT at all, every test namespace)."""
    import socket
    import struct

    try:
        names = _read(f"{proc_net}/ip_tables_names").split()
    except FileNotFoundError:
        names = []  # ip_tables not loaded, or no table initialised in this namespace yet
    except OSError:
        return True
    if "nat" in names:
        return True
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_NETFILTER)
    except (OSError, AttributeError):
        return False  # no nfnetlink (nf_tables not built or loaded): no nf_tables tables either
    try:
        sock.settimeout(2.0)
        # nlmsghdr + nfgenmsg {family NFPROTO_IPV4, version 0, res_id 0}: dump the IPv4 tables
        sock.send(struct.pack("=IHHIIBBH", 20, _NFT_GETTABLE, 0x301, 1, 0, 2, 0, 0))
        while True:
            buf = sock.recv(1 << 16)
            off = 0
            while off + 16 <= len(buf):
                length, kind = struct.unpack_from("=IH", buf, off)
                if length < 16 or off + length > len(buf):
                    return True
                if kind == 3:  # NLMSG_DONE
                    return False
                if kind == 2:  # NLMSG_ERROR: nf_tables absent answers EOPNOTSUPP/ENOENT; anything else: doubt
                    code = -struct.unpack_from("=i", buf, off + 16)[0] if length >= 20 else 0
                    return code not in (errno.EOPNOTSUPP, errno.ENOENT, errno.EPROTONOSUPPORT)
                if kind == _NFT_NEWTABLE:
                    a = off + 20
                    while a + 4 <= off + length:
                        alen, atype = struct.unpack_from("=HH", buf, a)
                        if alen < 4:
                            return True
                        if atype & 0x3FFF == 1 and buf[a + 4 : a + alen].rstrip(b"\0") == b"nat":
                            return True
                        a += (alen + 3) & ~3
                off += (length + 3) & ~3
            if not buf:
                return True
    except OSError:
        return True
    finally:
        sock.close()


def _capture_proc_tcp(raw: RawCapture, proc_net: str) -> None:
    for item, name in (("proc-net-tcp", "tcp"), ("proc-net-tcp6", "tcp6")):
        path = f"{proc_net}/{name}"
        try:
            raw.items[item] = _read(path, limit=1 << 30)
        except OSError as exc:
            if not (item == "proc-net-tcp6" and _reason(exc) is GapReason.missing):
                raw.gap(item, _reason(exc), f"{path}: {exc.strerror or exc}")


def _capture_netns_files(raw: RawCapture, proc_net: str) -> None:
    for item, name in PER_NETNS_FILES.items():
        path = f"{proc_net}/{name}"
        try:
            raw.items[item] = _read(path)
        except OSError as exc:
            if item in OPTIONAL and _reason(exc) is GapReason.missing:
                continue
            raw.gap(item, _reason(exc), f"{path}: {exc.strerror or exc}")


def _capture_host_files(raw: RawCapture) -> None:
    for item, path in FILES.items():
        if item in PER_NETNS_FILES:
            continue
        try:
            raw.items[item] = _read(path)
        except OSError as exc:
            if item in OPTIONAL and _reason(exc) is GapReason.missing:
                continue
            raw.gap(item, _reason(exc), f"{path}: {exc.strerror or exc}")
    for item, path in (("os-release", "/etc/os-release"), ("os-release", "/usr/lib/os-release")):
        if item in raw.items:
            break
        try:
            raw.items[item] = _read(path)
        except OSError:
            continue
    else:
        if "os-release" not in raw.items:
            raw.gap("os-release", GapReason.missing, "no /etc/os-release or /usr/lib/os-release")
    for item, path in MARKERS.items():
        if os.path.exists(path):
            raw.items[item] = ""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        raw.items["env.kubernetes"] = ""
    read_persisted(raw)  # the sysctl configuration files: the host's, not a namespace's


def sample_counters(proc_net: str = "/proc/net") -> CounterSample | None:
    """The counters alone, for the first of two samples."""
    try:
        counters = Counters(
            netstat=parse_counter_pairs(_read(f"{proc_net}/netstat"), f"{proc_net}/netstat"),
            snmp=parse_counter_pairs(_read(f"{proc_net}/snmp"), f"{proc_net}/snmp"),
            sockstat=parse_sockstat(_read(f"{proc_net}/sockstat"), f"{proc_net}/sockstat"),
        )
    except (OSError, ParseError):
        return None
    try:  # merged into sockstat, as build_snapshot does
        counters.sockstat.update(parse_sockstat(_read(f"{proc_net}/sockstat6"), f"{proc_net}/sockstat6"))
    except (OSError, ParseError):
        pass
    try:
        ct = parse_conntrack_stat(_read(f"{proc_net}/stat/nf_conntrack"), f"{proc_net}/stat/nf_conntrack")
    except (OSError, ParseError):
        ct = []
    return CounterSample(interval_s=0.0, counters=counters, conntrack_stats_per_cpu=ct)


def collect_local(detail_cap: int = DEFAULT_DETAIL_CAP, sample_s: float = 0.0) -> Snapshot:
    """Snapshot of this machine. With sample_s > 0 the counters are sampled twice, sample_s apart."""
    first = None
    if sample_s > 0:
        first = sample_counters()
        t0 = time.monotonic()
        time.sleep(sample_s)
    # The second sample is read at the start of capture_local: the interval ends there, not after the
    # socket table (seconds on a busy host) has been collected and parsed.
    t1 = time.monotonic()
    snap = build_snapshot(capture_local(detail_cap))
    if first is not None:
        first.interval_s = t1 - t0
        snap.previous = first
    return snap
