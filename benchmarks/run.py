#!/usr/bin/env python3
"""tcpaudit's benchmark suite: one entry point, its own workloads, tcpaudit and the baselines side by side.

    python benchmarks/run.py              # everything (several minutes; root for namespaces and sshd)
    python benchmarks/run.py --quick      # the same pieces, small (under a minute on 2 cores; CI runs it)
    python benchmarks/run.py --only local,lint --out /tmp/b.json

Sections (each a comparison measured in this run, interleaved, median of N):
  local    `tcpaudit host` vs the floor (a Python process that only imports the runtime dependencies,
           reads the same /proc files and runs the same ss commands) on this quiet host   target <= 2x
  sockets  the same with 10,000 and 200,000 real sockets in a namespace
           (benchmarks/sockets_bench.py, engineer B; --quick: 10,000)                      target <= 2x
  netns    `tcpaudit host --all-netns` on 10 and 200 namespaces (a few real sockets each), in process and as
           a CLI process, vs the floor of reading the same sysctls, counters and sock_diag dumps in a
           plain loop of setns (benchmarks/netns_bench.py; --quick: 10)     target <= 2x, <= 10 ms/namespace
  fleet    tcpaudit's fleet sweep vs a minimal paramiko thread-pool collector and `xargs -P` OpenSSH on
           10/50/100 sshd hosts, in process and as CLI processes (benchmarks/fleet_bench.py, engineer A;
           --quick: 10 hosts, one round, in-process pair only)                    target <= 1.2x paramiko
  scale    `tcpaudit fleet` on 100/500/1,000 sshd hosts as its own sampled process vs the minimal paramiko
           pool script and `xargs -P` OpenSSH: controller CPU per host, peak RSS, peak open fds
           (benchmarks/fleet_bench.py run_scale_bench; not in --quick: ~30 min)          target CPU <= 1.5x
  ansible  `tcpaudit fleet` vs `ansible all -m raw -f N` running the same collector on the same
           kind of hosts (benchmarks/ansible_bench.py; not in --quick)                  target >= 4x faster
  lint     `tcpaudit lint` files/s on 1,000 sysctl.d files + 1,000 Kubernetes manifests vs reading
           them + yaml.safe_load_all in one process (--quick: 100 + 100)
  optimisations  each optimisation made for issue 9, before vs after in this run (the "before" process
           re-creates the old code exactly); not in --quick
  profile  where `tcpaudit host` spends its time (phases, -X importtime); not in --quick

Prints a table of ratios and writes JSON (machine info, every measurement's wall time, CPU seconds of
the process tree, peak RSS) to --out (default benchmarks/results/latest.json, gitignored).
Nothing here asserts anything about time; a section that cannot run says why in its row.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python benchmarks/run.py` puts benchmarks/ first, not the repository
    sys.path.insert(0, str(ROOT))

from benchmarks._common import (  # noqa: E402  (after the sys.path fix above)
    failed,
    log,
    machine_info,
    render_table,
    row,  # noqa: E402
    unavailable,
)

SECTIONS = ("local", "sockets", "netns", "fleet", "scale", "ansible", "lint", "optimisations", "profile")
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "latest.json"
FLEET_SIZES = [10, 50, 100]
QUICK_FLEET_SIZES = [10]


# ---- fleet: engineer A's run_fleet_bench ------------------------------------------------------------
def _measure_from(d: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any] | None:
    """A measurement for one tool from run_fleet_bench's dict, whichever of the likely shapes it has:
    d[name] = {wall_s|median_s|wall, cpu_s, peak_rss_kb|rss_mib}, d['tools'|'results'|'runs'][name], or flat
    d[name + '_s'], d[name + '_cpu_s'], d[name + '_rss_mib']."""
    for container in (d, d.get("tools"), d.get("results"), d.get("runs"), d.get("measurements")):
        if not isinstance(container, dict):
            continue
        for name in names:
            v = container.get(name)
            if isinstance(v, dict):
                m = _norm_measure(v)
                if m is not None:
                    return m
    for name in names:
        wall = d.get(f"{name}_s", d.get(f"{name}_wall_s", d.get(f"{name}_median_s")))
        if isinstance(wall, (int, float)):
            m = {"wall_s": float(wall)}
            cpu = d.get(f"{name}_cpu_s")
            if isinstance(cpu, (int, float)):
                m["cpu_s"] = float(cpu)
            rss = d.get(f"{name}_rss_kb", d.get(f"{name}_peak_rss_kb"))
            rss_mib = d.get(f"{name}_rss_mib")
            if isinstance(rss, (int, float)):
                m["peak_rss_kb"] = rss
            elif isinstance(rss_mib, (int, float)):
                m["peak_rss_kb"] = round(rss_mib * 1024)
            return m
    return None


def _norm_measure(v: dict[str, Any]) -> dict[str, Any] | None:
    wall = v.get("wall_s", v.get("median_s", v.get("wall", v.get("seconds"))))
    if not isinstance(wall, (int, float)):
        return None
    m = dict(v)
    m["wall_s"] = float(wall)
    if "cpu_s" not in m and ("cpu_user_s" in m or "cpu_sys_s" in m):
        m["cpu_s"] = m.get("cpu_user_s", 0.0) + m.get("cpu_sys_s", 0.0)
    if "peak_rss_kb" not in m:
        if isinstance(m.get("rss_mib"), (int, float)):
            m["peak_rss_kb"] = round(m["rss_mib"] * 1024)
        elif isinstance(m.get("peak_rss_mib"), (int, float)):
            m["peak_rss_kb"] = round(m["peak_rss_mib"] * 1024)
    return m


# (subject key, baseline key, row name, subject label, baseline label, target)
FLEET_PAIRS = (
    ("tcpaudit", "paramiko", "library sweep", "tcpaudit sweep()", "paramiko pool", 1.2),
    ("tcpaudit_cli", "paramiko_cli", "CLI process", "tcpaudit fleet", "paramiko pool script", 1.2),
    ("tcpaudit_cli", "xargs", "CLI process", "tcpaudit fleet", "xargs -P ssh", None),
)


def _fleet_kwargs(fn: Callable[..., Any], quick: bool) -> dict[str, Any]:
    """--quick: one round, and no separate-process pair, when run_fleet_bench takes those arguments."""
    import inspect

    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    kw: dict[str, Any] = {}
    if quick and "rounds" in params:
        kw["rounds"] = 1
    if quick and "cli" in params:
        kw["cli"] = False
    return kw


def fleet_rows(sizes: list[int], quick: bool) -> list[dict[str, Any]]:
    try:
        import importlib

        fn = importlib.import_module("benchmarks.fleet_bench").run_fleet_bench
    except (ImportError, AttributeError) as exc:
        why = f"not available yet (benchmarks/fleet_bench.py run_fleet_bench, engineer A: {exc})"
        return [
            unavailable("fleet", f"{n} hosts", "tcpaudit fleet", base, why, "<= 1.2x" if target else None)
            for n in sizes
            for _, _, _, _, base, target in FLEET_PAIRS
        ]
    rows: list[dict[str, Any]] = []
    for n in sizes:
        kw = _fleet_kwargs(fn, quick)
        log(f"fleet: {n} hosts (fleet_bench.run_fleet_bench{'' if not kw else ' ' + str(kw)})")
        try:
            t0 = time.perf_counter()
            res = fn(n, **kw)
            took = time.perf_counter() - t0
        except Exception as exc:  # noqa: BLE001 - one broken section must not sink the run
            rows.append(
                failed(
                    "fleet",
                    f"{n} hosts",
                    "tcpaudit fleet",
                    "paramiko pool",
                    f"run_fleet_bench({n}) failed: {type(exc).__name__}: {exc}",
                )
            )
            continue
        if not isinstance(res, dict):
            rows.append(
                failed(
                    "fleet",
                    f"{n} hosts",
                    "tcpaudit fleet",
                    "paramiko pool",
                    f"run_fleet_bench returned {type(res).__name__}, not a dict",
                )
            )
            continue
        notes = res.get("notes", res.get("note", ""))
        note = "; ".join(notes) if isinstance(notes, list) else str(notes or "")
        raw = {k: v for k, v in res.items() if k not in ("ratios",)}
        first = True
        for skey, bkey, kind, slabel, blabel, target in FLEET_PAIRS:
            name = f"{n} hosts, {kind}"
            s = _measure_from(res, (skey,))
            b = _measure_from(res, (bkey,))
            if s is None or b is None:
                if not (quick and kw.get("cli") is False and skey.endswith("_cli")):
                    rows.append(
                        unavailable(
                            "fleet",
                            name,
                            slabel,
                            blabel,
                            f"run_fleet_bench({n}{', ' + str(kw) if kw else ''}) has no "
                            f"{skey}/{bkey} measurement (keys: {sorted(res)[:12]})",
                            f"<= {target:g}x" if target else None,
                        )
                    )
                else:
                    rows.append(
                        unavailable(
                            "fleet",
                            name,
                            slabel,
                            blabel,
                            "not measured in --quick (one round, in-process pair only)",
                            f"<= {target:g}x" if target else None,
                        )
                    )
                continue
            rows.append(
                row(
                    "fleet",
                    name,
                    subject=slabel,
                    baseline=blabel,
                    s=s,
                    b=b,
                    target=target,
                    note=(f"{note}; jobs={res.get('jobs')}, median of {res.get('rounds')}" if first else ""),
                    extra={"raw": raw if first else None, "section_s": round(took, 1)},
                )
            )
            first = False
    return rows


# ---- sections ----------------------------------------------------------------------------------------
def run_section(name: str, fn: Callable[[], list[dict[str, Any]]]) -> list[dict[str, Any]]:
    t0 = time.perf_counter()
    try:
        rows = fn()
    except Exception as exc:  # noqa: BLE001
        traceback.print_exc()
        rows = [failed(name, "-", "tcpaudit", "-", f"section crashed: {type(exc).__name__}: {exc}")]
    log(f"{name}: done in {time.perf_counter() - t0:.1f}s")
    for r in rows:
        r.setdefault("section_s", round(time.perf_counter() - t0, 1))
    return rows


def git_info() -> dict[str, Any]:
    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    status = git("status", "--porcelain", "--", "tcpaudit", "checks", "kernel_db")
    return {"commit": git("rev-parse", "HEAD"), "tcpaudit_tree_dirty": bool(status) if status is not None else None}


def tcpaudit_version() -> str | None:
    try:
        out = subprocess.run(
            [sys.executable, "-m", "tcpaudit", "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    ap.add_argument("--quick", action="store_true", help="small workloads, fewer repeats: under a minute")
    ap.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"JSON results (default {DEFAULT_OUT.relative_to(ROOT)})"
    )
    ap.add_argument("--only", help=f"comma-separated sections to run (default all): {','.join(SECTIONS)}")
    ap.add_argument(
        "--fleet-sizes", help="comma-separated host counts for fleet and ansible (default 10,50,100; --quick: 10)"
    )
    ap.add_argument("--repeats", type=int, help="override the number of timed repeats of local and lint")
    ap.add_argument(
        "--no-install",
        action="store_true",
        help="do not install ansible-core into benchmarks/.venv-ansible; the ansible rows say it is missing",
    )
    ap.add_argument(
        "--markdown",
        type=Path,
        metavar="RESULTS_JSON",
        help="print the table of an earlier run as Markdown (for docs/benchmarks.md) and exit",
    )
    args = ap.parse_args(argv)
    if args.markdown:
        from benchmarks._common import render_markdown

        data = json.loads(args.markdown.read_text(encoding="utf-8"))
        m = data["machine"]
        print(
            f"{'Quick' if data.get('quick') else 'Full'} run of {data['started_at']}, {data['duration_s']:.0f} s: "
            f"{m['cores']} cores ({m['cpu_model']}), kernel {m['kernel']}, Python {m['python']}, load average "
            f"{(m.get('loadavg_at_start') or ['?'])[0]:.1f} at start, {(data.get('loadavg_at_end') or ['?'])[0]:.1f} "
            f"at the end; {data['tcpaudit'].get('version')} ({(data['tcpaudit'].get('commit') or '?')[:10]}"
            f"{', modified tree' if data['tcpaudit'].get('tcpaudit_tree_dirty') else ''}).\n"
        )
        print(render_markdown(data["rows"]))
        return 0

    only = set(SECTIONS) if not args.only else {s.strip() for s in args.only.split(",") if s.strip()}
    bad = only - set(SECTIONS)
    if bad:
        ap.error(f"unknown section(s) {', '.join(sorted(bad))}; choose from {', '.join(SECTIONS)}")
    quick = args.quick
    sizes = (
        [int(x) for x in args.fleet_sizes.split(",")]
        if args.fleet_sizes
        else QUICK_FLEET_SIZES
        if quick
        else FLEET_SIZES
    )

    started = time.perf_counter()
    result: dict[str, Any] = {
        "schema": 1,
        "started_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "quick": quick,
        "argv": sys.argv[1:] if argv is None else argv,
        "machine": machine_info(),
        "tcpaudit": {"version": tcpaudit_version(), **git_info()},
        "method": "ratios of tcpaudit and its baseline measured in the same run, interleaved, median of N; "
        "cpu_s = user+sys of the measured process tree (os.wait4); peak_rss_kb = its ru_maxrss",
    }
    log(
        f"{'quick' if quick else 'full'} run on {result['machine']['cores']} cores, "
        f"{result['machine']['cpu_model']}, kernel {result['machine']['kernel']}, "
        f"Python {result['machine']['python']}"
    )
    rows: list[dict[str, Any]] = []

    if "local" in only:
        from benchmarks.local_bench import run_local_bench

        rows += run_section("local", lambda: run_local_bench(quick, args.repeats))
    if "sockets" in only:
        from benchmarks.local_bench import run_socket_rows

        rows += run_section("sockets", lambda: run_socket_rows(quick))
    if "netns" in only:
        from benchmarks.netns_bench import QUICK_SIZES as NETNS_QUICK
        from benchmarks.netns_bench import SIZES as NETNS_SIZES
        from benchmarks.netns_bench import run_netns_bench

        rows += run_section(
            "netns",
            lambda: run_netns_bench(NETNS_QUICK if quick else NETNS_SIZES, args.repeats or (2 if quick else 5)),
        )
    if "fleet" in only:
        rows += run_section("fleet", lambda: fleet_rows(sizes, quick))
    if "scale" in only and not quick:
        from benchmarks.fleet_bench import SCALE_SIZES, scale_rows

        rows += run_section("scale", lambda: scale_rows(SCALE_SIZES))
    if "ansible" in only:
        if quick:
            rows.append(
                unavailable(
                    "ansible",
                    f"{sizes[0]} hosts",
                    "tcpaudit fleet",
                    "ansible -m raw",
                    "skipped in --quick: installing ansible-core (~10-20 s) plus the runs "
                    "(~20 s for 10 hosts here) do not fit the minute; run without --quick",
                    ">= 4x faster",
                )
            )
        else:
            from benchmarks.ansible_bench import run_ansible_bench

            rows += run_section("ansible", lambda: run_ansible_bench(sizes, quick, install=not args.no_install))
    if "lint" in only:
        from benchmarks.lint_bench import run_lint_bench

        rows += run_section("lint", lambda: run_lint_bench(quick, args.repeats))
    if "optimisations" in only and not quick:
        from benchmarks.local_bench import optimisation_rows

        log("optimisations: before vs after, interleaved")
        rows += run_section("optimisations", lambda: optimisation_rows(args.repeats or 11))
    if "profile" in only and not quick:
        from benchmarks.local_bench import import_profile, phase_breakdown

        log("profile: phases of `tcpaudit host` and -X importtime")
        try:
            result["profile"] = {"host_phases": phase_breakdown(), "host_imports": import_profile()}
        except Exception as exc:  # noqa: BLE001
            result["profile"] = {"error": f"{type(exc).__name__}: {exc}"}

    result["rows"] = rows
    result["duration_s"] = round(time.perf_counter() - started, 1)
    try:
        result["loadavg_at_end"] = list(os.getloadavg())
    except OSError:
        pass
    table = render_table(rows)
    # The run itself keeps about one core busy; more than that on top means someone else was running too.
    cores = result["machine"]["cores"]
    start_load = (result["machine"].get("loadavg_at_start") or [0])[0]
    end_load = (result.get("loadavg_at_end") or [0])[0]
    busy = max(start_load, end_load - 1)
    if busy > cores:
        result["busy_warning"] = (
            f"load average {busy:.1f} on {result['machine']['cores']} cores: other work "
            "competed for the CPUs; wall ratios are unreliable, CPU ratios less so"
        )
        table += f"\n\nWARNING: {result['busy_warning']}"
    result["table"] = table
    print(table)
    if "profile" in result and "host_phases" in result["profile"]:
        ph = result["profile"]["host_phases"]
        if "ms" in ph:
            print("\n`tcpaudit host` phases (ms, median, in one process):")
            for k, v in ph["ms"].items():
                print(f"  {v:7.1f}  {k}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str) + "\n", encoding="utf-8")
    print(f"\nbench: {len(rows)} rows in {result['duration_s']}s; JSON written to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
