"""Collector dumps: the framed text the remote shell collector prints (`tcpaudit collector-script`).

Placeholder until the SSH collector lands: recognises nothing, so such input is rejected clearly.
"""

from __future__ import annotations

from ..snapshot import Snapshot


class DumpError(ValueError):
    pass


def looks_like_dump(data: bytes) -> bool:
    return False


def snapshot_from_dump(data: bytes, name: str) -> Snapshot:  # pragma: no cover - replaced by the SSH collector
    raise DumpError("collector dumps are not supported yet")
