"""Collector dumps: the framed text the shell collector prints (`tcpaudit collector-script`).

The same reader serves `tcpaudit audit dump.txt` (Source.file) and the SSH collector (Source.ssh), and
it turns a dump into exactly the RawCapture the local collector would have built on that host, so both
give the same Snapshot and the same findings.

Format (written by collector.sh; a marker line starts with "@@tcpaudit-", a content line with "|"):

    @@tcpaudit-collector 1
    @@tcpaudit-begin ITEM
    |content
    @@tcpaudit-stderr ITEM          (optional)
    |stderr
    @@tcpaudit-end ITEM rc=N
    @@tcpaudit-gap ITEM REASON DETAIL
    @@tcpaudit-done

Everything a host sends is untrusted: the input is bounded (bytes, lines, line length), every line must
be a marker or content, frames must nest and close, item names and gap reasons come from a fixed set, and
anything else is a DumpError that says which line is wrong. Empty lines are separators and ignored.
"""

from __future__ import annotations

import datetime as _dt
import re
from importlib import resources

from ..sanitize import clean_text
from ..snapshot import GapReason, Snapshot, Source
from .build import build_snapshot
from .local import DEFAULT_DETAIL_CAP, FILES, MARKERS, OPTIONAL
from .parsers import sysctl_path_to_name
from .persisted import INDEX_ITEM, ITEM_RE, MAX_FILES, MAX_LINES
from .raw import SYSCTL_ROOTS, RawCapture, is_secret_sysctl

FORMAT_VERSION = "1"
HEADER = "@@tcpaudit-collector "
MAX_DUMP_BYTES = 192 << 20
MAX_DUMP_LINES = 2_000_000
MAX_LINE_CHARS = 64 << 10
# Shell start-up files may print before the collector runs (`.bashrc` noise); tolerate a little of it.
MAX_PREAMBLE_BYTES = 16 << 10
MAX_PREAMBLE_LINES = 100

# Caps applied by collector.sh (`head -n CAP+1`): one line more than the cap means "there was more".
SS_CAP = 200_000
DETAIL_LINES = 2 * DEFAULT_DETAIL_CAP + 2  # the local collector's limit for `ss -tinH` (header + info per socket)
PROC_TCP_CAP = SS_CAP + 1  # header line + sockets
CAPS = {"ss": SS_CAP, "ss-detail": DETAIL_LINES, "proc-net-tcp": PROC_TCP_CAP, "proc-net-tcp6": PROC_TCP_CAP}

COMMANDS = {
    "ss": "ss -tanoeH",
    "ss-detail": "ss -tinH state established",
    "iptables-nat": "iptables-save -t nat",
    "sysctls": "grep -r ''",
}
ITEMS = frozenset(
    {
        *FILES,
        *MARKERS,
        "os-release",
        "env.kubernetes",
        "ss",
        "ss-detail",
        "proc-net-tcp",
        "proc-net-tcp6",
        "iptables-nat",
        "sysctls",
        INDEX_ITEM,
    }
)
# Items whose absence is normal on some hosts: the local collector records no gap for them either.
QUIET_WHEN_MISSING = frozenset({*OPTIONAL, "proc-net-tcp6", "sysctl:net.netfilter"})
# Write-only sysctls (mode 0200): no setting to read; the local collector skips them the same way.
WRITE_ONLY_SYSCTLS = frozenset({"net.ipv4.route.flush", "net.ipv6.route.flush"})

_MARKER_RE = re.compile(r"^@@tcpaudit-([a-z]+)(?: ([^\n]*))?$", re.M)
_BAD_LINE_RE = re.compile(r"^[^|\n]", re.M)
_CONTENT_RE = re.compile(r"^\|([^\n]*)$", re.M)
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._:-]{0,63}")
_END_RE = re.compile(r"([a-z0-9][a-z0-9._:-]{0,63}) rc=(\d{1,3})")
_CAT_ERR_RE = re.compile(r"^cat: (?:can't open '(.*)'|(.*?)): ([^:]*)$")
_GREP_ERR_RE = re.compile(r"^grep: (/proc/sys/[^:]*): (.*)$")


def _persisted_item(name: str) -> bool:
    """sysctl-conf.N: the content of persisted-config candidate N (1..MAX_FILES), see tcpaudit/collect/persisted.py."""
    m = ITEM_RE.fullmatch(name)
    return m is not None and int(m.group(1)) <= MAX_FILES


class DumpError(ValueError):
    """The input is not a (complete, well-formed) collector dump; the message says what is wrong."""


def collector_script() -> str:
    """The shell collector, exactly as shipped (package data)."""
    return resources.files("tcpaudit.collect").joinpath("collector.sh").read_text(encoding="utf-8")


def _header_at(data: bytes) -> int:
    """Offset of the header line within the preamble window, or -1."""
    window = data[: MAX_PREAMBLE_BYTES + 64]
    if window.startswith(HEADER.encode()):
        return 0
    i = window.find(b"\n" + HEADER.encode())
    if i < 0 or window.count(b"\n", 0, i) >= MAX_PREAMBLE_LINES:
        return -1
    return i + 1


def looks_like_dump(data: bytes) -> bool:
    return _header_at(data) >= 0


class DumpReader:
    """Bounds checks for a dump that arrives in chunks (over SSH), so garbage is refused early.

    `feed` raises DumpError as soon as the stream is too large, a line is too long, or no collector
    header appeared within the first few KiB (a command printing junk, `yes`, `cat /dev/zero`).
    """

    def __init__(self, max_bytes: int = MAX_DUMP_BYTES, max_line: int = MAX_LINE_CHARS):
        self.max_bytes = max_bytes
        self.max_line = max_line
        self.chunks: list[bytes] = []
        self.size = 0
        self._line = 0  # length of the current (unterminated) line
        self._header = False
        self._head = b""

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise DumpError(f"output larger than {self.max_bytes} bytes")
        nl = chunk.rfind(b"\n")
        if nl < 0:
            self._line += len(chunk)
        else:
            first = chunk.find(b"\n")
            longest = max(self._line + first, _longest_line(chunk, first, nl))
            if longest > self.max_line:
                raise DumpError(f"a line longer than {self.max_line} bytes: not a collector dump")
            self._line = len(chunk) - nl - 1
        if self._line > self.max_line:
            raise DumpError(f"a line longer than {self.max_line} bytes: not a collector dump")
        self.chunks.append(chunk)
        if not self._header:
            self._head += chunk
            if _header_at(self._head) >= 0:
                self._header = True
                self._head = b""
            elif len(self._head) > MAX_PREAMBLE_BYTES or self._head.count(b"\n") > MAX_PREAMBLE_LINES:
                raise DumpError(f"no collector header; output starts with {_snippet(self._head)}")

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _longest_line(chunk: bytes, first: int, last: int) -> int:
    if first == last:
        return 0
    return max(map(len, chunk[first + 1 : last].split(b"\n")))


def _snippet(data: bytes | str, n: int = 60) -> str:
    # bytes that are not UTF-8 are shown as \xNN (what they are), not as U+FFFD
    text = data[: 4 * n].decode("utf-8", "backslashreplace") if isinstance(data, bytes) else data
    return '"' + clean_text(text.lstrip()[:n]) + '"'


def _line_no(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


class _Frame:
    __slots__ = ("name", "content", "stderr", "rc")

    def __init__(self, name: str):
        self.name = name
        self.content: list[str] = []
        self.stderr: list[str] = []
        self.rc = 0


def _lines_of(text: str, start: int, end: int) -> list[str]:
    """Content lines of text[start:end] with the '|' removed; anything but content or blank is an error."""
    if start >= end:
        return []
    bad = _BAD_LINE_RE.search(text, start, end)
    if bad:
        pos = bad.start()
        line = text[pos : text.find("\n", pos) if text.find("\n", pos) >= 0 else len(text)]
        raise DumpError(f"line {_line_no(text, pos)}: not a collector line: {_snippet(line)}")
    return _CONTENT_RE.findall(text, start, end)


def parse_frames(data: bytes) -> tuple[list[_Frame], list[tuple[str, str, str]]]:
    """Validate a dump and split it into item frames and gap markers (item, reason, detail)."""
    if len(data) > MAX_DUMP_BYTES:
        raise DumpError(f"larger than {MAX_DUMP_BYTES >> 20} MiB")
    start = _header_at(data)
    if start < 0:
        raise DumpError(f"no '{HEADER.strip()}' header: not a collector dump (starts with {_snippet(data)})")
    if b"\r\n" in data[start : start + 64]:
        data = data.replace(b"\r\n", b"\n")
    text = data.decode("utf-8", "replace")
    if text.count("\n") > MAX_DUMP_LINES:
        raise DumpError(f"more than {MAX_DUMP_LINES} lines")
    longest = max(map(len, text.split("\n")))
    if longest > MAX_LINE_CHARS:
        raise DumpError(f"a line of {longest} characters (limit {MAX_LINE_CHARS}): not a collector dump")
    frames: list[_Frame] = []
    gaps: list[tuple[str, str, str]] = []
    seen: set[str] = set()
    cur: _Frame | None = None
    in_stderr = False
    done = False
    pos = start
    first = True
    for m in _MARKER_RE.finditer(text, start):
        body = _lines_of(text, pos, m.start())
        pos = m.end()
        kind, arg = m.group(1), m.group(2) or ""
        if first:
            first = False
            if kind != "collector":
                raise DumpError("the header must come first")
            if arg != FORMAT_VERSION:
                raise DumpError(
                    f"collector dump format {clean_text(arg, 20)!r}; this tcpaudit reads "
                    f"format {FORMAT_VERSION} (use the collector-script of this version)"
                )
            continue
        if body:
            if cur is None:
                raise DumpError(f"line {_line_no(text, m.start()) - 1}: content outside an item")
            (cur.stderr if in_stderr else cur.content).extend(body)

        def where(m: re.Match[str] = m) -> str:
            return f"line {_line_no(text, m.start())}"

        if kind == "begin":
            if cur is not None:
                raise DumpError(f"{where()}: item {cur.name!r} is not closed before the next one")
            if not _NAME_RE.fullmatch(arg) or (arg not in ITEMS and not _persisted_item(arg)):
                raise DumpError(f"{where()}: unknown item {_snippet(arg)}")
            if arg in seen:
                raise DumpError(f"{where()}: item {arg!r} appears twice")
            seen.add(arg)
            cur = _Frame(arg)
            in_stderr = False
        elif kind == "stderr":
            if cur is None or arg != cur.name or in_stderr:
                raise DumpError(f"{where()}: stray stderr marker for {_snippet(arg)}")
            in_stderr = True
        elif kind == "end":
            em = _END_RE.fullmatch(arg)
            if cur is None or em is None or em.group(1) != cur.name:
                raise DumpError(f"{where()}: end marker {_snippet(arg)} does not close the open item")
            cur.rc = int(em.group(2))
            frames.append(cur)
            cur = None
        elif kind == "gap":
            if cur is not None:
                raise DumpError(f"{where()}: gap marker inside item {cur.name!r}")
            item, _, rest = arg.partition(" ")
            reason, _, detail = rest.partition(" ")
            if not (
                _NAME_RE.fullmatch(item)
                and (item in ITEMS or item.startswith("sysctl:net.") or item == "sysctl-conf" or _persisted_item(item))
            ):
                raise DumpError(f"{where()}: gap for an unknown item {_snippet(item)}")
            if reason not in GapReason.__members__:
                raise DumpError(f"{where()}: unknown gap reason {_snippet(reason)}")
            gaps.append((item, reason, detail))
        elif kind == "done":
            if cur is not None:
                raise DumpError(f"{where()}: item {cur.name!r} is not closed")
            done = True
            break
        else:
            raise DumpError(f"{where()}: unknown marker {_snippet(kind)}")
    if first:
        raise DumpError("no collector header")
    if not done:
        if cur is not None:
            raise DumpError(f"output ends inside item {cur.name!r}: cut short")
        _lines_of(text, pos, len(text))  # junk after the last marker is reported as such
        raise DumpError("no '@@tcpaudit-done' marker: output cut short")
    return frames, gaps


def _classify(text: str) -> GapReason:
    low = text.lower()
    if "permission denied" in low or "operation not permitted" in low:
        return GapReason.permission_denied
    if "no such file" in low or "not a directory" in low:
        return GapReason.missing
    return GapReason.error


def _failure(frame: _Frame) -> tuple[GapReason, str]:
    """Why an item could not be read, worded as the local collector words it."""
    last = next((ln for ln in reversed(frame.stderr) if ln.strip()), "")
    if frame.name in COMMANDS:
        detail = f"{COMMANDS[frame.name]}: {last or f'exit {frame.rc}'}"
        return (GapReason.permission_denied if "ermission" in detail else GapReason.error), detail
    m = _CAT_ERR_RE.match(last)
    if m:  # "cat: PATH: MSG" (GNU) or "cat: can't open 'PATH': MSG" (busybox) -> "PATH: MSG"
        return _classify(m.group(3)), f"{m.group(1) or m.group(2)}: {m.group(3)}"
    return _classify(last), last or f"exit {frame.rc}"


def raw_from_dump(data: bytes, source: Source = Source.file) -> RawCapture:
    frames, gaps = parse_frames(data)
    raw = RawCapture(source=source, collected_at=_dt.datetime.now(_dt.timezone.utc), detail_cap=DEFAULT_DETAIL_CAP)
    missing_roots = set()
    for item, reason, detail in gaps:
        if item.startswith("sysctl:") and reason == GapReason.missing.value:
            missing_roots.add(item[len("sysctl:") :])
        if item in QUIET_WHEN_MISSING and reason == GapReason.missing.value:
            continue
        raw.gap(item, reason, detail)
    by_name = {f.name: f for f in frames}
    for f in frames:
        if f.name == "sysctls":
            _sysctls(raw, f, missing_roots)
            continue
        cap = CAPS.get(f.name, MAX_LINES if _persisted_item(f.name) else None)
        content = f.content
        if cap is not None and len(content) > cap:
            content = content[:cap]
            raw.gap(f.name, GapReason.truncated, f"stopped after {cap} lines")
        elif f.rc != 0:
            reason, detail = _failure(f)
            if not (f.name in QUIET_WHEN_MISSING and reason is GapReason.missing):
                raw.gap(f.name, reason, detail)
            continue
        raw.items[f.name] = "\n".join(content) + "\n" if content else ""
    # The local collector asks for socket detail only when ss worked and showed established sockets.
    if "ss-detail" in raw.items:
        ss = raw.items.get("ss")
        if ss is None or not any(line.startswith("ESTAB") for line in ss.splitlines()):
            del raw.items["ss-detail"]
            raw.gaps = [g for g in raw.gaps if g.item != "ss-detail"]
    elif "ss-detail" in by_name and "ss" not in raw.items:
        raw.gaps = [g for g in raw.gaps if g.item != "ss-detail"]
    return raw


# path -> sysctl name, shared by every host of a run (the same ~1,500 paths each time)
_NAME_CACHE: dict[str, str] = {}


def grep_sysctls(lines: list[str]) -> dict[str, str]:
    """parse_grep_sysctls over already split lines, with the path -> name conversion cached across hosts
    (the same result; a fleet sweep converts each path once instead of once per host)."""
    parts: dict[str, list[str]] = {}
    cache = _NAME_CACHE
    for line in lines:
        path, sep, value = line.partition(":")
        if not sep or not path.startswith("/proc/sys/"):
            continue
        name = cache.get(path)
        if name is None:
            name = sysctl_path_to_name(path)
            if len(cache) < 100_000:
                cache[path] = name
        got = parts.get(name)
        if got is None:
            parts[name] = [value]
        else:
            got.append(value)
    return {name: " ".join((v[0] if len(v) == 1 else " ".join(v)).split()) for name, v in parts.items()}


def _sysctls(raw: RawCapture, f: _Frame, missing_roots: set[str]) -> None:
    # secrets: the collector excludes them where grep can; whatever still came is dropped here
    raw.sysctls.update((k, v) for k, v in grep_sysctls(f.content).items() if not is_secret_sysctl(k))
    raw.sysctl_roots.extend(r for r in SYSCTL_ROOTS if r not in missing_roots)
    for line in f.stderr:
        m = _GREP_ERR_RE.match(line)
        if not m:
            continue
        name = sysctl_path_to_name(m.group(1))
        reason = _classify(m.group(2))
        if name in WRITE_ONLY_SYSCTLS and reason is GapReason.permission_denied:
            continue
        if is_secret_sysctl(name):
            continue  # a key, not a setting (and an unset stable_secret answers EIO): not a gap
        raw.gap(f"sysctl:{name}", reason, m.group(2))
    if not f.content and f.rc > 1:
        last = next((ln for ln in reversed(f.stderr) if ln.strip()), f"exit {f.rc}")
        raw.gap("sysctl:net", GapReason.error, f"grep -r: {last}")


def snapshot_from_dump(data: bytes, name: str, source: Source = Source.file) -> Snapshot:
    """A Snapshot from collector output. `name` only appears in error messages (the caller adds it)."""
    raw = raw_from_dump(data, source)
    return build_snapshot(raw)
