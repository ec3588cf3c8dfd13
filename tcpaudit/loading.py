"""Load snapshot files (JSON) and collector dumps with one-line errors that name the file."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

from .sanitize import clean_text
from .snapshot import Snapshot

MAX_SNAPSHOT_BYTES = 512 << 20
STDIN = "-"  # `tcpaudit audit -`: one snapshot or collector dump on stdin
STDIN_NAME = "<stdin>"
_UTF8_BOM = b"\xef\xbb\xbf"

# pydantic's wording for what a hostile or corrupt number gets; ours says which numbers are meant
_MESSAGES = {"finite_number": "not a finite number (NaN, Infinity and numbers too large for a float are refused)"}


class SnapshotFileError(ValueError):
    pass


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # loc holds keys of the file itself: a hostile snapshot must not reach the terminal through an error
    where = clean_text(".".join(str(x) for x in err["loc"]), 200) or "top level"
    msg = clean_text(_MESSAGES.get(err["type"], err["msg"]), 300)
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
        raise SnapshotFileError(
            f"{name}: not a snapshot (expected JSON from `tcpaudit snapshot` or a `tcpaudit collector-script` dump)"
        )
    try:
        return Snapshot.model_validate_json(data)
    except ValidationError as exc:
        raise SnapshotFileError(f"{name}: invalid snapshot: {_first_error(exc)}") from None


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
