"""Every network namespace of this machine (`tcpaudit host --all-netns`): found, named, entered, read.

Finding them. A namespace is alive while a process is in it or an nsfs file holds it: every
/proc/PID/ns/net, deduplicated by inode (os.stat follows the magic link to the nsfs inode), plus the
nsfs bind mounts in /proc/self/mountinfo and /proc/1/mountinfo (`ip netns add` mounts them under
/run/netns, docker under /var/run/docker/netns, CNI plugins as /run/netns/cni-*). The host namespace
is PID 1's; where /proc/1/ns/net cannot be read, kthreadd's (kernel threads run in the initial
namespace).

Naming them. The processes' /proc/PID/cgroup gives the pod UID, QoS class and container id (kubelet's
cgroup names, below); /var/log/pods/<namespace>_<name>_<uid> gives the pod's namespace/name; else the
bind mount's name, else the main process's comm. The inode and the PIDs are always recorded.

Entering them. One dedicated worker thread calls setns(fd, CLONE_NEWNET) per namespace, reads there,
and returns to where it started; the main thread never changes namespace. What the thread reads is its
own namespace's view only where the kernel resolves the namespace from the *reading thread*:
  - /proc/sys/net: the sysctl root's lookup is `&current->nsproxy->net_ns->sysctls`
    (net_ctl_header_lookup and is_seen in net/sysctl_net.c, torvalds/linux
    10dc9acdbdb0e6dbe0b9dadf64869dde82b211ed): the calling thread's namespace;
  - /proc/net is a symlink to self/net (proc_net_init in fs/proc/proc_net.c, torvalds/linux
    f8bade6c9a6213c2c5ba6e5bf32415ecab6e41e5), i.e. the thread-group leader's - the main thread's -
    namespace; the thread's own is /proc/thread-self/net;
  - a netlink sock_diag socket dumps the namespace it was created in: it is created in the thread.
/proc/PID/root/proc/sys is no way in: it is the reader's namespace again. tests/test_netns_enter.py
proves each of these on the running kernel.

Without CAP_SYS_ADMIN setns fails with EPERM; /proc/PID/net/* of a process inside can still be read
(counters and the /proc socket table), so such a namespace is audited from those alone: status partial,
and the gaps say so. A namespace that is gone by the time it is entered is skipped ("gone").

With `--sample` every namespace's counters are read once before the sweep, then the worker sleeps once for
all of them; with `--save-snapshot` the captures are streamed to one file (tcpaudit/netns_sweepfile.py).
What the sweep costs, and why it reads the way it does: docs/benchmarks.md, `netns`.

Kubelet's cgroup names (kubernetes/kubernetes):
  - pkg/kubelet/cm/pod_container_manager_linux.go @ 92bea270ca0436a5949680dbf5d12906a9ac896e:
    the pod cgroup is podCgroupNamePrefix ("pod") + the pod UID, a child of its QoS cgroup
    (GetPodContainerName);
  - pkg/kubelet/cm/qos_container_manager_linux.go @ aaa5bd53322cfa4ff82ff26e8868175a7e35ea35:
    Burstable and BestEffort pods sit in kubepods/burstable and kubepods/besteffort, Guaranteed pods
    directly under kubepods;
  - pkg/kubelet/cm/cgroup_manager_linux.go @ afd5df58bd7dcb7b8c3f00e2065936bd0c508b77: with the
    systemd driver each component has "-" escaped as "_" (escapeSystemdCgroupName) and the path is
    expanded as slices: /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_abcd.slice
    (CgroupName.ToSystemd);
  - containerd (internal/cri/server/podsandbox/helpers_linux.go @
    3b0b3e533ce1f60a60ab83905374d1ce43330063, getCgroupsPath): under a systemd slice the container's
    cgroup is runc's "slice:cri-containerd:<id>", i.e. cri-containerd-<id>.scope; under cgroupfs the
    parent joined with the bare id. CRI-O and docker name their scopes crio-<id>.scope and
    docker-<id>.scope the same way (crio-conmon-<id>.scope is CRI-O's monitor process, not a container).
The path shapes tested are in fixtures/netns/cgroup_paths.toml, each with its source.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from ..model import NetnsInfo
from ..sanitize import clean_text
from ..snapshot import CounterSample, GapReason, Snapshot
from .build import build_snapshot
from .local import (
    DEFAULT_DETAIL_CAP,
    DEFAULT_TABLE_CAP,
    FILES,
    PER_NETNS_FILES,
    capture_local,
    sample_counters,
)
from .raw import RawCapture

CLONE_NEWNET = 0x40000000
THREAD_PROC_NET = "/proc/thread-self/net"
POD_LOG_DIR = "/var/log/pods"
# Mount tables read for nsfs bind mounts: ours, and init's (a tool started in its own mount namespace -
# a container with hostPID - still sees the host's /run/netns through /proc/1/root).
MOUNTINFO = ("/proc/self/mountinfo", "/proc/1/mountinfo")
# Sysctl subtrees that hold one directory per network device: a key there that the host has and a
# namespace lacks names a device that is not in the namespace, not a global sysctl.
_PER_DEVICE = ("net.ipv4.conf.", "net.ipv6.conf.", "net.ipv4.neigh.", "net.ipv6.neigh.", "net.mpls.conf.")
# Counts, not settings: a namespace's own value must never be replaced by the host's.
_NEVER_FROM_HOST = frozenset({"net.netfilter.nf_conntrack_count"})


class NetnsUnavailable(Exception):
    """Namespaces cannot even be enumerated here (not Linux, no /proc, not allowed to look)."""


# ---------------------------------------------------------------------------------------------------------
# Names from /proc/PID/cgroup


@dataclass(frozen=True)
class CgroupIdentity:
    """What a process's cgroup path says about it."""

    pod_uid: str | None = None
    qos_class: str | None = None  # guaranteed, burstable, besteffort (kubelet's lower-case names)
    container_id: str | None = None
    runtime: str | None = None  # containerd, cri-o, docker, podman; None where the path does not say


_HEX_ID = re.compile(r"^[0-9a-f]{32,128}$")
_SCOPE = re.compile(r"^(cri-containerd|crio|docker|libpod)-([0-9a-f]{32,128})\.scope$")
_RUNTIME = {"cri-containerd": "containerd", "crio": "cri-o", "docker": "docker", "libpod": "podman"}
_QOS = ("burstable", "besteffort")
_UID = re.compile(r"^[0-9a-fA-F][0-9a-fA-F_-]{7,63}$")


def _pod_component(parts: list[str], i: int) -> tuple[str, str] | None:
    """(uid, qos) when parts[i] is a kubelet pod cgroup (cgroupfs `pod<uid>` or systemd
    `...-pod<uid_escaped>.slice`) below a kubepods cgroup."""
    part = parts[i]
    if not any("kubepods" in p for p in parts[:i]):
        return None
    if part.endswith(".slice"):
        words = part[: -len(".slice")].split("-")
        last = words[-1]
        if not last.startswith("pod") or "kubepods" not in words:
            return None
        uid = last[3:].replace("_", "-")  # escapeSystemdCgroupName, reversed
        qos = words[-2] if len(words) >= 2 and words[-2] in _QOS else "guaranteed"
    else:
        if not part.startswith("pod"):
            return None
        uid = part[3:]
        qos = parts[i - 1] if parts[i - 1] in _QOS else "guaranteed"
    if not _UID.match(uid):
        return None
    return uid.lower(), qos


def _container_component(part: str) -> tuple[str, str | None] | None:
    m = _SCOPE.match(part)
    if m:
        return m.group(2), _RUNTIME[m.group(1)]
    if part.startswith("crio-") and _HEX_ID.match(part[5:]):  # CRI-O under cgroupfs
        return part[5:], "cri-o"
    if part.startswith("libpod-") and _HEX_ID.match(part[7:]):
        return part[7:], "podman"
    if _HEX_ID.match(part):  # cgroupfs: the bare id (containerd or docker; the path does not say which)
        return part, None
    return None


def parse_cgroup_path(path: str) -> CgroupIdentity:
    """One cgroup path (the third field of a /proc/PID/cgroup line)."""
    parts = [p for p in path.strip().split("/") if p and p != ".."]
    pod_uid = qos = cid = runtime = None
    for i, part in enumerate(parts):
        pod = _pod_component(parts, i) if pod_uid is None else None
        if pod is not None:
            pod_uid, qos = pod
            continue
        if part.startswith("crio-conmon-"):
            continue  # CRI-O's monitor, not the container
        got = _container_component(part)
        if got is None:
            continue
        if got[1] is None:  # a bare id names a container only below a pod or docker's cgroupfs parent
            if pod_uid is None and parts[i - 1 : i] != ["docker"]:
                continue
            got = (got[0], "docker" if parts[i - 1] == "docker" else None)
        cid, runtime = got
    return CgroupIdentity(pod_uid=pod_uid, qos_class=qos, container_id=cid, runtime=runtime)


def parse_proc_cgroup(text: str) -> CgroupIdentity:
    """/proc/PID/cgroup, cgroup v1 (one line per hierarchy) or v2 (`0::PATH`): the most specific answer
    of any line (v2's first, then the v1 hierarchies in order)."""
    lines = [ln.split(":", 2) for ln in text.splitlines() if ln.count(":") >= 2]
    lines.sort(key=lambda f: f[0] != "0")
    best = CgroupIdentity()
    for fields in lines:
        ident = parse_cgroup_path(fields[2])
        score = (ident.pod_uid is not None, ident.container_id is not None)
        if score > (best.pod_uid is not None, best.container_id is not None):
            best = ident
        if ident.pod_uid and ident.container_id:
            break
    return best


def pod_names(root: str = POD_LOG_DIR) -> dict[str, str]:
    """pod UID -> "namespace/name", from kubelet's log directories <namespace>_<name>_<uid> (neither a
    namespace nor a pod name may contain '_': both are DNS labels or subdomains)."""
    try:
        entries = os.listdir(root)
    except OSError:
        return {}
    return pod_names_from(entries)


def pod_names_from(entries: Iterable[str]) -> dict[str, str]:
    """pod_names over a listing of the pod log directory (the remote collector sends one)."""
    out = {}
    for entry in entries:
        parts = entry.split("_")
        if len(parts) == 3 and all(parts):
            out[parts[2].lower()] = f"{parts[0]}/{parts[1]}"
    return out


# ---------------------------------------------------------------------------------------------------------
# Enumeration


@dataclass
class NetnsEntry:
    """One namespace as enumerated: where to open it, and what it is called."""

    inode: int
    pids: list[int] = field(default_factory=list)
    bind_mounts: list[str] = field(default_factory=list)  # mount points as the owning process sees them
    openers: list[str] = field(default_factory=list)  # bind-mount paths this process can open
    info: NetnsInfo | None = None


@dataclass
class Enumeration:
    host_inode: int
    host_from: str  # "pid 1", "kthreadd" or "self"
    own_inode: int
    entries: list[NetnsEntry]  # the host's first, then by inode
    pids_scanned: int = 0
    pids_unreadable: int = 0  # processes whose namespace this process may not look at

    def summary(self) -> dict[str, object]:
        return {
            "namespaces": len(self.entries),
            "host_inode": self.host_inode,
            "host_namespace_from": self.host_from,
            "pids_scanned": self.pids_scanned,
            "pids_unreadable": self.pids_unreadable,
        }


def _unescape_mount(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as \\ooo (show_mountinfo / seq_path)
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def nsfs_mounts(text: str) -> list[tuple[int, str]]:
    """(inode, mount point) of every network-namespace nsfs mount in a mountinfo text."""
    out = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        f = left.split()
        r = right.split()
        if len(f) < 5 or not r or r[0] != "nsfs":
            continue
        m = re.match(r"^net:\[(\d+)\]$", f[3])
        if m:
            out.append((int(m.group(1)), _unescape_mount(f[4])))
    return out


def _read_text(path: str, limit: int = 1 << 20) -> str | None:
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return None


def _host_inode(proc: str) -> tuple[int, str] | None:
    try:
        return os.stat(f"{proc}/1/ns/net").st_ino, "pid 1"
    except OSError:
        pass
    # Kernel threads keep the initial namespaces (init_nsproxy): kthreadd is PID 2 in the initial PID namespace.
    status = _read_text(f"{proc}/2/status", 4096) or ""
    if status.startswith("Name:\tkthreadd") and "\nPPid:\t0\n" in status:
        try:
            return os.stat(f"{proc}/2/ns/net").st_ino, "kthreadd"
        except OSError:
            pass
    return None


CAP_SYS_PTRACE = 19
CAP_SYS_ADMIN = 21


def _capable(cap: int, proc: str = "/proc") -> bool:
    """Whether this process has capability `cap` in its effective set (CapEff in /proc/self/status)."""
    for line in (_read_text(f"{proc}/self/status", 65536) or "").splitlines():
        if line.startswith("CapEff:"):
            try:
                return bool(int(line.split()[1], 16) >> cap & 1)
            except (IndexError, ValueError):
                return False
    return False


def enumerate_netns(proc: str = "/proc", mountinfo: tuple[str, ...] = MOUNTINFO) -> Enumeration:
    """Every network namespace this process can see, each once. Raises NetnsUnavailable when none can be
    seen at all (no /proc, or not even our own namespace)."""
    try:
        own = os.stat(f"{proc}/self/ns/net").st_ino
        pid_dirs = [int(d) for d in os.listdir(proc) if d.isdigit()]
    except OSError as exc:
        raise NetnsUnavailable(f"{proc}: {exc.strerror or exc} (Linux with /proc mounted is needed)") from None
    host = _host_inode(proc)
    host_inode, host_from = host if host is not None else (own, "self")
    if host is None and not _capable(CAP_SYS_PTRACE, proc):
        raise NetnsUnavailable("other processes' namespaces cannot be looked at without CAP_SYS_PTRACE: run as root")
    by_inode: dict[int, NetnsEntry] = {}
    scanned = unreadable = 0
    for pid in sorted(pid_dirs):
        scanned += 1
        try:
            ino = os.stat(f"{proc}/{pid}/ns/net").st_ino
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                unreadable += 1
            continue  # ENOENT: exited meanwhile, or a kernel thread without one
        by_inode.setdefault(ino, NetnsEntry(ino)).pids.append(pid)
    for source in mountinfo:
        text = _read_text(source, 16 << 20)
        if text is None:
            continue
        prefix = "" if source.startswith(f"{proc}/self/") or source == "/proc/self/mountinfo" else None
        root = source.rsplit("/", 1)[0] + "/root"
        for ino, point in nsfs_mounts(text):
            entry = by_inode.setdefault(ino, NetnsEntry(ino))
            if point not in entry.bind_mounts:
                entry.bind_mounts.append(point)
            opener = point if prefix is not None else root + point
            if opener not in entry.openers:
                entry.openers.append(opener)
    if host_inode not in by_inode:
        by_inode[host_inode] = NetnsEntry(host_inode)
    entries = sorted(by_inode.values(), key=lambda e: (e.inode != host_inode, e.inode))
    return Enumeration(host_inode, host_from, own, entries, scanned, unreadable)


def name_entries(
    enum: Enumeration,
    proc: str = "/proc",
    pod_log_dir: str = POD_LOG_DIR,
    read: Callable[[str, int], str | None] = _read_text,
    pods: dict[str, str] | None = None,
) -> None:
    """Fill entry.info for every entry: pod, container, bind mount or comm, and a unique target name.
    `read` and `pods` stand in for this machine's /proc and pod log directory (the remote collector's data)."""
    if pods is None:
        pods = pod_names(pod_log_dir)
    for e in enum.entries:
        is_host = e.inode == enum.host_inode
        ident = CgroupIdentity()
        for pid in e.pids[:8]:  # the pod's processes agree; the first that says anything answers
            got = parse_proc_cgroup(read(f"{proc}/{pid}/cgroup", 65536) or "")
            if got.pod_uid or got.container_id:
                ident = got
                break
        comm = None
        if e.pids:
            comm = (read(f"{proc}/{e.pids[0]}/comm", 256) or "").strip() or None
        pod = pods.get(ident.pod_uid) if ident.pod_uid else None
        if is_host:
            name, source = "host", "host"
        elif pod:
            name, source = pod, "pod-log-dir"
        elif ident.pod_uid:
            name, source = f"pod{ident.pod_uid}", "cgroup"
        elif ident.container_id:
            name, source = f"{ident.runtime or 'container'}-{ident.container_id[:12]}", "cgroup"
        elif e.bind_mounts:
            name, source = os.path.basename(e.bind_mounts[0]) or e.bind_mounts[0], "bind-mount"
        elif comm:
            name, source = comm, "comm"
        else:
            name, source = str(e.inode), "inode"
        e.info = NetnsInfo(
            inode=e.inode,
            pids=list(e.pids),
            name=clean_text(name, 253),
            name_source=source,
            pod_uid=ident.pod_uid,
            pod=pod,
            qos_class=ident.qos_class,
            container_id=ident.container_id,
            bind_mounts=[clean_text(b, 500) for b in e.bind_mounts],
            is_host=is_host,
        )


def target_names(enum: Enumeration, hostname: str) -> dict[int, str]:
    """inode -> report target name: the host namespace is the host (its hostname); the others are
    `netns:<name>`, with `@<inode>` added where two namespaces would otherwise share a name."""
    counts: dict[str, int] = {}
    for e in enum.entries:
        assert e.info is not None
        counts[e.info.name] = counts.get(e.info.name, 0) + 1
    out = {}
    for e in enum.entries:
        assert e.info is not None
        if e.info.is_host:
            out[e.inode] = hostname
        elif counts[e.info.name] > 1 or e.info.name == hostname:
            out[e.inode] = f"netns:{e.info.name}@{e.inode}"
        else:
            out[e.inode] = f"netns:{e.info.name}"
    return out


# ---------------------------------------------------------------------------------------------------------
# Entering and reading


def _setns_libc():
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = libc.setns
    fn.argtypes = (ctypes.c_int, ctypes.c_int)
    fn.restype = ctypes.c_int

    def setns(fd: int, nstype: int) -> None:
        if fn(fd, nstype) != 0:
            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code))

    return setns


def setns_function():
    """setns(fd, nstype) for the calling thread: os.setns (Python 3.12+), else libc's through ctypes."""
    return getattr(os, "setns", None) or _setns_libc()


Status = Literal["ok", "partial", "skipped"]


@dataclass
class NetnsCapture:
    """One namespace's outcome: a snapshot (ok, partial) or why there is none (skipped)."""

    entry: NetnsEntry
    status: Status
    snapshot: Snapshot | None = None
    error: str | None = None
    name: str = ""  # the report target's name (target_names)


class _Gone(Exception):
    pass


def _open_entry(entry: NetnsEntry, proc: str) -> int:
    """An fd of this namespace (O_RDONLY on an nsfs file), checked to be the namespace enumerated: a PID can
    exit and be reused in between. Raises _Gone, or PermissionError when every way in was refused."""
    denied = None
    for path in [f"{proc}/{pid}/ns/net" for pid in entry.pids] + entry.openers:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM) and _still_there(path, entry.inode):
                denied = exc
            continue
        if os.fstat(fd).st_ino == entry.inode:
            return fd
        os.close(fd)
    if denied is not None:
        raise PermissionError(denied.errno, f"opening the namespace: {denied.strerror}")
    raise _Gone()


def _still_there(path: str, inode: int) -> bool:
    """Whether `path` still leads to the namespace: `ip netns del` unmounts before it unlinks, leaving for a
    moment the bare mode-0 file `ip netns add` made (EACCES, and another inode): that namespace is gone."""
    try:
        return os.stat(path).st_ino == inode
    except OSError as exc:
        return exc.errno in (errno.EACCES, errno.EPERM)  # /proc/PID/ns/net of a process we may not look at


def _counters_pid(entry: NetnsEntry, proc: str) -> str | None:
    """A /proc/PID/net of a process still in the namespace (checked by inode), for the counters-only mode."""
    for pid in entry.pids:
        try:
            if os.stat(f"{proc}/{pid}/ns/net").st_ino == entry.inode:
                return f"{proc}/{pid}/net"
        except OSError:
            continue
    return None


@dataclass
class _Options:
    proc: str
    detail_cap: int
    table_cap: int
    sockets: str | None
    read_at: dict[int, float] = field(default_factory=dict)  # inode -> when its counters were read (monotonic)


def _sample_one(entry: NetnsEntry, enum: Enumeration, setns, home: int, proc: str) -> CounterSample | None:
    """The first counter sample of `--sample` in one namespace (as _capture_one enters it; None: not readable)."""
    if entry.inode == enum.own_inode:
        return sample_counters(THREAD_PROC_NET)
    try:
        fd = _open_entry(entry, proc)
    except (_Gone, PermissionError):
        fd = None
    if fd is not None:
        try:
            try:
                setns(fd, CLONE_NEWNET)
            except OSError:
                pass
            else:
                try:
                    if os.stat("/proc/thread-self/ns/net").st_ino == entry.inode:
                        return sample_counters(THREAD_PROC_NET)
                finally:
                    setns(home, CLONE_NEWNET)
        finally:
            os.close(fd)
    proc_net = _counters_pid(entry, proc)  # the counters-only mode reads the second sample there too
    return sample_counters(proc_net) if proc_net is not None else None


def _capture_one(entry: NetnsEntry, enum: Enumeration, setns, home: int, o: _Options):
    """-> ("ok" | "partial" | "skipped", RawCapture | None, error). Runs in the worker thread."""
    scope = "host" if entry.inode == enum.host_inode else "netns"
    if entry.inode == enum.own_inode:  # already here: no setns needed (nor CAP_SYS_ADMIN)
        o.read_at[entry.inode] = time.monotonic()
        raw = capture_local(
            o.detail_cap, table_cap=o.table_cap, sockets=o.sockets, proc_net=THREAD_PROC_NET, scope=scope
        )
        return "ok", raw, None
    try:
        fd = _open_entry(entry, o.proc)
    except _Gone:
        return "skipped", None, "gone"
    except PermissionError as exc:
        return _degraded(entry, o, scope, f"permission denied ({exc.strerror})")
    try:
        try:
            setns(fd, CLONE_NEWNET)
        except OSError as exc:
            if exc.errno in (errno.EPERM, errno.EACCES):
                return _degraded(entry, o, scope, "setns: permission denied (entering needs CAP_SYS_ADMIN)")
            if exc.errno == errno.EINVAL:
                return "skipped", None, "gone"
            return "skipped", None, f"setns: {exc.strerror or exc}"
        try:
            if os.stat("/proc/thread-self/ns/net").st_ino != entry.inode:
                return "skipped", None, "setns did not move the reader into the namespace"
            o.read_at[entry.inode] = time.monotonic()
            raw = capture_local(
                o.detail_cap, table_cap=o.table_cap, sockets=o.sockets, proc_net=THREAD_PROC_NET, scope=scope
            )
        finally:
            setns(home, CLONE_NEWNET)
        return "ok", raw, None
    finally:
        os.close(fd)


def _degraded(entry: NetnsEntry, o: _Options, scope: str, why: str):
    proc_net = _counters_pid(entry, o.proc)
    if proc_net is None:
        if not entry.pids and not entry.openers:
            return "skipped", None, "gone"
        return "skipped", None, f"{why}; no process in it whose /proc/PID/net could be read either"
    o.read_at[entry.inode] = time.monotonic()
    raw = capture_local(scope="counters", proc_net=proc_net)
    raw.gap(
        "sysctl:net",
        GapReason.permission_denied,
        f"{why}: only the counters and the /proc socket table were read, from {proc_net}; "
        "its sysctls, idle times and NAT rules are unknown",
    )
    if scope == "host":
        _capture_host_items(raw)
    return "partial", raw, None


def _capture_host_items(raw: RawCapture) -> None:
    for item, path in FILES.items():
        if item not in PER_NETNS_FILES:
            text = _read_text(path, 1 << 20)
            if text is not None:
                raw.items[item] = text


def _fill_host_items(raw: RawCapture, host: RawCapture) -> None:
    for item in FILES:
        if item not in PER_NETNS_FILES and item in host.items and item != "cgroup":
            raw.items.setdefault(item, host.items[item])
    if "os-release" in host.items:
        raw.items.setdefault("os-release", host.items["os-release"])


def host_global_candidates(host: Snapshot) -> list[tuple[str, str]]:
    """The host's sysctls that may be global (outside the per-device trees, not a count): computed once per
    sweep, not once per namespace."""
    return [(k, v) for k, v in host.sysctls.items() if not k.startswith(_PER_DEVICE) and k not in _NEVER_FROM_HOST]


def namespace_snapshot(
    raw: RawCapture,
    host_raw: RawCapture,
    host: Snapshot,
    entry: NetnsEntry,
    proc: str | None,
    candidates: list[tuple[str, str]] | None = None,
) -> Snapshot:
    """A non-host namespace's Snapshot: its own sysctls, sockets and counters; the host-wide facts (kernel,
    hostname, distro, global sysctls) from the host; init_net_sysctls for the rules that compare the two.
    `candidates`: host_global_candidates(host), when the caller has it."""
    _fill_host_items(raw, host_raw)
    for pid in entry.pids[:1] if proc is not None else ():  # None: raw["cgroup"] is already the remote one
        cg = _read_text(f"{proc}/{pid}/cgroup", 65536)
        if cg is not None:
            raw.items["cgroup"] = cg  # the environment (kubernetes, container) of the namespace's processes
    own = dict(raw.sysctls)
    if raw.sysctl_roots:
        # Keys the host has and the namespace does not show, outside the per-device trees, are global
        # sysctls (registered for the initial namespace only); their value governs here too.
        merged = 0
        for key, value in host_global_candidates(host) if candidates is None else candidates:
            if key not in own:
                raw.sysctls[key] = value
                merged += 1
        for root in host.sysctl_roots:
            if root not in raw.sysctl_roots:
                raw.sysctl_roots.append(root)
    snap = build_snapshot(raw)
    if raw.sysctl_roots and merged:
        snap.environment.hints.append(
            f"{merged} global sysctl(s), not kept per network namespace, read in the host namespace"
        )
    host_sysctls = host.sysctls
    snap.init_net_sysctls = {k: host_sysctls[k] for k in own if k in host_sysctls}
    snap.netns = entry.info
    return snap


def _set_previous(snap: Snapshot, first: tuple[CounterSample, float] | None, read_at: float | None) -> None:
    if first is not None and read_at is not None:
        sample, t0 = first
        sample.interval_s = read_at - t0
        snap.previous = sample


def collect_all_netns(
    enum: Enumeration | None = None,
    detail_cap: int = DEFAULT_DETAIL_CAP,
    table_cap: int = DEFAULT_TABLE_CAP,
    sockets: str | None = None,
    proc: str = "/proc",
    pod_log_dir: str = POD_LOG_DIR,
    setns=None,
    sample_s: float = 0.0,
) -> Iterator[NetnsCapture]:
    """Every namespace of `enum` (default: enumerate now), the host's first, one NetnsCapture each, as they
    are read: a caller that audits and drops each snapshot keeps memory flat in the number of namespaces.

    sample_s > 0 (`--sample`): the counters of every namespace are read once first, then the worker sleeps
    sample_s once for all of them, then the sweep reads each namespace as usual; each snapshot's `previous`
    is its first sample, its interval the time between that namespace's two readings (sample_s plus the
    sweep's progress up to it).

    The reading happens in one worker thread; results pass through a short queue."""
    if enum is None:
        enum = enumerate_netns(proc)
    if enum.entries and enum.entries[0].info is None:
        name_entries(enum, proc, pod_log_dir)
    setns = setns or setns_function()
    opts = _Options(proc, detail_cap, table_cap, sockets)
    results: queue.Queue = queue.Queue(maxsize=2)
    stop = threading.Event()
    firsts: dict[int, tuple[CounterSample, float]] = {}

    def work() -> None:
        try:
            home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            results.put(NetnsUnavailable(f"/proc/thread-self/ns/net: {exc.strerror or exc}"))
            return
        try:
            if sample_s > 0:
                for entry in enum.entries:
                    if stop.is_set():
                        return
                    try:
                        first = _sample_one(entry, enum, setns, home, proc)
                    except Exception:  # noqa: BLE001 - no first sample: that namespace gets no rates
                        first = None
                    if first is not None:
                        firsts[entry.inode] = (first, time.monotonic())
                if stop.wait(sample_s):  # one sleep for every namespace; Ctrl-C ends it at once
                    return
            for entry in enum.entries:
                if stop.is_set():
                    return
                try:
                    out = _capture_one(entry, enum, setns, home, opts)
                except Exception as exc:  # noqa: BLE001 - one namespace never sinks the sweep
                    out = ("skipped", None, f"error: {type(exc).__name__}: {exc}")
                results.put((entry, out))
        finally:
            os.close(home)
            results.put(None)

    worker = threading.Thread(target=work, name="tcpaudit-netns", daemon=True)
    worker.start()
    host_raw: RawCapture | None = None
    host_snap: Snapshot | None = None
    names: dict[int, str] = {}
    candidates: tuple[Snapshot, list[tuple[str, str]]] | None = None
    try:
        while True:
            item = results.get()
            if item is None:
                break
            if isinstance(item, Exception):
                raise item
            entry, (status, raw, error) = item
            if entry.inode == enum.host_inode and raw is not None:
                host_raw = raw
                host_snap = build_snapshot(raw)
                host_snap.netns = entry.info
            if not names:  # the host comes first: its hostname names the host target
                hostname = host_snap.hostname if host_snap is not None else None
                if not hostname or hostname == "unknown":
                    import socket

                    hostname = clean_text(socket.gethostname(), 253) or "localhost"
                names = target_names(enum, hostname)
            name = names[entry.inode]
            snap_first = firsts.pop(entry.inode, None)
            if raw is None:
                yield NetnsCapture(entry, status, None, clean_text(error or "", 500), name)
            elif entry.inode == enum.host_inode:
                assert host_snap is not None
                _set_previous(host_snap, snap_first, opts.read_at.get(entry.inode))
                yield NetnsCapture(entry, status, host_snap, name=name)
            else:
                if host_raw is None or host_snap is None:  # the host namespace could not be read: nothing to lend
                    host_raw = RawCapture(source=raw.source, collected_at=raw.collected_at)
                    host_snap = build_snapshot(RawCapture(source=raw.source, collected_at=raw.collected_at))
                if candidates is None or candidates[0] is not host_snap:
                    candidates = (host_snap, host_global_candidates(host_snap))
                snap = namespace_snapshot(raw, host_raw, host_snap, entry, proc, candidates[1])
                _set_previous(snap, snap_first, opts.read_at.get(entry.inode))
                yield NetnsCapture(entry, status, snap, name=name)
    finally:
        stop.set()
        while worker.is_alive():
            try:
                results.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
