"""The persisted sysctl configuration: what `sysctl --system` would apply at boot, read from the host's files.

Both collectors produce the same two kinds of items, so one function turns them into `Snapshot.persisted`:

    sysctl-conf-index    one line per candidate file, "N PATH", in directory order (PATH is the path on the host)
    sysctl-conf.N        the content of candidate N (at most MAX_LINES lines of MAX_LINE_CHARS characters)

The order is procps-ng's `sysctl --system` (PreloadSystem() in src/sysctl.c, procps-ng/procps @ f3f4bd2c9b91,
read for this): the directories /etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d and
/lib/sysctl.d are listed in that order; a `*.conf` name seen in an earlier directory hides the same name in later
ones; the surviving files are applied sorted by file name (strcmp) regardless of directory; /etc/sysctl.conf is
applied last when it is a regular file (stat, so through symlinks). A later assignment of a key overrides an
earlier one. This is the precedence `tcpaudit lint --root` implements (tcpaudit/lint/files.py: system_files), and a
test checks that both agree on the same tree. Older procps (before /etc/sysctl.d moved first) listed /run/sysctl.d
before /etc/sysctl.d; systemd-sysctl (src/sysctl/sysctl.c, systemd/systemd @ e3c4a681db0b) reads the same sysctl.d
directories with the same name rule (conf_files_list_nulstr) but not /etc/sysctl.conf itself, which distributions
link in as /etc/sysctl.d/99-sysctl.conf.

A file name hidden by an earlier directory, a symlink to /dev/null (masked: the name is claimed, nothing applied)
and a dangling link are notes, not gaps. A file that exists but cannot be read, more than MAX_FILES candidates, or
a file cut at MAX_LINES makes the view incomplete (`complete: false`) and is a gap.
"""

from __future__ import annotations

import os
import re

from ..snapshot import GapReason, PersistedAssignment, PersistedConfig, PersistedSetting
from .raw import RawCapture

SYSTEM_DIRS = ("/etc/sysctl.d", "/run/sysctl.d", "/usr/local/lib/sysctl.d", "/usr/lib/sysctl.d", "/lib/sysctl.d")
SYSTEM_CONF = "/etc/sysctl.conf"
MAX_FILES = 256
MAX_LINES = 10_000
MAX_LINE_CHARS = 8192
MAX_FILE_BYTES = 4 << 20
INDEX_ITEM = "sysctl-conf-index"
ITEM_RE = re.compile(r"sysctl-conf\.([1-9][0-9]{0,3})")


def item_name(n: int) -> str:
    return f"sysctl-conf.{n}"


# ---- the local collector -------------------------------------------------------------------------------
def _on_disk(root: str, path: str) -> str:
    if root in ("", "/"):
        return path
    from pathlib import Path

    from ..lint.files import resolve_in_root  # only tests read a tree under a prefix

    res = resolve_in_root(Path(root), path.lstrip("/"))
    return str(res.path) if res.path is not None else os.path.join(root, path.lstrip("/"))


def candidates(root: str = "/") -> tuple[list[str], bool]:
    """Every `*.conf` of the sysctl.d directories in directory order, then /etc/sysctl.conf; and whether the list
    was cut at MAX_FILES."""
    out: list[str] = []
    for d in SYSTEM_DIRS:
        try:
            names = sorted(os.listdir(_on_disk(root, d)))
        except OSError:
            continue
        out += [f"{d}/{n}" for n in names if n.endswith(".conf") and "\n" not in n]
    if os.path.lexists(_on_disk(root, SYSTEM_CONF)) or os.path.exists(_on_disk(root, SYSTEM_CONF)):
        out.append(SYSTEM_CONF)
    return out[:MAX_FILES], len(out) > MAX_FILES


def read_local(raw: RawCapture, root: str = "/") -> None:
    """Fill the persisted-config items from the local files, exactly as collector.sh frames them remotely."""
    paths, cut = candidates(root)
    raw.items[INDEX_ITEM] = "".join(f"{n} {p}\n" for n, p in enumerate(paths, 1))
    if cut:
        raw.gap("sysctl-conf", GapReason.truncated, f"more than {MAX_FILES} files; the first {MAX_FILES} were read")
    for n, path in enumerate(paths, 1):
        disk = _on_disk(root, path)
        if not os.path.exists(disk):
            continue  # dangling: a note when the items are read
        try:
            with open(disk, "rb") as f:
                data = f.read(MAX_FILE_BYTES)
        except OSError as exc:
            raw.gap(item_name(n), _reason(exc), f"{path}: {exc.strerror or exc}")
            continue
        lines = data.decode("utf-8", "replace").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        if len(lines) > MAX_LINES:
            raw.gap(item_name(n), GapReason.truncated, f"stopped after {MAX_LINES} lines")
            lines = lines[:MAX_LINES]
        raw.items[item_name(n)] = "".join(line[:MAX_LINE_CHARS] + "\n" for line in lines)


def _reason(exc: OSError) -> GapReason:
    import errno

    if exc.errno in (errno.EACCES, errno.EPERM):
        return GapReason.permission_denied
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return GapReason.missing
    return GapReason.error


# ---- items -> PersistedConfig (both collectors) --------------------------------------------------------
def apply_order(paths: list[str]) -> tuple[list[str], list[str]]:
    """The files `sysctl --system` applies, in order, from the candidates in directory order; and notes on the
    ones it does not read."""
    chosen: dict[str, str] = {}
    notes: list[str] = []
    conf = False
    for p in paths:
        if p == SYSTEM_CONF:
            conf = True
            continue
        name = p.rpartition("/")[2]
        if name in chosen:
            notes.append(f"{p} is not read: {chosen[name]} has the same name and takes precedence")
            continue
        chosen[name] = p
    order = [chosen[n] for n in sorted(chosen, key=lambda s: s.encode("utf-8", "surrogateescape"))]
    return order + ([SYSTEM_CONF] if conf else []), notes


def persisted_from_items(raw: RawCapture) -> PersistedConfig | None:
    """Snapshot.persisted from the items; None when the collector did not read the configuration at all."""
    index = raw.items.get(INDEX_ITEM)
    if index is None:
        return None
    from ..lint.text import parse_sysctl_conf

    by_path: dict[str, int] = {}
    for line in index.splitlines():
        n, _, path = line.partition(" ")
        if n.isdigit() and path.startswith("/") and path not in by_path:
            by_path[path] = int(n)
    order, notes = apply_order(list(by_path))
    failed = {g.item: g for g in raw.gaps if ITEM_RE.fullmatch(g.item)}
    cfg = PersistedConfig(notes=notes)
    kept_gaps = []
    for g in raw.gaps:
        m = ITEM_RE.fullmatch(g.item)
        if m is None:
            kept_gaps.append(g)
            continue
        path = next((p for p, n in by_path.items() if n == int(m.group(1))), g.item)
        if g.reason is GapReason.missing:
            continue  # dangling link: noted below
        cfg.complete = False
        kept_gaps.append(g.model_copy(update={"item": f"sysctl-conf:{path}"}))
    if any(g.item == "sysctl-conf" for g in raw.gaps):
        cfg.complete = False
    raw.gaps = kept_gaps
    for path in order:
        item = item_name(by_path[path])
        text = raw.items.get(item)
        if text is None:
            if item not in failed or failed[item].reason is GapReason.missing:
                cfg.notes.append(f"{path}: dangling or not a regular file; nothing applied from it")
            continue
        if not text.strip() and path != SYSTEM_CONF:
            cfg.notes.append(f"{path}: empty (or masked by a symlink to /dev/null); nothing applied from it")
        cfg.files.append(path)
        assignments, _problems = parse_sysctl_conf(text, path, strict=True)
        for a in assignments:
            if a.value is None:
                continue  # a systemd glob exclusion (`-key`): no value of its own
            prev = cfg.settings.get(a.key)
            shadowed = []
            if prev is not None:
                shadowed = [*prev.shadowed, PersistedAssignment(value=prev.value, file=prev.file, line=prev.line)]
            cfg.settings[a.key] = PersistedSetting(
                value=a.value,
                file=a.location.file,
                line=a.location.line,
                ignore_errors=a.ignore_errors,
                shadowed=shadowed,
            )
    # The items stay in the capture (building a snapshot twice from one capture gives the same snapshot); the
    # snapshot keeps the settings, not the text.
    return cfg
