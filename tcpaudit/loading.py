"""Load snapshot files (JSON) and collector dumps with one-line errors that name the file."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from .sanitize import clean_text
from .snapshot import Snapshot

MAX_SNAPSHOT_BYTES = 512 << 20


class SnapshotFileError(ValueError):
    pass


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    # loc holds keys of the file itself: a hostile snapshot must not reach the terminal through an error
    where = clean_text(".".join(str(x) for x in err["loc"]), 200) or "top level"
    msg = clean_text(err["msg"], 300)
    if err["type"] == "json_invalid":
        return f"not valid JSON ({clean_text(err.get('ctx', {}).get('error', msg), 300)})"
    return f"{where}: {msg}"


def parse_snapshot_bytes(data: bytes, name: str) -> Snapshot:
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
        raise SnapshotFileError(f"{name}: not a snapshot (expected JSON from `tcpaudit snapshot` or a "
                                "`tcpaudit collector-script` dump)")
    try:
        return Snapshot.model_validate_json(data)
    except ValidationError as exc:
        raise SnapshotFileError(f"{name}: invalid snapshot: {_first_error(exc)}") from None


def load_snapshot_file(path: Path | str) -> Snapshot:
    p = Path(path)
    try:
        with open(p, "rb") as f:
            data = f.read(MAX_SNAPSHOT_BYTES + 1)
    except IsADirectoryError:
        raise SnapshotFileError(f"{p}: is a directory, not a snapshot file") from None
    except OSError as exc:
        raise SnapshotFileError(f"{p}: cannot read: {exc.strerror or exc}") from None
    if len(data) > MAX_SNAPSHOT_BYTES:
        raise SnapshotFileError(f"{p}: larger than {MAX_SNAPSHOT_BYTES >> 20} MiB, refusing to load")
    return parse_snapshot_bytes(data, str(p))
