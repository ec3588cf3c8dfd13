"""`tcpaudit agent`: audit this machine again and again, publishing each result atomically (for node_exporter's
textfile collector). Documented in README.md ("The agent").

A failed run keeps the findings of the last good run in the file and says so with tcpaudit_run_success 0 and
an unchanged tcpaudit_last_success_timestamp_seconds. SIGTERM/SIGINT end the loop at once (during a run or a
sleep); files are only ever replaced whole, so a cut-short run leaves the previous file.
"""

from __future__ import annotations

import random
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from .atomicfile import OutputError, WriterLock, write_atomic
from .audit import AuditOptions, audit_snapshot, build_report
from .model import Report, TargetStatus
from .sanitize import clean_text


class Stop(BaseException):
    """SIGTERM or SIGINT: end the loop (a BaseException so no `except Exception` in a run swallows it)."""


@dataclass
class AgentConfig:
    outputs: list[tuple[str, str]]  # (format, path)
    interval_s: float = 600.0
    jitter_s: float = 0.0
    opts: AuditOptions = field(default_factory=lambda: AuditOptions(baseline=None))
    all_netns: bool = False
    snapshot: Path | None = None  # audit this saved snapshot each run instead of collecting (offline, tests)
    max_runs: int | None = None
    sample_s: float = 0.0


def _log(message: str) -> None:
    sys.stderr.write(f"tcpaudit agent: {clean_text(message, 1000)}\n")
    sys.stderr.flush()


def run_succeeded(report: Report) -> bool:
    hosts = [t for t in report.targets if t.kind == "host"]
    return bool(hosts) and all(t.status in (TargetStatus.ok, TargetStatus.partial) for t in hosts)


class Agent:
    def __init__(self, cfg: AgentConfig, log: Callable[[str], None] = _log) -> None:
        self.cfg = cfg
        self.log = log
        self.last_good: Report | None = None
        self.last_success_at: float | None = None
        self.runs = 0
        self.failed_runs = 0
        self._locks = [WriterLock(path) for _, path in cfg.outputs]

    # one run ------------------------------------------------------------------------
    def audit_once(self) -> Report:
        """Collect and audit; raises on a failed collection."""
        cfg = self.cfg
        if cfg.snapshot is not None:
            from .loading import load_snapshot_file

            return build_report([audit_snapshot(load_snapshot_file(cfg.snapshot), cfg.opts)], cfg.opts.fail_on)
        if cfg.all_netns:
            return _audit_all_netns(cfg.opts)
        from .collect.local import collect_local

        return build_report([audit_snapshot(collect_local(sample_s=cfg.sample_s), cfg.opts)], cfg.opts.fail_on)

    def run_once(self) -> bool:
        started, t0 = time.time(), time.monotonic()
        report: Report | None
        try:
            report = self.audit_once()
            ok = run_succeeded(report)
            if not ok:
                bad = next((t for t in report.targets if t.kind == "host"), None)
                why = f"{bad.status.value}: {bad.error}" if bad is not None else "no host target"
                self.log(f"run failed ({why}); publishing the last good findings with tcpaudit_run_success 0")
        except Stop:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed run is reported in the file, never ends the agent
            report, ok = None, False
            self.log(f"run failed ({type(exc).__name__}: {exc}); publishing the last good findings")
        finished = time.time()
        if ok and report is not None:
            self.last_good, self.last_success_at = report, finished
            publish = report
        else:
            self.failed_runs += 1
            publish = self.last_good or build_report([], self.cfg.opts.fail_on)
        run: dict[str, Any] = {
            "started_at": started,
            "finished_at": finished,
            "duration_seconds": time.monotonic() - t0,
            "success": ok,
            "last_success_at": self.last_success_at,
        }
        publish = publish.model_copy(update={"extra": {**publish.extra, "run": run}})
        self._write(publish)
        self.runs += 1
        return ok

    def _write(self, report: Report) -> None:
        from .reporters import render

        for (fmt, path), lock in zip(self.cfg.outputs, self._locks, strict=True):
            try:
                write_atomic(path, render(report, fmt), lock=lock)
            except OutputError as exc:  # disk full, directory gone: keep the previous file, try next time
                self.log(f"{exc}; the previous file is kept")

    # the loop ---------------------------------------------------------------------------
    def run(self, after_run: Callable[[Agent], None] | None = None) -> int:
        """Lock the outputs (OutputError if another writer holds one), then run until stopped. Returns 0."""
        previous = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}

        def stop(signum: int, frame: FrameType | None) -> None:
            raise Stop()

        try:
            for lock in self._locks:
                lock.acquire()
            for s in previous:
                signal.signal(s, stop)
            while self.cfg.max_runs is None or self.runs < self.cfg.max_runs:
                self.run_once()
                if after_run is not None:
                    after_run(self)
                if self.cfg.max_runs is not None and self.runs >= self.cfg.max_runs:
                    break
                time.sleep(self.cfg.interval_s + random.uniform(0, self.cfg.jitter_s))
        except Stop:
            self.log("stopping (signal)")
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
            for lock in self._locks:
                lock.release()
        return 0


def _audit_all_netns(opts: AuditOptions) -> Report:
    """`--all-netns`: every network namespace of this machine, each a target (tcpaudit.collect.netns)."""
    try:
        from . import audit as audit_mod
        from .collect import netns as netns_mod
    except ImportError:
        raise RuntimeError("--all-netns is not available in this version of tcpaudit") from None
    audit_netns = getattr(audit_mod, "audit_netns", None)
    if audit_netns is None:
        raise RuntimeError("--all-netns is not available in this version of tcpaudit")
    enum = netns_mod.enumerate_netns()
    report = build_report(audit_netns(netns_mod.collect_all_netns(enum), opts), opts.fail_on)
    report.extra.setdefault("netns", {}).update(enum.summary())  # beside build_report's "ns001" groups
    return report


def parse_duration(text: str) -> float:
    """`10m`, `60s`, `1h`, `1.5s`, `250ms` or plain seconds; ValueError otherwise."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    t = text.strip().lower()
    for suffix in ("ms", "s", "m", "h"):
        if t.endswith(suffix):
            number, scale = t[: -len(suffix)], units[suffix]
            break
    else:
        number, scale = t, 1.0
    try:
        value = float(number) * scale
    except ValueError:
        raise ValueError(f"{text!r} is not a duration (like 10m, 60s, 1h)") from None
    if not (value >= 0 and value < 366 * 86400):
        raise ValueError(f"{text!r} is not a duration between 0 and a year")
    return value
