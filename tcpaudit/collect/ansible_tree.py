"""Read the result tree of `ansible HOSTS -m script -a "$(tcpaudit collector-script path)" -t DIR`.

Ansible's `tree` callback writes one JSON file per inventory host, named by the host, holding that host's
task result: for a host that ran the collector, `rc`, `stdout` (the framed collector dump) and `stderr`;
for a host Ansible could not reach, `"unreachable": true` and `msg`; for a failed task, `"failed": true`,
`msg` and often `rc`/`stderr`. Each host becomes one HostResult: ok with the Snapshot the dump gives (the
same reader as `tcpaudit audit dump.txt` and the SSH collector, so the same findings as `tcpaudit fleet`),
or unreachable / error / skipped / bad_output with Ansible's own reason, sanitised.

Everything in the tree came from remote hosts or from whoever wrote the directory: file sizes and the host
count are bounded, text is cleaned before it reaches a report, and a file that is not a tree result is an
AnsibleTreeError naming it (one line), never a traceback.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..model import TargetStatus
from ..sanitize import clean_text
from ..snapshot import Snapshot, Source
from .dump import MAX_DUMP_BYTES, DumpError, snapshot_from_dump

# A result file holds the dump twice (stdout and stdout_lines), JSON-escaped: allow for that.
MAX_RESULT_BYTES = 3 * MAX_DUMP_BYTES
MAX_HOSTS = 100_000
MAX_ERROR_CHARS = 500

# Keys every Ansible task result written by the tree callback has at least one of.
_RESULT_KEYS = frozenset({"changed", "failed", "unreachable", "skipped", "rc", "stdout", "msg"})


class AnsibleTreeError(ValueError):
    """The directory (or a file in it) is not Ansible tree output; the message names the file."""


@dataclass
class HostResult:
    name: str  # the inventory hostname (the file's name), cleaned
    status: TargetStatus
    snapshot: Snapshot | None = None
    error: str | None = None


def looks_like_tree(path: Path) -> bool:
    return path.is_dir()


def _one_line(text: object) -> str:
    return " ".join(clean_text(text, keep_newlines=True).split())


def _reason(result: dict[str, Any]) -> str:
    """Ansible's message for a host that did not run the collector: msg, else the last stderr line, else rc."""
    msg = result.get("msg")
    if isinstance(msg, str) and msg.strip():
        return _one_line(msg)
    stderr = result.get("stderr")
    if isinstance(stderr, str):
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if lines:
            return _one_line(lines[-1])
    return f"rc={result.get('rc')!r}"


def host_result(name: str, result: Any, where: str) -> HostResult:
    """One host's result from its parsed JSON (`where` names the file in errors)."""
    if not isinstance(result, dict) or not (_RESULT_KEYS & set(result)):
        raise AnsibleTreeError(f"{where}: not an Ansible task result (expected the JSON `ansible -t DIR` writes)")
    if result.get("unreachable") is True:
        return HostResult(name, TargetStatus.unreachable, error=clean_text(f"unreachable: {_reason(result)}", 500))
    if result.get("skipped") is True:
        return HostResult(name, TargetStatus.skipped, error=clean_text(f"skipped: {_reason(result)}", 500))
    rc = result.get("rc")
    if result.get("failed") is True or (isinstance(rc, int) and rc != 0):
        why = _reason(result)
        if isinstance(rc, int) and f"rc={rc}" not in why:
            why = f"rc={rc}: {why}"
        return HostResult(name, TargetStatus.error, error=clean_text(f"failed: {why}", MAX_ERROR_CHARS))
    stdout = result.get("stdout")
    if not isinstance(stdout, str):
        raise AnsibleTreeError(f"{where}: an Ansible result without stdout (was the module `-m script`?)")
    data = stdout.encode("utf-8", "surrogateescape")
    if len(data) > MAX_DUMP_BYTES:
        return HostResult(name, TargetStatus.bad_output, error=f"output larger than {MAX_DUMP_BYTES >> 20} MiB")
    try:
        snap = snapshot_from_dump(data, name, source=Source.ssh)
    except DumpError as exc:
        return HostResult(name, TargetStatus.bad_output, error=clean_text(f"not a collector dump: {exc}", 500))
    except ValidationError as exc:
        from ..validation import first_error

        return HostResult(name, TargetStatus.bad_output, error=clean_text(f"invalid dump: {first_error(exc)}", 500))
    return HostResult(name, TargetStatus.ok, snapshot=snap)


def read_tree(directory: Path) -> list[HostResult]:
    """Every host of an Ansible tree directory, once, sorted by name."""
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        raise AnsibleTreeError(f"{directory}: cannot read: {exc.strerror or exc}") from None
    if not entries:
        raise AnsibleTreeError(f"{directory}: empty directory, no Ansible tree results")
    if len(entries) > MAX_HOSTS:
        raise AnsibleTreeError(f"{directory}: more than {MAX_HOSTS} files")
    out = []
    for entry in entries:
        where = clean_text(os.path.join(str(directory), entry.name), 300)
        if not entry.is_file():
            raise AnsibleTreeError(f"{where}: not a file; an Ansible tree holds one JSON file per host")
        try:
            with open(entry.path, "rb") as f:
                raw = f.read(MAX_RESULT_BYTES + 1)
        except OSError as exc:
            raise AnsibleTreeError(f"{where}: cannot read: {exc.strerror or exc}") from None
        if len(raw) > MAX_RESULT_BYTES:
            raise AnsibleTreeError(f"{where}: larger than {MAX_RESULT_BYTES >> 20} MiB")
        try:
            result = json.loads(raw)
        except (ValueError, RecursionError):
            raise AnsibleTreeError(
                f"{where}: not JSON, so not Ansible tree output (`ansible ... -t DIR` writes one JSON file per host)"
            ) from None
        out.append(host_result(clean_text(entry.name, 253), result, where))
    return out
