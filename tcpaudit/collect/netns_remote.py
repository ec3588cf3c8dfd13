"""Every network namespace of a remote host (`tcpaudit host user@H --all-netns`, `tcpaudit fleet --all-netns`).

The collector (collector.sh, run as `sh -s all-netns`) prints the ordinary dump - the namespace of the SSH
session plus the host-wide facts - and after its `@@tcpaudit-done` the namespace part (its format is described
in collector.sh): the raw enumeration (every /proc/PID/ns/net as "PID INODE", the nsfs lines of mountinfo,
/proc/2/status, the pod log directory, each namespace's first process's cgroup and comm) and, per namespace
other than its own, an ordinary dump read under `nsenter --net=...`, framed with the namespace's inode and
checked (readlink of /proc/self/ns/net under nsenter, before and after) to be that namespace.

Here that raw data goes through the local path's own code (tcpaudit/collect/netns.py): nsfs_mounts,
name_entries (cgroup paths, pod log directories, bind-mount names, comm), target_names, namespace_snapshot.
So a remote namespace becomes exactly the target a local `--all-netns` makes of it. Everything the host sent
is untrusted: the namespace part is validated line by line (fixed markers and item names, numbers that are
numbers, bounded counts) and any other line is a DumpError; each namespace's dump goes through the same
parse_frames as any dump, and a bad one skips that namespace only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from ..sanitize import clean_text
from ..snapshot import GapReason, Snapshot, Source
from .build import build_snapshot
from .dump import HEADER, DumpError, raw_from_dump
from .local import PER_NETNS_FILES
from .netns import (
    Enumeration,
    NetnsCapture,
    NetnsEntry,
    name_entries,
    namespace_snapshot,
    nsfs_mounts,
    pod_names_from,
    target_names,
)
from .raw import RawCapture

PART_HEADER = "@@tcpaudit-netns 1"
MAX_NAMESPACES = 100_000
MAX_PIDS = 4_000_000
# Items of the ordinary dump that belong to the namespace they were read in; every other item is host-wide.
NETNS_ITEMS = frozenset(
    {*PER_NETNS_FILES, "ss", "ss-detail", "proc-net-tcp", "proc-net-tcp6", "iptables-nat", "sysctls"}
)

_FRAME_RE = re.compile(r"netns\.(uname|self|pid2|pids|mountinfo|mountinfo1|pods|entered|left|(cgroup|comm)\.\d{1,10})")
_GAP_ITEMS = frozenset({"netns.self", "netns.nsenter", "netns.mount"})
_ENTER_RE = re.compile(r"(\d{1,20}) (pid (\d{1,10})|mount (/[A-Za-z0-9._@:+/-]{0,4000}))")
_INODE_LINK_RE = re.compile(r"net:\[(\d{1,20})\]")
_PID_LINE_RE = re.compile(r"(\d{1,10}) (\d{1,20}|-)")
_DONE = "\n@@tcpaudit-done\n"
_MOUNT_GAP_RE = re.compile(r"namespace (\d{1,20}): ")
# kubelet's /var/log/pods/<namespace>_<name>_<uid>: a DNS label, a DNS subdomain and a UID; a remote listing
# is kept to that shape (anything else names no pod).
_POD_DIR_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,62})_[a-z0-9]([a-z0-9.-]{0,252})_[0-9a-fA-F-]{8,64}")


@dataclass
class _Frame:
    content: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    rc: int = 0


@dataclass
class _Section:
    """One namespace the collector entered: how, whether it really was that namespace, and its dump."""

    inode: int
    how: str  # "pid N" or "mount PATH"
    entered: _Frame | None = None
    left: _Frame | None = None
    dump: tuple[int, int] | None = None  # offsets of its ordinary dump in the part's text
    closed: bool = False


@dataclass
class NetnsPart:
    text: str
    frames: dict[str, _Frame] = field(default_factory=dict)
    gaps: dict[str, tuple[str, str]] = field(default_factory=dict)  # item -> (reason, detail), first of each
    sections: dict[int, _Section] = field(default_factory=dict)
    mount_gaps: dict[int, str] = field(default_factory=dict)  # inode -> why its bind mount was not used
    done: bool = False
    cut: bool = False  # stopped (command timeout) before it was done


def split_dump(data: bytes) -> tuple[bytes, str | None]:
    """(the ordinary dump, the namespace part's text or None when the collector sent none)."""
    end = data.find(_DONE.encode())
    if end < 0:
        return data, None
    end += len(_DONE)
    rest = data[end:]
    if not rest.strip():
        return data[:end], None
    return data[:end], rest.decode("utf-8", "replace")


def _snip(line: str) -> str:
    return repr(clean_text(line, 60))


def parse_part(text: str, cut_short: bool = False) -> NetnsPart:
    """Validate the namespace part; DumpError names the first line that is not what the collector prints.
    cut_short: the collector was stopped (command timeout): what is complete is kept, the rest dropped."""
    if cut_short:
        text = text[: text.rfind("\n") + 1]
    part = NetnsPart(text)
    pos = 0
    n = len(text)
    cur: tuple[str, _Frame] | None = None
    in_stderr = False
    sec: _Section | None = None
    first = True
    lineno = 0
    while pos < n:
        nl = text.find("\n", pos)
        if nl < 0:
            nl = n
        line = text[pos:nl]
        start = pos
        pos = nl + 1
        lineno += 1
        if not line:
            continue
        if first:
            if line != PART_HEADER:
                raise DumpError(f"namespace part, line {lineno}: expected {PART_HEADER!r}, got {_snip(line)}")
            first = False
            continue
        if line.startswith("|"):
            if cur is None:
                raise DumpError(f"namespace part, line {lineno}: content outside an item")
            (cur[1].stderr if in_stderr else cur[1].content).append(line[1:])
            continue
        if part.done:
            raise DumpError(f"namespace part, line {lineno}: {_snip(line)} after @@tcpaudit-netns-done")
        kind, _, arg = line.partition(" ")
        if cur is not None and kind not in ("@@tcpaudit-stderr", "@@tcpaudit-end"):
            raise DumpError(f"namespace part, line {lineno}: item {cur[0]} is not closed")
        if kind == "@@tcpaudit-begin":
            if not _FRAME_RE.fullmatch(arg):
                raise DumpError(f"namespace part, line {lineno}: unknown item {_snip(arg)}")
            if arg in ("netns.entered", "netns.left"):
                if sec is None or (arg == "netns.entered") != (sec.entered is None) or sec.left is not None:
                    raise DumpError(f"namespace part, line {lineno}: {arg} out of place")
            elif sec is not None:
                raise DumpError(f"namespace part, line {lineno}: {arg} inside namespace {sec.inode}")
            elif arg in part.frames:
                raise DumpError(f"namespace part, line {lineno}: item {arg} appears twice")
            cur = (arg, _Frame())
            in_stderr = False
        elif kind == "@@tcpaudit-stderr":
            if cur is None or arg != cur[0] or in_stderr:
                raise DumpError(f"namespace part, line {lineno}: stray stderr marker")
            in_stderr = True
        elif kind == "@@tcpaudit-end":
            name, _, rc = arg.partition(" rc=")
            if cur is None or name != cur[0] or not rc.isdigit() or len(rc) > 3:
                raise DumpError(f"namespace part, line {lineno}: end marker {_snip(arg)} does not close the open item")
            cur[1].rc = int(rc)
            if sec is not None and name == "netns.entered":
                sec.entered = cur[1]
            elif sec is not None and name == "netns.left":
                sec.left = cur[1]
            else:
                part.frames[name] = cur[1]
            cur = None
        elif kind == "@@tcpaudit-gap":
            item, _, rest = arg.partition(" ")
            reason, _, detail = rest.partition(" ")
            if item not in _GAP_ITEMS or reason not in GapReason.__members__:
                raise DumpError(f"namespace part, line {lineno}: bad gap marker {_snip(arg)}")
            part.gaps.setdefault(item, (reason, clean_text(detail, 300)))
            m = _MOUNT_GAP_RE.match(detail)
            if item == "netns.mount" and m and len(part.mount_gaps) < MAX_NAMESPACES:
                part.mount_gaps[int(m.group(1))] = clean_text(detail, 300)
        elif kind == "@@tcpaudit-netns-enter":
            m = _ENTER_RE.fullmatch(arg)
            if sec is not None or m is None:
                raise DumpError(f"namespace part, line {lineno}: bad namespace marker {_snip(arg)}")
            inode = int(m.group(1))
            if inode in part.sections:
                raise DumpError(f"namespace part, line {lineno}: namespace {inode} appears twice")
            if len(part.sections) >= MAX_NAMESPACES:
                raise DumpError(f"namespace part: more than {MAX_NAMESPACES} namespaces")
            sec = part.sections[inode] = _Section(inode, m.group(2))
        elif line == HEADER.strip() + " 1":
            if sec is None or sec.entered is None or sec.dump is not None:
                raise DumpError(f"namespace part, line {lineno}: a dump outside a namespace")
            end = text.find(_DONE, start)
            if end < 0:
                if cut_short:
                    break
                raise DumpError(f"namespace {sec.inode}: its dump is cut short")
            sec.dump = (start, end + len(_DONE))
            lineno += text.count("\n", start, end + len(_DONE)) - 1
            pos = end + len(_DONE)
        elif kind == "@@tcpaudit-netns-exit":
            if sec is None or arg != str(sec.inode):
                raise DumpError(f"namespace part, line {lineno}: exit marker {_snip(arg)} out of place")
            sec.closed = True
            sec = None
        elif line == "@@tcpaudit-netns-done":
            if sec is not None:
                raise DumpError(f"namespace part, line {lineno}: namespace {sec.inode} is not closed")
            part.done = True
        else:
            raise DumpError(f"namespace part, line {lineno}: not a collector line: {_snip(line)}")
    if first:
        raise DumpError("namespace part: no header")
    if not part.done:
        if not cut_short:
            raise DumpError("namespace part cut short (no @@tcpaudit-netns-done)")
        if "netns.pids" not in part.frames:
            raise DumpError("the collector was stopped before it had listed the namespaces")
        if sec is not None and not sec.closed:
            del part.sections[sec.inode]  # the one it was reading when stopped
        part.cut = True
    return part


def _inode_of(frame: _Frame | None) -> int | None:
    if frame is None or frame.rc != 0:
        return None
    m = _INODE_LINK_RE.fullmatch("".join(frame.content).strip())
    return int(m.group(1)) if m else None


def _text(frame: _Frame | None) -> str | None:
    if frame is None or frame.rc != 0:
        return None
    return "\n".join(frame.content) + "\n"


@dataclass
class RemoteNetns:
    """What a remote host's collector said about its namespaces; `captures` turns it into NetnsCaptures."""

    main: RawCapture  # the SSH session's namespace (and the host-wide facts)
    part: NetnsPart | None
    enum: Enumeration | None = None
    unavailable: str | None = None  # why no namespace could be enumerated (the host is audited alone)
    not_entered: str | None = None  # why the namespaces were listed but not entered (no nsenter, not root)
    cut_short: str | None = None  # why the collector stopped before every namespace was read
    files: dict[str, str] = field(default_factory=dict)  # "/proc/PID/cgroup" and "/proc/PID/comm" -> text

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = dict(self.enum.summary()) if self.enum is not None else {"namespaces": 0}
        out["entered_with"] = None if self.not_entered or self.unavailable else "nsenter"
        if self.unavailable:
            out["unavailable"] = self.unavailable
        if self.not_entered:
            out["not_entered"] = self.not_entered
        if self.cut_short:
            out["cut_short"] = self.cut_short
            out["read"] = len(self.part.sections) if self.part is not None else 0
        return out

    def captures(self, hostname: str, prefix: str = "") -> Iterator[NetnsCapture]:
        """One NetnsCapture per namespace, the host's first, named as the local path names them (the host
        namespace `hostname`, the others `netns:<name>`), each name after `prefix` (the fleet's `HOST/`)."""
        enum = self.enum
        if enum is None:
            raise ValueError("no namespaces were enumerated (see .unavailable)")
        names = target_names(enum, hostname)
        host_entry = enum.entries[0]
        host_raw, host_error = self._raw_of(host_entry)
        if host_raw is not None and host_entry.inode != enum.own_inode:
            for item, text in self.main.items.items():
                if item not in NETNS_ITEMS:
                    host_raw.items.setdefault(item, text)
        if host_raw is not None and self.not_entered:
            host_raw.gap("netns", GapReason.missing, self.not_entered)
        if host_raw is not None and self.cut_short:
            host_raw.gap("netns", GapReason.truncated, f"{self.cut_short}: not every namespace was read")
        host_snap: Snapshot | None = None
        if host_raw is not None:
            host_snap = build_snapshot(host_raw)
            host_snap.netns = host_entry.info
        lend_raw = host_raw or RawCapture(source=Source.ssh, collected_at=self.main.collected_at)
        lend_snap = host_snap or build_snapshot(RawCapture(source=Source.ssh, collected_at=self.main.collected_at))
        for e in enum.entries:
            name = prefix + names[e.inode] if e is not host_entry else names[e.inode]
            if e is host_entry:
                if host_snap is None:
                    yield NetnsCapture(e, "skipped", None, host_error, name)
                else:
                    yield NetnsCapture(e, "ok", host_snap, name=name)
                continue
            raw, error = self._raw_of(e)
            if raw is None:
                yield NetnsCapture(e, "skipped", None, error, name)
                continue
            cg = self.files.get(f"/proc/{e.pids[0]}/cgroup") if e.pids else None
            if cg is not None:
                raw.items["cgroup"] = cg
            try:
                snap = namespace_snapshot(raw, lend_raw, lend_snap, e, None)
            except Exception as exc:  # noqa: BLE001 - one namespace never sinks the host
                yield NetnsCapture(e, "skipped", None, clean_text(f"error: {type(exc).__name__}: {exc}", 500), name)
                continue
            yield NetnsCapture(e, "ok", snap, name=name)

    def _raw_of(self, e: NetnsEntry) -> tuple[RawCapture | None, str | None]:
        """The namespace's RawCapture, or why there is none."""
        assert self.enum is not None and self.part is not None
        if e.inode == self.enum.own_inode:
            return self.main, None
        sec = self.part.sections.get(e.inode)
        if sec is None:
            if self.not_entered:
                return None, f"not entered: {self.not_entered}"
            if self.cut_short:
                return None, f"not read: {self.cut_short} before this namespace"
            mount = self.part.mount_gaps.get(e.inode)
            if mount is not None:
                return None, f"not entered: {mount}"
            # Listed, but no longer there when the collector came to enter it (a bind mount removed meanwhile).
            return None, "gone"
        if sec.entered is not None and sec.entered.rc != 0:
            last = next((ln for ln in reversed(sec.entered.stderr) if ln.strip()), "")
            low = last.lower()
            if "no such file" in low or "invalid argument" in low or "no such process" in low:
                return None, "gone"
            if "permission denied" in low or "not permitted" in low:
                return None, clean_text(f"nsenter: permission denied ({last})", 500)
            return None, clean_text(f"nsenter failed: {last or f'exit {sec.entered.rc}'}", 500)
        if _inode_of(sec.entered) != e.inode:
            return None, "gone"  # the PID now belongs to another namespace: the enumerated one ended
        if sec.dump is None or _inode_of(sec.left) != e.inode:
            return None, "gone"  # ended while it was being read
        start, end = sec.dump
        try:
            return raw_from_dump(self.part.text[start:end].encode(), Source.ssh), None
        except DumpError as exc:
            return None, clean_text(f"bad collector output for this namespace: {exc}", 500)


def remote_netns(data: bytes, cut_short: str | None = None) -> RemoteNetns:
    """Parse an `all-netns` collector dump. Raises DumpError for a malformed dump (the host is bad_output).
    cut_short: why the output ends early (the command timeout); the namespaces read until then are kept."""
    main_bytes, text = split_dump(data)
    main = raw_from_dump(main_bytes, Source.ssh)
    if text is None:
        return RemoteNetns(main, None, unavailable="the collector sent no namespace part (an older collector?)")
    part = parse_part(text, cut_short=cut_short is not None)
    out = RemoteNetns(main, part, cut_short=cut_short if part.cut else None)
    uname = _text(part.frames.get("netns.uname"))
    own = _inode_of(part.frames.get("netns.self"))
    if own is None:
        gap = part.gaps.get("netns.self")
        why = gap[1] if gap else "/proc/self/ns/net could not be read"
        if uname is not None and uname.strip() and uname.strip() != "Linux":
            why = f"not Linux (uname -s: {clean_text(uname.strip(), 40)})"
        out.unavailable = why
        return out
    pids: dict[int, int | None] = {}
    pid_frame = part.frames.get("netns.pids")
    for line in pid_frame.content if pid_frame is not None else []:
        m = _PID_LINE_RE.fullmatch(line)
        if m is None:
            if line:
                raise DumpError(f"namespace part: bad netns.pids line {_snip(line)}")
            continue
        if len(pids) >= MAX_PIDS:
            raise DumpError(f"namespace part: more than {MAX_PIDS} processes")
        pids[int(m.group(1))] = None if m.group(2) == "-" else int(m.group(2))
    if pids.get(1) is not None:
        host_inode, host_from = pids[1], "pid 1"
    else:
        status = _text(part.frames.get("netns.pid2")) or ""
        if status.startswith("Name:\tkthreadd") and "\nPPid:\t0\n" in status and pids.get(2) is not None:
            host_inode, host_from = pids[2], "kthreadd"
        else:
            host_inode, host_from = own, "self"
    assert host_inode is not None
    by_inode: dict[int, NetnsEntry] = {}
    for pid in sorted(pids):
        ino = pids[pid]
        if ino is not None:
            by_inode.setdefault(ino, NetnsEntry(ino)).pids.append(pid)
    for item in ("netns.mountinfo", "netns.mountinfo1"):
        for ino, point in nsfs_mounts(_text(part.frames.get(item)) or ""):
            entry = by_inode.setdefault(ino, NetnsEntry(ino))
            if point not in entry.bind_mounts:
                entry.bind_mounts.append(point)
    for ino in (host_inode, own):
        by_inode.setdefault(ino, NetnsEntry(ino))
    if len(by_inode) > MAX_NAMESPACES:
        raise DumpError(f"namespace part: more than {MAX_NAMESPACES} namespaces")
    entries = sorted(by_inode.values(), key=lambda e: (e.inode != host_inode, e.inode))
    unreadable = sum(1 for v in pids.values() if v is None)
    out.enum = Enumeration(host_inode, host_from, own, entries, len(pids), unreadable)
    for name, frame in part.frames.items():
        kind, _, pid_text = name[len("netns.") :].partition(".")
        if kind in ("cgroup", "comm") and frame.rc == 0:
            out.files[f"/proc/{pid_text}/{kind}"] = "\n".join(frame.content) + "\n"
    pods_text = _text(part.frames.get("netns.pods")) or ""
    name_entries(
        out.enum,
        read=lambda path, limit: out.files.get(path),
        pods=pod_names_from(ln for ln in pods_text.splitlines() if _POD_DIR_RE.fullmatch(ln)),
    )
    gap = part.gaps.get("netns.nsenter")
    if gap is not None:
        out.not_entered = gap[1]
    return out
