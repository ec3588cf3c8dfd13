"""Shared pieces of the benchmark suite: machine info, measuring a process or a call, rows, the table.

Every measurement is a dict with the same keys:

    wall_s        elapsed wall-clock seconds
    cpu_s         user + system CPU seconds of the process and everything it waited for
    cpu_user_s, cpu_sys_s
    peak_rss_kb   peak resident set size (ru_maxrss, KiB) of the measured process tree
    rc            exit status (processes only)

Processes are started by a small spawner process and reaped there with os.wait4(), which returns the
rusage of exactly that child (and the grandchildren it reaped), so one measurement never leaks into the
next and peak RSS is the program's own (see SPAWNER). In-process calls are
measured with resource.getrusage() deltas of RUSAGE_SELF + RUSAGE_CHILDREN.

Absolute times on a shared 2-core machine are noise; the suite reports ratios of a subject and its
baseline measured in the same run, interleaved (A B A B ...), as the median of N repeats.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"


# ---- machine --------------------------------------------------------------------------------------
def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() in ("model name", "Model", "cpu model", "Hardware"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_total_kb() -> int | None:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def machine_info() -> dict[str, Any]:
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    try:
        load = list(os.getloadavg())
    except OSError:
        load = None
    return {
        "cores": cores,
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),  # == `uname -r`
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "python_executable": sys.executable,
        "mem_total_kb": mem_total_kb(),
        "loadavg_at_start": load,
        "euid": os.geteuid() if hasattr(os, "geteuid") else None,
        "ss": _first_line([shutil.which("ss") or "ss", "-V"]),
    }


def _first_line(argv: list[str]) -> str | None:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else None


# ---- measuring ------------------------------------------------------------------------------------
def tcpaudit_argv(*args: str) -> list[str]:
    """tcpaudit as installed in the running interpreter's environment (works from any venv)."""
    return [sys.executable, "-m", "tcpaudit", *args]


def bench_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment measured processes run with: this one, minus PYTHONDONTWRITEBYTECODE, so tcpaudit
    (an editable install here) gets bytecode caches after the warm-up run as an installed tool has them;
    its dependencies in site-packages have theirs from pip. Without it every run recompiles tcpaudit."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(extra or {})
    return env


# Peak RSS needs care. A child started by this (large) process inherits its memory high-water mark:
# subprocess uses vfork, and exec records the old address space's peak in the new program's ru_maxrss, so
# every child would report at least this process's size (they all came out equal). Measured programs are
# therefore started by a small helper process (the spawner: a bare interpreter, ~10 MB) with fork+exec, and
# reaped there with wait4; each child's ru_maxrss is then its own, above a ~10 MB floor.
SPAWNER = r"""
import json, os, sys, time
for line in sys.stdin:
    req = json.loads(line)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            if req["cwd"]:
                os.chdir(req["cwd"])
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
            os.dup2(os.open(req["stdout"] or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
            os.dup2(os.open(req["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 2)
            os.execvpe(req["argv"][0], req["argv"], req["env"])
        except BaseException as exc:
            os.write(2, ("cannot run %s: %s\n" % (req["argv"][0], exc)).encode())
        os._exit(127)
    sys.stdout.write(json.dumps({"pid": pid}) + "\n")
    sys.stdout.flush()
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    sys.stdout.write(json.dumps({"status": status, "wall": wall,
                                 "ru": [ru.ru_utime, ru.ru_stime, ru.ru_maxrss]}) + "\n")
    sys.stdout.flush()
"""


class _Spawner:
    proc: subprocess.Popen | None = None  # type: ignore[type-arg]

    @classmethod
    def get(cls) -> subprocess.Popen:  # type: ignore[type-arg]
        if cls.proc is None or cls.proc.poll() is not None:
            cls.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", SPAWNER],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                bufsize=1,
            )
        return cls.proc


def measure_process(
    argv: Sequence[str],
    *,
    cwd: str | Path | None = None,
    env: dict[str, str] | None = None,
    stdout: str | Path | None = None,
    ok_codes: Sequence[int] = (0,),
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Run argv once (stdin /dev/null, stdout to the file `stdout` or /dev/null): wall time, CPU and peak
    RSS of that process and the processes it waited for (wait4 in the spawner)."""
    import tempfile

    with tempfile.NamedTemporaryFile(prefix="tcpaudit-bench-stderr-") as err:
        sp = _Spawner.get()
        assert sp.stdin is not None and sp.stdout is not None
        req = {
            "argv": [str(a) for a in argv],
            "cwd": str(cwd) if cwd else None,
            "env": bench_env() if env is None else env,
            "stdout": str(stdout) if stdout else None,
            "stderr": err.name,
        }
        sp.stdin.write(json.dumps(req) + "\n")
        sp.stdin.flush()
        pid = json.loads(sp.stdout.readline())["pid"]
        killer = _Killer(pid, timeout)
        try:
            line = sp.stdout.readline()
        finally:
            killer.cancel()
        if not line:
            raise BenchError("the benchmark's process spawner died")
        done = json.loads(line)
        err.seek(0)
        err_text = err.read().decode("utf-8", "replace")
    utime, stime, maxrss = done["ru"]
    rc = os.waitstatus_to_exitcode(done["status"])
    m: dict[str, Any] = {
        "wall_s": done["wall"],
        "cpu_user_s": utime,
        "cpu_sys_s": stime,
        "cpu_s": utime + stime,
        "peak_rss_kb": maxrss,
        "rc": rc,
    }
    if killer.fired:
        raise BenchError(f"{' '.join(str(a) for a in argv[:4])} ... timed out after {timeout:.0f}s")
    if rc not in ok_codes:
        lines = err_text.strip().splitlines()
        raise BenchError(f"{' '.join(str(a) for a in argv[:6])} exited {rc}: {lines[-1] if lines else 'no stderr'}")
    return m


class _Killer:
    def __init__(self, pid: int, timeout: float) -> None:
        import threading

        self.fired = False
        self._pid = pid
        self._timer = threading.Timer(timeout, self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        try:
            os.kill(self._pid, 9)
        except OSError:
            pass

    def cancel(self) -> None:
        self._timer.cancel()


def measure_call(fn: Callable[[], Any]) -> tuple[dict[str, Any], Any]:
    """Call fn in this process: wall, CPU of self + children it reaped, peak RSS (self and children)."""
    s0 = resource.getrusage(resource.RUSAGE_SELF)
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    result = fn()
    wall = time.perf_counter() - t0
    s1 = resource.getrusage(resource.RUSAGE_SELF)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = (s1.ru_utime - s0.ru_utime) + (c1.ru_utime - c0.ru_utime)
    sys_ = (s1.ru_stime - s0.ru_stime) + (c1.ru_stime - c0.ru_stime)
    m = {
        "wall_s": wall,
        "cpu_user_s": user,
        "cpu_sys_s": sys_,
        "cpu_s": user + sys_,
        # ru_maxrss of children is the largest child ever reaped: an upper bound, not per call.
        "peak_rss_kb": c1.ru_maxrss,
        "self_peak_rss_kb": s1.ru_maxrss,
    }
    return m, result


def median_measurement(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """The sample with the median wall time, plus the spread of all of them."""
    ordered = sorted(samples, key=lambda m: m["wall_s"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    walls = [m["wall_s"] for m in samples]
    mid["wall_s"] = statistics.median(walls)
    mid["cpu_s"] = statistics.median(m["cpu_s"] for m in samples)
    for key in mid:
        if key.endswith("_cpu_s") and all(isinstance(m.get(key), (int, float)) for m in samples):
            mid[key] = statistics.median(m[key] for m in samples)
    mid["peak_rss_kb"] = max(m["peak_rss_kb"] for m in samples)
    mid["n"] = len(samples)
    mid["wall_min_s"] = min(walls)
    mid["wall_max_s"] = max(walls)
    mid["walls_s"] = [round(w, 4) for w in walls]
    return mid


def interleaved(runs: dict[str, Callable[[], dict[str, Any]]], n: int, warmup: int = 1) -> dict[str, dict[str, Any]]:
    """Run each named measurement n times, round-robin (A B A B ...) after `warmup` discarded rounds, so
    drift in machine load hits every subject alike. Returns name -> median_measurement."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    samples: dict[str, list[dict[str, Any]]] = {k: [] for k in runs}
    for _ in range(n):
        for name, fn in runs.items():
            samples[name].append(fn())
    return {k: median_measurement(v) for k, v in samples.items()}


class BenchError(RuntimeError):
    pass


# ---- rows and the table ---------------------------------------------------------------------------
def row(
    section: str,
    name: str,
    *,
    subject: str,
    baseline: str,
    s: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
    target: float | None = None,
    target_kind: str = "max",
    unit: str = "wall",
    note: str = "",
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One comparison: subject vs baseline. ratio = subject wall / baseline wall (or the inverse for
    target_kind 'min_speedup', where the ratio is baseline / subject)."""
    r: dict[str, Any] = {
        "section": section,
        "name": name,
        "subject": subject,
        "baseline": baseline,
        "status": "ok",
        "note": note,
        "subject_m": s,
        "baseline_m": b,
    }
    if s is not None and b is not None and s.get("wall_s") and b.get("wall_s"):
        r["ratio_wall"] = s["wall_s"] / b["wall_s"]
        if s.get("cpu_s") and b.get("cpu_s"):
            r["ratio_cpu"] = s["cpu_s"] / b["cpu_s"]
        if target is not None:
            if target_kind == "max":  # subject <= target x baseline
                r["target"] = f"<= {target:g}x"
                r["met"] = r["ratio_wall"] <= target
                r["margin"] = target / r["ratio_wall"]  # > 1: headroom
            else:  # subject at least `target` times faster than baseline
                speedup = b["wall_s"] / s["wall_s"]
                r["speedup"] = speedup
                r["target"] = f">= {target:g}x faster"
                r["met"] = speedup >= target
                r["margin"] = speedup / target
    if extra:
        r.update(extra)
    return r


def unavailable(
    section: str, name: str, subject: str, baseline: str, why: str, target: str | None = None
) -> dict[str, Any]:
    return {
        "section": section,
        "name": name,
        "subject": subject,
        "baseline": baseline,
        "status": "unavailable",
        "note": why,
        "target": target,
    }


def failed(section: str, name: str, subject: str, baseline: str, why: str) -> dict[str, Any]:
    return {"section": section, "name": name, "subject": subject, "baseline": baseline, "status": "failed", "note": why}


def _fmt_s(m: dict[str, Any] | None, key: str = "wall_s") -> str:
    if not m or m.get(key) is None:
        return "-"
    v = m[key]
    return f"{v * 1000:.0f}ms" if v < 10 else f"{v:.1f}s"


def _fmt_ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def render_table(rows: list[dict[str, Any]]) -> str:
    head = ["section", "case", "subject vs baseline", "wall", "cpu", "wall ratio", "cpu ratio", "target", "verdict"]
    lines = []
    for r in rows:
        s, b = r.get("subject_m"), r.get("baseline_m")
        if r["status"] != "ok":
            verdict = r["status"].upper()
            wall = cpu = ratio = cpu_ratio = "-"
        else:
            wall = f"{_fmt_s(s)} / {_fmt_s(b)}"
            cpu = f"{_fmt_s(s, 'cpu_s')} / {_fmt_s(b, 'cpu_s')}"
            ratio = _fmt_ratio(r.get("ratio_wall"))
            cpu_ratio = _fmt_ratio(r.get("ratio_cpu"))
            if "met" not in r:
                verdict = r.get("verdict", "")
            elif r["met"]:
                verdict = f"met ({r['margin']:.2f}x headroom)"
            else:
                verdict = f"MISSED by {1 / r['margin']:.2f}x"
            if "speedup" in r:
                ratio = f"{ratio} ({r['speedup']:.1f}x faster)"
        lines.append(
            [
                r["section"],
                r["name"],
                f"{r['subject']} vs {r['baseline']}",
                wall,
                cpu,
                ratio,
                cpu_ratio,
                r.get("target") or "-",
                verdict,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines, strict=False)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=False)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=False)).rstrip() for line in lines]
    notes = [f"  [{r['section']}/{r['name']}] {r['note']}" for r in rows if r.get("note")]
    if notes:
        out += ["", "notes:", *notes]
    return "\n".join(out)


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """The table as Markdown (for docs/benchmarks.md): `python benchmarks/run.py --markdown RESULTS.json`."""
    head = [
        "section",
        "case",
        "subject vs baseline",
        "wall",
        "CPU",
        "wall ratio",
        "CPU ratio",
        "peak RSS (MiB)",
        "target",
        "verdict",
    ]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        s, b = r.get("subject_m") or {}, r.get("baseline_m") or {}
        if r["status"] != "ok":
            cells = ["-"] * 5
            verdict = f"{r['status']}: " + " ".join(str(r.get("note", "")).split()).replace("|", "/")  # one cell
        else:
            rss = [f"{m['peak_rss_kb'] / 1024:.0f}" if m.get("peak_rss_kb") else "-" for m in (s, b)]
            ratio = _fmt_ratio(r.get("ratio_wall")) + (f" ({r['speedup']:.1f}x faster)" if "speedup" in r else "")
            cells = [
                f"{_fmt_s(s)} / {_fmt_s(b)}",
                f"{_fmt_s(s, 'cpu_s')} / {_fmt_s(b, 'cpu_s')}",
                ratio,
                _fmt_ratio(r.get("ratio_cpu")),
                " / ".join(rss),
            ]
            if "met" not in r:
                verdict = r.get("verdict", "")
            elif r["met"]:
                verdict = f"met ({r['margin']:.2f}x headroom)"
            else:
                verdict = f"**missed** by {1 / r['margin']:.2f}x"
        out.append(
            "| "
            + " | ".join(
                [r["section"], r["name"], f"{r['subject']} vs {r['baseline']}", *cells, r.get("target") or "-", verdict]
            )
            + " |"
        )
    return "\n".join(out)


def log(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)
