"""Fleet vs Ansible: `tcpaudit fleet` against `ansible all -m raw` running the same collector on the same hosts.

ansible-core goes into the benchmark's own venv, benchmarks/.venv-ansible (made with this
interpreter's `venv` and pip; it ignores itself in git), never into tcpaudit's environment.

Hosts: N real sshd servers started with tests/sshd.start_fleet, the same helper
benchmarks/fleet_bench.py uses (127.0.0.1 high ports), so these rows and the fleet rows sweep the same
kind of host. Both tools get the same client key and the same known_hosts (strict host-key checking on
both sides) and run the same work on every host: tcpaudit's
shipped read-only collector (`tcpaudit collector-script`) fed to `sh -s`: tcpaudit sends it on the
channel's stdin, Ansible as a raw command (`-m raw -a 'printf %s BASE64 | base64 -d | sh -s'`; its
argument splitter cannot take the script's quotes and braces verbatim). Ansible runs with
`-f N` (forks = hosts) and ControlPersist off, so every run opens fresh connections, as tcpaudit does.

Each side is a separate process measured with os.wait4 (CPU includes Ansible's forked workers and
ssh clients); the runs are interleaved and the median of `repeats` is reported.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks._common import (
    BENCH_DIR,
    ROOT,
    BenchError,
    bench_env,
    interleaved,
    log,
    measure_process,
    row,
    tcpaudit_argv,
    unavailable,
)

VENV = BENCH_DIR / ".venv-ansible"
ANSIBLE_SPEC = "ansible-core"


# ---- ansible-core in its own venv ----------------------------------------------------------------
def ansible_bin() -> Path | None:
    exe = VENV / "bin" / "ansible"
    return exe if exe.exists() else None


def ensure_ansible(install: bool = True) -> tuple[Path | None, str | None, float | None]:
    """(path of `ansible`, why unavailable, seconds spent installing)."""
    exe = ansible_bin()
    if exe is not None:
        return exe, None, None
    if not install:
        return None, "ansible-core is not installed in benchmarks/.venv-ansible", None
    log(f"ansible: installing {ANSIBLE_SPEC} into {VENV.relative_to(ROOT)} (one time)")
    t0 = time.perf_counter()
    try:
        if not (VENV / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=300)
            (VENV / ".gitignore").write_text("# the benchmark's own ansible-core venv: never committed\n*\n")
        subprocess.run(
            [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check", ANSIBLE_SPEC],
            check=True,
            capture_output=True,
            timeout=900,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] if isinstance(err, bytes) else []
        return None, f"installing {ANSIBLE_SPEC} failed: {exc} {' '.join(tail)}", None
    return ansible_bin(), None, time.perf_counter() - t0


def ansible_version(exe: Path) -> str:
    try:
        out = subprocess.run(
            [str(exe), "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=bench_env(),
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    return out.stdout.splitlines()[0].strip() if out.stdout else "?"


# ---- hosts -----------------------------------------------------------------------------------------
@dataclass
class HostSet:
    """Where the hosts are and how to log in; the same for every tool."""

    hosts: list[tuple[str, str, int]]  # (alias, address, port)
    user: str
    key: Path
    known_hosts: Path
    ssh_config: Path
    kind: str  # how they were made, for the report
    stop: Callable[[], None] = field(default=lambda: None, repr=False)
    pids: list[int] = field(default_factory=list)  # the sshd listeners


def _tests_sshd() -> Any:
    """tests/sshd.py, imported the way benchmarks/fleet_bench.py imports it (one module object per process)."""
    if "sshd" not in sys.modules:
        tests = str(ROOT / "tests")
        if tests not in sys.path:
            sys.path.insert(0, tests)
    import sshd  # engineer A's real-sshd helpers, shared with the tests and fleet_bench

    return sshd


def hosts_unavailable() -> str | None:
    try:
        sshd = _tests_sshd()
    except ImportError as exc:
        return f"tests/sshd.py (engineer A's sshd helpers) not importable: {exc}"
    if not sshd.have_sshd():
        return "OpenSSH server (/usr/sbin/sshd) or ssh-keygen not installed (./scripts/test installs them as root)"
    return None


@contextlib.contextmanager
def sshd_hosts(n: int, workdir: Path) -> Iterator[HostSet]:
    """n real sshd hosts from sshd.start_fleet - the helper fleet_bench.run_fleet_bench uses: 127.0.0.1 high
    ports, one client key, one known_hosts, an ssh config with an alias per host."""
    sshd = _tests_sshd()
    fleet = sshd.start_fleet(workdir, n, prefix="a")
    try:
        yield HostSet(
            [(s.name, s.address, s.port) for s in fleet.servers],
            sshd.login_user(),
            fleet.keys.client_key,
            fleet.keys.known_hosts,
            fleet.ssh_config,
            f"{n} sshd on 127.0.0.1 high ports (sshd.start_fleet)",
            fleet.stop,
            [s.proc.pid for s in fleet.servers if s.proc is not None],
        )
    finally:
        fleet.stop()


# ---- the two commands ------------------------------------------------------------------------------
def collector_script_text() -> str:
    out = subprocess.run(
        tcpaudit_argv("collector-script"),
        capture_output=True,
        text=True,
        timeout=60,
        env=bench_env(),
        stdin=subprocess.DEVNULL,
    )
    if out.returncode != 0 or "@@tcpaudit" not in out.stdout:
        raise BenchError(f"`tcpaudit collector-script` failed: {out.stderr.strip()[-300:]}")
    return out.stdout


def write_ansible_files(hs: HostSet, workdir: Path, forks: int) -> tuple[Path, Path]:
    """(inventory, ansible.cfg) pointing at hs with its key and known_hosts."""
    inv = workdir / "inventory.ini"
    inv.write_text(
        "[bench]\n" + "".join(f"{a} ansible_host={addr} ansible_port={port}\n" for a, addr, port in hs.hosts)
    )
    tmp = workdir / "ansible-tmp"
    tmp.mkdir(exist_ok=True)
    cfg = workdir / "ansible.cfg"
    ssh_args = (
        f"-o ControlMaster=no -o ControlPersist=no -o UserKnownHostsFile={hs.known_hosts} "
        "-o StrictHostKeyChecking=yes -o IdentitiesOnly=yes -o BatchMode=yes -F /dev/null"
    )
    cfg.write_text(f"""[defaults]
inventory = {inv}
forks = {forks}
host_key_checking = True
remote_user = {hs.user}
private_key_file = {hs.key}
timeout = 30
local_tmp = {tmp}
deprecation_warnings = False
interpreter_python = auto_silent
retry_files_enabled = False
nocows = True

[ssh_connection]
ssh_args = {ssh_args}
pipelining = False
""")
    return inv, cfg


def raw_command(script: str) -> str:
    """The collector as one raw command. Ansible's argument splitter chokes on the script's quotes and
    braces (it looks for Jinja2), so it travels base64-encoded and runs, like tcpaudit's, as `sh -s`."""
    import base64

    return f"printf %s {base64.b64encode(script.encode()).decode()} | base64 -d | sh -s"


def ansible_argv(exe: Path, inv: Path, script: str, forks: int) -> list[str]:
    return [str(exe), "all", "-i", str(inv), "-m", "raw", "-a", raw_command(script), "-f", str(forks)]


def ansible_env(cfg: Path, workdir: Path) -> dict[str, str]:
    env = bench_env(
        {
            "ANSIBLE_CONFIG": str(cfg),
            "ANSIBLE_HOME": str(workdir / "ansible-home"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "0",
        }
    )
    env.pop("SSH_AUTH_SOCK", None)
    return env


def tcpaudit_fleet_argv(hs: HostSet, jobs: int) -> list[str]:
    return tcpaudit_argv(
        "fleet",
        *[a for a, _, _ in hs.hosts],
        "--ssh-config",
        str(hs.ssh_config),
        "--known-hosts",
        str(hs.known_hosts),
        "-i",
        str(hs.key),
        "-j",
        str(jobs),
        "--format",
        "json",
    )


def tcpaudit_env() -> dict[str, str]:
    env = bench_env()
    env.pop("SSH_AUTH_SOCK", None)
    return env


def _check_tcpaudit(hs: HostSet, workdir: Path, jobs: int) -> dict[str, Any]:
    """One untimed run: every host must be audited (exit 0/1, no failed targets)."""
    out = subprocess.run(
        tcpaudit_fleet_argv(hs, jobs),
        capture_output=True,
        timeout=600,
        env=tcpaudit_env(),
        cwd=workdir,
        stdin=subprocess.DEVNULL,
    )
    try:
        rep = json.loads(out.stdout)
    except ValueError:
        raise BenchError(
            f"tcpaudit fleet exit {out.returncode}: {out.stderr.decode(errors='replace')[-400:]}"
        ) from None
    s = rep.get("summary", {})
    if out.returncode not in (0, 1) or s.get("targets_failed"):
        errs = sorted({t.get("error") for t in rep.get("targets", []) if t.get("error")})
        raise BenchError(f"tcpaudit fleet: {s.get('targets_failed')} of {s.get('targets')} hosts failed: {errs[:2]}")
    return {"targets": s.get("targets"), "targets_ok": s.get("targets_ok"), "findings": s.get("findings")}


def _check_ansible(argv: list[str], env: dict[str, str], workdir: Path, n: int) -> dict[str, Any]:
    out = subprocess.run(argv, capture_output=True, timeout=900, env=env, cwd=workdir, stdin=subprocess.DEVNULL)
    text = out.stdout.decode("utf-8", "replace")
    ok = text.count("@@tcpaudit-done")
    if out.returncode != 0 or ok < n:
        raise BenchError(
            f"ansible raw exit {out.returncode}, {ok}/{n} hosts finished the collector: "
            f"{(out.stderr.decode(errors='replace') or text)[-400:]}"
        )
    return {"hosts_done": ok, "stdout_bytes": len(out.stdout)}


def compare_on_hosts(hs: HostSet, exe: Path, workdir: Path, repeats: int) -> dict[str, Any]:
    n = len(hs.hosts)
    script = collector_script_text()
    inv, cfg = write_ansible_files(hs, workdir, forks=n)
    env = ansible_env(cfg, workdir)
    a_argv = ansible_argv(exe, inv, script, n)
    t_argv = tcpaudit_fleet_argv(hs, n)
    checks = {"tcpaudit": _check_tcpaudit(hs, workdir, n), "ansible": _check_ansible(a_argv, env, workdir, n)}

    def with_hosts_cpu(argv: list[str], run_env: dict[str, str], ok: tuple[int, ...]) -> dict[str, Any]:
        before = hosts_cpu_s(hs.pids)
        m = measure_process(argv, env=run_env, cwd=workdir, ok_codes=ok)
        time.sleep(0.2)  # let the sshd listeners reap their session children
        m["hosts_cpu_s"] = hosts_cpu_s(hs.pids) - before
        return m

    res = interleaved(
        {
            "tcpaudit": lambda: with_hosts_cpu(t_argv, tcpaudit_env(), (0, 1)),
            "ansible": lambda: with_hosts_cpu(a_argv, env, (0,)),
        },
        repeats,
        warmup=0,
    )
    for m in res.values():  # the median of the runs (median_measurement: every *_cpu_s key)
        m["hosts_cpu_s"] = round(m["hosts_cpu_s"], 3)
    return {**res, "checks": checks}


def hosts_cpu_s(pids: list[int]) -> float:
    """CPU seconds the sshd hosts have used: each listener's utime+stime plus its reaped children's
    (the per-connection sshd, the shell and every command the collector ran), from /proc/PID/stat."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def run_ansible_bench(
    host_counts: list[int], quick: bool = False, install: bool = True, repeats: int | None = None
) -> list[dict[str, Any]]:
    target = ">= 4x faster"
    names = [f"{n} hosts" for n in host_counts]
    why = hosts_unavailable()
    if why:
        return [unavailable("ansible", nm, "tcpaudit fleet", "ansible -m raw", why, target) for nm in names]
    exe, why, install_s = ensure_ansible(install)
    if exe is None:
        return [unavailable("ansible", nm, "tcpaudit fleet", "ansible -m raw", why or "?", target) for nm in names]
    version = ansible_version(exe)
    rows = []
    for n, nm in zip(host_counts, names, strict=False):
        reps = repeats or (2 if quick else 3)
        log(f"ansible: {n} hosts, tcpaudit fleet -j {n} vs ansible -m raw -f {n}, median of {reps}")
        with tempfile.TemporaryDirectory(prefix="tcpaudit-ansbench-") as tmp:
            work = Path(tmp)
            try:
                t0 = time.perf_counter()
                with sshd_hosts(n, work) as hs:
                    setup_s = time.perf_counter() - t0
                    res = compare_on_hosts(hs, exe, work, reps)
            except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                rows.append(
                    unavailable(
                        "ansible",
                        nm,
                        "tcpaudit fleet",
                        "ansible -m raw",
                        f"failed: {type(exc).__name__}: {exc}",
                        target,
                    )
                )
                continue
        hc_t, hc_a = res["tcpaudit"]["hosts_cpu_s"], res["ansible"]["hosts_cpu_s"]
        rows.append(
            row(
                "ansible",
                nm,
                subject="tcpaudit fleet",
                baseline="ansible -m raw",
                s=res["tcpaudit"],
                b=res["ansible"],
                target=4.0,
                target_kind="min_speedup",
                note=f"{hs.kind}; {version}, forks={n}, ControlPersist off; hosts up in {setup_s:.1f}s; "
                f"the hosts' own CPU per sweep (sshd + collector, same machine): {hc_t:.1f}s under "
                f"tcpaudit, {hc_a:.1f}s under ansible"
                + (f"; ansible-core installed in {install_s:.0f}s this run" if install_s else ""),
                extra={
                    "checks": res["checks"],
                    "ansible_version": version,
                    "hosts": hs.kind,
                    "ansible_install_s": install_s,
                },
            )
        )
    return rows


if __name__ == "__main__":  # python -m benchmarks.ansible_bench [N ...]
    from benchmarks._common import render_table

    counts = [int(a) for a in sys.argv[1:] if a.isdigit()] or [10]
    print(render_table(run_ansible_bench(counts)))
