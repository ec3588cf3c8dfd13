"""One file for a whole `tcpaudit host --all-netns --save-snapshot FILE` sweep, read back by `tcpaudit audit FILE`.

JSON Lines, so that neither side holds more than one namespace's snapshot at a time:
  line 1   {"tcpaudit_netns_sweep": 1, "netns": <collect.netns Enumeration.summary()>}
  then     one line per namespace, in the report's order (the host first):
           {"name": target name, "kind": "host" | "netns", "status": "ok" | "partial" | "skipped",
            "error": why it was skipped or null, "netns": NetnsInfo, "snapshot": Snapshot or null}
Every line is complete JSON: a sweep cut short (Ctrl-C) still leaves a readable file of the namespaces done.
The file is written beside FILE under a temporary name and renamed over FILE when the sweep ends.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomicfile import OutputError
from .model import NetnsInfo
from .sanitize import clean_text
from .snapshot import Snapshot

MAGIC = "tcpaudit_netns_sweep"
VERSION = 1
_MAX_LINE = 512 << 20


class SweepFileError(ValueError):
    """Not a readable sweep file; the message is one line and names the file."""


@dataclass
class SweepRecord:
    """One namespace as saved: what collect.netns.NetnsCapture carries, for audit.audit_netns."""

    name: str
    kind: str
    status: str
    error: str | None
    netns: NetnsInfo | None
    snapshot: Snapshot | None

    # audit_netns reads capture.entry.info
    @property
    def entry(self) -> SweepRecord:
        return self

    @property
    def info(self) -> NetnsInfo | None:
        return self.netns


class SweepWriter:
    """Write the sweep as it goes: `for cap in writer.tee(captures)` passes each NetnsCapture on after
    writing it; close() renames the file into place (also after an interruption: what was done is kept)."""

    def __init__(self, path: str | Path, summary: dict[str, Any]) -> None:
        self.path = Path(path)
        self.tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        self.fh = os.fdopen(fd, "w", encoding="utf-8")
        self._write(json.dumps({MAGIC: VERSION, "netns": summary}))

    def _write(self, line: str) -> None:
        try:
            self.fh.write(line + "\n")
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def add(self, name: str, kind: str, status: str, error: str | None, netns, snapshot: Snapshot | None) -> None:
        head = json.dumps(
            {
                "name": name,
                "kind": kind,
                "status": status,
                "error": error,
                "netns": None if netns is None else netns.model_dump(mode="json"),
            }
        )
        snap = "null" if snapshot is None else snapshot.model_dump_json()
        self._write(head[:-1] + ', "snapshot": ' + snap + "}")

    def tee(self, captures: Iterable) -> Iterator:
        for cap in captures:
            info = cap.entry.info
            kind = "host" if info is not None and info.is_host else "netns"
            self.add(cap.name, kind, cap.status, cap.error, info, cap.snapshot)
            yield cap

    def close(self) -> None:
        if self.fh.closed:
            return
        try:
            self.fh.flush()
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.path)
        except OSError as exc:
            self.abort()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def abort(self) -> None:
        try:
            self.fh.close()
        except OSError:
            pass
        try:
            os.unlink(self.tmp)
        except OSError:
            pass


def is_sweep_file(path: str | Path) -> bool:
    """Whether PATH starts with a sweep header (cheap: reads the first line's first bytes only)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head.lstrip().startswith(b'{"' + MAGIC.encode() + b'"')


def read_sweep(path: str | Path) -> tuple[dict[str, Any], Iterator[SweepRecord]]:
    """(the enumeration summary, the records one at a time). Raises SweepFileError."""
    p = Path(path)
    try:
        fh = open(p, "rb")  # noqa: SIM115 - closed by the records iterator
    except OSError as exc:
        raise SweepFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        header = json.loads(fh.readline(_MAX_LINE))
        if not isinstance(header, dict) or header.get(MAGIC) != VERSION:
            raise SweepFileError(f"{p}: not a tcpaudit --all-netns sweep file of version {VERSION}")
        found = header.get("netns")
        summary: dict[str, Any] = found if isinstance(found, dict) else {}
    except (ValueError, UnicodeDecodeError):
        fh.close()
        raise SweepFileError(f"{p}: not a tcpaudit --all-netns sweep file (the first line is not JSON)") from None
    except SweepFileError:
        fh.close()
        raise

    def records() -> Iterator[SweepRecord]:
        with fh:
            for n, line in enumerate(fh, start=2):
                if not line.strip():
                    continue
                try:
                    d = json.loads(line)
                    rec = SweepRecord(
                        name=clean_text(str(d["name"]), 253),
                        kind=str(d["kind"]) if d.get("kind") in ("host", "netns") else "netns",
                        status=str(d["status"]) if d.get("status") in ("ok", "partial", "skipped") else "skipped",
                        error=None if d.get("error") is None else clean_text(str(d["error"]), 500),
                        netns=None if d.get("netns") is None else NetnsInfo.model_validate(d["netns"]),
                        snapshot=None if d.get("snapshot") is None else Snapshot.model_validate(d["snapshot"]),
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
                    raise SweepFileError(f"{p}: line {n}: not a namespace record ({first})") from None
                yield rec

    return summary, records()
