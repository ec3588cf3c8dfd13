"""Load snapshot files (JSON) and collector dumps with one-line errors that name the file."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pydantic import ValidationError

from . import validation
from .sanitize import clean_text
from .snapshot import Snapshot

MAX_SNAPSHOT_BYTES = 512 << 20
STDIN = "-"  # `tcpaudit audit -`: one snapshot or collector dump on stdin
STDIN_NAME = "<stdin>"
_UTF8_BOM = b"\xef\xbb\xbf"


class SnapshotFileError(ValueError):
    pass


def identify_json(obj: object) -> str | None:
    """What a tcpaudit JSON file is, when it is another of tcpaudit's files than the one expected, and which
    command reads it; None for anything else."""
    if not isinstance(obj, dict):
        return None
    if {"tool", "targets", "summary"} <= obj.keys():
        return (
            "a tcpaudit JSON report (`--format json` output), not an input: `tcpaudit audit` reads snapshots "
            "(`tcpaudit snapshot -o FILE`), `--baseline` reads `tcpaudit baseline -o FILE`"
        )
    if "runs" in obj and "sarif" in str(obj.get("$schema", "")) + str(obj.get("version", "")).lower():
        return "a SARIF report (`--format sarif` output), not an input: `tcpaudit audit` reads snapshots"
    if "fingerprints" in obj and "version" in obj:
        return "a tcpaudit baseline (`tcpaudit baseline -o FILE`): give it with --baseline FILE"
    if "hostname" in obj and "sysctls" in obj:
        return "a tcpaudit snapshot (`tcpaudit snapshot -o FILE`): `tcpaudit audit FILE` reads it"
    return None


_SYSCTL_LINE = re.compile(rb"^\s*[A-Za-z0-9_-]+(?:[./][A-Za-z0-9_*:@+-]+)+\s*=")


def looks_like_sysctl_text(data: bytes) -> bool:
    """`sysctl -a` output or a sysctl.conf: most of the first lines that are not comments are `key = value`."""
    lines = [ln for ln in data[:65536].splitlines()[:200] if ln.strip() and not ln.lstrip().startswith((b"#", b";"))]
    return bool(lines) and sum(1 for ln in lines if _SYSCTL_LINE.match(ln)) >= 0.8 * len(lines)


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # loc holds keys of the file itself: a hostile snapshot must not reach the terminal through an error
    where = clean_text(".".join(str(x) for x in err["loc"]), 200) or "top level"
    msg = clean_text(validation.message(err), 300)
    if err["type"] == "json_invalid":
        return f"not valid JSON ({clean_text(err.get('ctx', {}).get('error', msg), 300)})"
    return f"{where}: {msg}"


def parse_snapshot_bytes(data: bytes, name: str) -> Snapshot:
    if data.startswith(_UTF8_BOM):  # editors on Windows save UTF-8 with a byte-order mark
        data = data[len(_UTF8_BOM) :]
    if not data.strip():
        raise SnapshotFileError(f"{name}: empty file, not a snapshot")
    head = data.lstrip()[:1]
    if head != b"{":
        from .collect import dump as _dump  # collector-script output (framed text)

        if _dump.looks_like_dump(data):
            try:
                return _dump.snapshot_from_dump(data, name)
            except _dump.DumpError as exc:
                raise SnapshotFileError(f"{name}: {exc}") from None
            except ValidationError as exc:
                raise SnapshotFileError(f"{name}: invalid collector dump: {_first_error(exc)}") from None
        if looks_like_sysctl_text(data):
            raise SnapshotFileError(
                f"{name}: a `sysctl -a` capture or sysctl.conf (key = value lines), not a snapshot: "
                "`tcpaudit lint FILE` reads it (with --kernel RELEASE for the kernel it came from)"
            )
        raise SnapshotFileError(
            f"{name}: not a snapshot (expected JSON from `tcpaudit snapshot` or a `tcpaudit collector-script` dump)"
        )
    try:
        return Snapshot.model_validate_json(data)
    except ValidationError as exc:
        what = _identify_bytes(data)
        if what is not None and not what.startswith("a tcpaudit snapshot"):
            raise SnapshotFileError(f"{name}: {what}") from None
        raise SnapshotFileError(f"{name}: invalid snapshot: {_first_error(exc)}") from None


def _identify_bytes(data: bytes) -> str | None:
    try:
        return identify_json(json.loads(data))
    except (ValueError, RecursionError):
        return None


def _read_bounded(f, name: str) -> bytes:
    data: bytes = f.read(MAX_SNAPSHOT_BYTES + 1)
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotFileError(f"{name}: larger than {MAX_SNAPSHOT_BYTES >> 20} MiB, refusing to load")
    return data


def load_snapshot_file(path: Path | str) -> Snapshot:
    """A snapshot JSON file or collector dump; `-` reads one from stdin."""
    if str(path) == STDIN:
        try:
            data = _read_bounded(sys.stdin.buffer, STDIN_NAME)
        except (OSError, AttributeError, ValueError) as exc:  # no stdin, or a closed one
            reason = getattr(exc, "strerror", None) or exc
            raise SnapshotFileError(f"{STDIN_NAME}: cannot read: {reason}") from None
        return parse_snapshot_bytes(data, STDIN_NAME)
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = _read_bounded(f, str(p))
    except IsADirectoryError:
        raise SnapshotFileError(f"{p}: is a directory, not a snapshot file") from None
    except OSError as exc:
        raise SnapshotFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_snapshot_bytes(data, str(p))
