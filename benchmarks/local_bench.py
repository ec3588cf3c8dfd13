"""Local audit: `tcpaudit host` against the floor, the least any Python tool could do for the same data.

The floor is a separate Python process (same interpreter, same site-packages) that
  1. imports tcpaudit's runtime dependencies and nothing of tcpaudit (typer, pydantic, paramiko,
     tabulate, packaging, yaml),
  2. reads the files the local collector reads (tcpaudit.collect.local.FILES, passed in as JSON so the
     floor process itself never imports tcpaudit) and every file under /proc/sys/net/{ipv4,ipv6,core,
     netfilter},
  3. runs `ss -tanoeH`, `ss -tinH state established` when there are established sockets, and - as
     root, like the collector - `iptables-save -t nat`,
and parses nothing. tcpaudit does all of that plus parsing, the snapshot model, the rule catalogue,
the kernel knowledge base and the report, so ratio = tcpaudit / floor is the price of everything
tcpaudit adds on top of the I/O any collector must do.

Other benchmarks (the socket benchmark) reuse floor_argv() / tcpaudit_host_argv() / compare() with a
prefix such as ["ip", "netns", "exec", NS].
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks._common import BenchError, interleaved, log, measure_process, row, tcpaudit_argv, unavailable

SYSCTL_DIRS = ("/proc/sys/net/ipv4", "/proc/sys/net/ipv6", "/proc/sys/net/core", "/proc/sys/net/netfilter")
RUNTIME_DEPS = ("typer", "pydantic", "paramiko", "tabulate", "packaging", "packaging.version", "yaml")

FLOOR_SCRIPT = r"""
import json, os, subprocess, sys
import typer, pydantic, paramiko, tabulate, packaging, packaging.version, yaml

files, sysctl_dirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
items = {}
for name, path in files.items():
    try:
        with open(path, "rb", buffering=0) as f:
            items[name] = f.read()
    except OSError:
        pass
sysctls = {}
for top in sysctl_dirs:
    for dirpath, dirnames, filenames in os.walk(top):
        for fn in filenames:
            path = os.path.join(dirpath, fn)
            try:
                with open(path, "rb") as f:
                    sysctls[path] = f.read(65536)
            except OSError:
                pass
try:
    ss = subprocess.run(["ss", "-tanoeH"], capture_output=True, stdin=subprocess.DEVNULL).stdout
except OSError:  # no iproute2: the collector reads /proc/net/tcp* instead
    ss = b"".join(open(p, "rb").read() for p in ("/proc/net/tcp", "/proc/net/tcp6") if os.path.exists(p))
detail = b""
if b"ESTAB" in ss:
    detail = subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True,
                            stdin=subprocess.DEVNULL).stdout
nat = b""
if os.geteuid() == 0:
    try:
        nat = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, stdin=subprocess.DEVNULL).stdout
    except OSError:
        pass
nl = b"\n"
print(f"{len(items)} files, {len(sysctls)} sysctls, {ss.count(nl)} sockets, {detail.count(nl)} detail lines")
"""


def collector_files() -> dict[str, str]:
    """The files tcpaudit's local collector reads (read here, in the parent, from tcpaudit itself)."""
    from tcpaudit.collect.local import FILES

    return dict(FILES)


def floor_argv(files: dict[str, str] | None = None) -> list[str]:
    return [
        sys.executable,
        "-c",
        FLOOR_SCRIPT,
        json.dumps(files if files is not None else collector_files()),
        json.dumps(list(SYSCTL_DIRS)),
    ]


def tcpaudit_host_argv(*extra: str) -> list[str]:
    return tcpaudit_argv("host", *extra)


def run_floor_once(prefix: Sequence[str] = (), files: dict[str, str] | None = None) -> dict[str, Any]:
    """One floor run (a measurement dict); its stdout summary is kept under 'summary'."""
    with tempfile.NamedTemporaryFile(prefix="tcpaudit-bench-out-") as out:
        m = measure_process([*prefix, *floor_argv(files)], stdout=out.name)
        m["summary"] = Path(out.name).read_text(encoding="utf-8", errors="replace").strip()
    return m


def run_tcpaudit_host_once(
    prefix: Sequence[str] = (), cwd: str | None = None, extra: Sequence[str] = ()
) -> dict[str, Any]:
    """One `tcpaudit host` run; exit 1 (findings at or above --fail-on) counts as success."""
    return measure_process([*prefix, *tcpaudit_host_argv(*extra)], cwd=cwd or tempfile.gettempdir(), ok_codes=(0, 1))


def compare(n: int, prefix: Sequence[str] = (), warmup: int = 1) -> dict[str, dict[str, Any]]:
    """tcpaudit host and the floor, interleaved, n times each: {'tcpaudit': m, 'floor': m} (medians)."""
    files = collector_files()
    with tempfile.TemporaryDirectory(prefix="tcpaudit-bench-") as cwd:  # no ./.tcpaudit.toml gets picked up
        return interleaved(
            {"tcpaudit": lambda: run_tcpaudit_host_once(prefix, cwd), "floor": lambda: run_floor_once(prefix, files)},
            n,
            warmup=warmup,
        )


def iptables_save_cost(n: int = 5) -> dict[str, Any] | None:
    """`iptables-save -t nat` alone: the collector runs it as root, the floor does not."""
    import os

    exe = shutil.which("iptables-save")
    if exe is None or os.geteuid() != 0:
        return None
    return interleaved({"iptables": lambda: measure_process([exe, "-t", "nat"])}, n)["iptables"]


def run_local_bench(quick: bool = False, repeats: int | None = None) -> list[dict[str, Any]]:
    n = repeats or (5 if quick else 15)
    log(f"local: tcpaudit host vs floor on this (quiet) host, median of {n}")
    try:
        res = compare(n, warmup=1)
    except BenchError as exc:
        return [unavailable("local", "quiet host", "tcpaudit host", "floor", f"failed: {exc}", "<= 2x")]
    ipt = None if quick else iptables_save_cost(5)
    note = f"floor: {res['floor'].get('summary', '')}" + (
        f"; iptables-save -t nat alone (both run it as root): {ipt['wall_s'] * 1000:.0f} ms" if ipt else ""
    )
    r = row(
        "local",
        "quiet host",
        subject="tcpaudit host",
        baseline="floor",
        s=res["tcpaudit"],
        b=res["floor"],
        target=2.0,
        note=note,
    )
    if ipt:
        r["iptables_save_m"] = ipt
    return [r]


def run_socket_rows(quick: bool = False) -> list[dict[str, Any]]:
    """Engineer B's socket benchmark (benchmarks/sockets_bench.py), when it exists."""
    counts = [10_000] if quick else [10_000, 200_000]
    try:
        import importlib

        fn = importlib.import_module("benchmarks.sockets_bench").run_socket_bench
    except (ImportError, AttributeError) as exc:
        why = f"not available yet (benchmarks/sockets_bench.py run_socket_bench: {exc})"
        return [unavailable("local", f"{n:,} sockets", "tcpaudit host", "floor", why, "<= 2x") for n in counts]
    rows = []
    for n in counts:
        log(f"local: {n:,} sockets (sockets_bench.run_socket_bench)")
        try:
            result = fn(n, **_socket_kwargs(fn, quick))
        except Exception as exc:  # noqa: BLE001 - a broken row must not sink the whole run
            rows.append(
                unavailable(
                    "local",
                    f"{n:,} sockets",
                    "tcpaudit host",
                    "floor",
                    f"run_socket_bench({n}) failed: {type(exc).__name__}: {exc}",
                    "<= 2x",
                )
            )
            continue
        rows.append(socket_row(n, result))
        rows.extend(socket_extra_rows(n, result))
    return rows


def socket_extra_rows(n: int, result: dict[str, Any]) -> list[dict[str, Any]]:
    """tcpaudit against the stricter netlink floor, and the netlink collector against tcpaudit's ss path."""
    s, fnl, tss = (_flat(result, k) for k in ("tcpaudit", "floor_netlink", "tcpaudit_ss"))
    out = []
    if s is not None and fnl is not None:
        out.append(
            row(
                "local",
                f"{n:,} sockets",
                subject="tcpaudit host",
                baseline="netlink floor",
                s=s,
                b=fnl,
                note="floor receiving the same sock_diag dumps and parsing nothing (no ss)",
            )
        )
    if s is not None and tss is not None:
        out.append(
            row(
                "optimisations",
                f"{n:,} sockets",
                subject="tcpaudit host, sock_diag",
                baseline="tcpaudit host, ss text",
                s=s,
                b=tss,
                note="TCPAUDIT_SOCKET_SOURCE=ss: the table from ss -tanoeH / -tinH, parsed while they print",
            )
        )
    return out


def _socket_kwargs(fn: Any, quick: bool) -> dict[str, Any]:
    """Fewer repeats in --quick when run_socket_bench takes a `repeats` argument."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    return {"repeats": 2} if quick and "repeats" in params else {}


def _pick(d: dict[str, Any], *names: str) -> dict[str, Any] | None:
    for k in names:
        v = d.get(k)
        if isinstance(v, dict) and ("wall_s" in v or "wall" in v or "median_s" in v):
            return _norm(v)
    return None


def _norm(m: dict[str, Any]) -> dict[str, Any]:
    out = dict(m)
    if "wall_s" not in out:
        out["wall_s"] = out.get("wall", out.get("median_s"))
    if "cpu_s" not in out and ("cpu_user_s" in out or "cpu_sys_s" in out):
        out["cpu_s"] = out.get("cpu_user_s", 0.0) + out.get("cpu_sys_s", 0.0)
    return out


def _flat(d: dict[str, Any], name: str) -> dict[str, Any] | None:
    """sockets_bench's flat shape: NAME_s (median wall), NAME_cpu_s, NAME_rss_mib, NAME_runs_s."""
    wall = d.get(f"{name}_s")
    if not isinstance(wall, (int, float)):
        return None
    m: dict[str, Any] = {"wall_s": float(wall)}
    if isinstance(d.get(f"{name}_cpu_s"), (int, float)):
        m["cpu_s"] = float(d[f"{name}_cpu_s"])
    if isinstance(d.get(f"{name}_rss_mib"), (int, float)):
        m["peak_rss_kb"] = round(d[f"{name}_rss_mib"] * 1024)
    if isinstance(d.get(f"{name}_runs_s"), list):
        m["walls_s"] = d[f"{name}_runs_s"]
    return m


def socket_row(n: int, result: dict[str, Any]) -> dict[str, Any]:
    """Turn run_socket_bench's dict into a row. Expected keys: 'tcpaudit' and 'floor' measurement dicts
    (wall_s, cpu_s, peak_rss_kb); anything else is kept under 'raw'."""
    s = _pick(result, "tcpaudit", "tcpaudit_host", "subject") or _flat(result, "tcpaudit")
    b = _pick(result, "floor", "baseline") or _flat(result, "floor")
    if s is None or b is None:
        return unavailable(
            "local",
            f"{n:,} sockets",
            "tcpaudit host",
            "floor",
            f"run_socket_bench returned no tcpaudit/floor measurements (keys: {sorted(result)})",
            "<= 2x",
        ) | {"raw": result}
    note = str(result.get("note", ""))
    if "sockets" in result:
        note = (
            f"{result['sockets']:,} sockets in the namespace {result.get('composition', '')}; "
            f"findings {result.get('findings', '?')}; {result.get('sockets_per_s') or '?'} sockets/s "
            "of tcpaudit's own work (sockets_bench)" + (f"; {note}" if note else "")
        )
    return row(
        "local",
        f"{n:,} sockets",
        subject="tcpaudit host",
        baseline="floor",
        s=s,
        b=b,
        target=2.0,
        note=note,
        extra={"raw": {k: v for k, v in result.items() if k not in ("tcpaudit", "floor")}},
    )


# ---- where the time goes (for docs/benchmarks.md) ------------------------------------------------------
PHASES_SCRIPT = r"""
import json, sys, time
T = [("start", time.perf_counter())]
def mark(n):
    T.append((n, time.perf_counter()))
import typer, pydantic
mark("import typer + pydantic (also in the floor)")
import tcpaudit.cli as cli
from tcpaudit.cli import _common
mark("import tcpaudit.cli (+ registered commands)")
cli_main_imports = ["tcpaudit.catalogue", "tcpaudit.config", "tcpaudit.context", "tcpaudit.loading",
                    "tcpaudit.rules.engine"]
import importlib
for m in cli_main_imports:
    importlib.import_module(m)
mark("modules main() imports before parsing (catalogue, rules.base, models)")
import inspect
n = len(inspect.signature(_common.audit_options).parameters)
opts, _ = _common.audit_options(*([None] * 6 + [False] + [None] * (n - 7)))
mark("options: config file, profiles")
from tcpaudit.audit import audit_snapshot, build_report, kernel_db
from tcpaudit.collect.local import capture_local
from tcpaudit.collect.build import build_snapshot
mark("import audit + collector")
raw = capture_local()
mark("collect: read /proc, run ss (+ iptables-save)")
snap = build_snapshot(raw)
mark("parse into the Snapshot model")
from tcpaudit.rules.engine import catalogue
catalogue()
mark("load the rule catalogue (checks/*)")
kernel_db()
mark("load the kernel knowledge base (kernel_db/*.toml)")
t = audit_snapshot(snap, opts)
mark("run the rules")
rep = build_report([t], opts.fail_on)
from tcpaudit.reporters import render
render(rep, "table")
mark("report + render table")
print(json.dumps([[b, t1 - t0] for (a, t0), (b, t1) in zip(T, T[1:])]))
"""


def phase_breakdown(repeats: int = 5) -> dict[str, Any]:
    """Median milliseconds of each phase of `tcpaudit host`, timed in one process (after a warm-up run)."""
    import statistics

    from benchmarks._common import bench_env

    runs: list[list[list[Any]]] = []
    with tempfile.TemporaryDirectory(prefix="tcpaudit-bench-") as cwd:
        for i in range(repeats + 1):
            out = subprocess.run(
                [sys.executable, "-c", PHASES_SCRIPT],
                capture_output=True,
                text=True,
                cwd=cwd,
                env=bench_env(),
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            if out.returncode != 0:
                err = out.stderr.strip().splitlines()
                return {"error": err[-1] if err else f"exit {out.returncode}"}
            if i:
                runs.append(json.loads(out.stdout))
    phases = {name: round(statistics.median(r[k][1] for r in runs) * 1000, 1) for k, (name, _) in enumerate(runs[0])}
    return {"repeats": repeats, "ms": phases, "total_ms": round(sum(phases.values()), 1)}


def import_profile(top: int = 15) -> dict[str, Any]:
    """`python -X importtime -m tcpaudit host`: the modules with the largest self time (after a warm-up)."""
    from benchmarks._common import bench_env

    with tempfile.TemporaryDirectory(prefix="tcpaudit-bench-") as cwd:
        for _ in range(2):
            out = subprocess.run(
                [sys.executable, "-X", "importtime", *tcpaudit_host_argv()[1:]],
                capture_output=True,
                text=True,
                cwd=cwd,
                env=bench_env(),
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
    mods = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) == 3:
            mods.append((int(parts[0]), int(parts[1]), parts[2].strip()))
    total_self = sum(m[0] for m in mods)
    by_top: dict[str, int] = {}
    for self_us, _, name in mods:
        by_top[name.split(".")[0]] = by_top.get(name.split(".")[0], 0) + self_us
    return {
        "total_import_ms": round(total_self / 1000, 1),
        "by_package_ms": {k: round(v / 1000, 1) for k, v in sorted(by_top.items(), key=lambda kv: -kv[1])[:top]},
        "top_modules_self_ms": {n: round(s / 1000, 1) for s, _, n in sorted(mods, reverse=True)[:top]},
    }


# ---- optimisations, before vs after, in the same run ---------------------------------------------------
# Each optimisation is re-created exactly in a "before" process: import what the old code imported eagerly,
# or put the old function back, then run the same tcpaudit main(). "After" runs main() as it is. Both are
# measured interleaved in one run, so the ratio is not at the mercy of the machine's load.
OPTIMISATIONS = {
    "main-lazy": (
        "cli.main() imports its error classes only when one is raised",
        "import importlib\nfor m in ('tcpaudit.catalogue', 'tcpaudit.config', 'tcpaudit.context', "
        "'tcpaudit.loading', 'tcpaudit.rules.engine'):\n    importlib.import_module(m)\n",
    ),
    "lint-files-lazy": (
        "tcpaudit.lint loads .files (PyYAML) on first use, not when the rules import it",
        "import tcpaudit.lint.files\n",
    ),
    "kdb-bounds": (
        "kernel_db: version bounds parsed once (_parse_bound memoised)",
        "import tcpaudit.kernel.db as _db\n_db._parse_bound = getattr(_db._parse_bound, '__wrapped__', "
        "_db._parse_bound)\n",
    ),
}


def _main_argv(before: list[str], args: list[str]) -> list[str]:
    code = "import sys\n" + "".join(OPTIMISATIONS[k][1] for k in before)
    code += f"sys.argv = ['tcpaudit', *{args!r}]\nfrom tcpaudit.cli import main\nmain()\n"
    return [sys.executable, "-c", code]


def optimisation_rows(n: int = 11, lint_files: int = 200) -> list[dict[str, Any]]:
    """`tcpaudit host`, `tcpaudit --version` and `tcpaudit lint` (lint_files sysctl.d + as many manifests),
    before vs after this suite's optimisations, interleaved, median of n (lint: of max(5, n // 2))."""
    from benchmarks.lint_bench import KERNEL, generate_tree

    rows = []
    with tempfile.TemporaryDirectory(prefix="tcpaudit-bench-") as cwd:
        tree = generate_tree(f"{cwd}/tree", lint_files, lint_files)
        cases = [
            ("tcpaudit host", ["host"], ["main-lazy", "lint-files-lazy", "kdb-bounds"], n),
            ("tcpaudit --version", ["--version"], ["main-lazy"], n),
            (
                f"tcpaudit lint, {2 * lint_files} files",
                ["lint", tree["dir"], "--kernel", KERNEL, "--format", "json"],
                ["main-lazy", "kdb-bounds"],
                max(5, n // 2),
            ),
        ]
        for name, args, opts, reps in cases:
            res = interleaved(
                {
                    "before": lambda a=args, o=opts: measure_process(_main_argv(o, a), cwd=cwd, ok_codes=(0, 1)),
                    "after": lambda a=args: measure_process(_main_argv([], a), cwd=cwd, ok_codes=(0, 1)),
                },
                reps,
            )
            r = row(
                "optimisations",
                name,
                subject="after",
                baseline="before",
                s=res["after"],
                b=res["before"],
                note="before re-creates: " + "; ".join(OPTIMISATIONS[k][0] for k in opts),
                extra={"optimisations": opts},
            )
            if "ratio_wall" in r:
                pct = (1 - r["ratio_wall"]) * 100
                r["verdict"] = f"{pct:.0f}% faster" if pct >= 0 else f"{-pct:.0f}% slower"
            rows.append(r)
    return rows


if __name__ == "__main__":  # python -m benchmarks.local_bench [--quick]
    from benchmarks._common import render_table

    rows = run_local_bench("--quick" in sys.argv) + run_socket_rows("--quick" in sys.argv)
    print(render_table(rows))
