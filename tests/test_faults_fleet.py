"""Faults (issue 8): a 30-host fleet of real sshd servers, a third of them broken in every way a fleet breaks.

20 healthy hosts and 10 faulty ones: connection refused, packets dropped (iptables DROP in a network
namespace; a listener that never answers without root), a host that never sends its banner, slow-drip
output, a connection killed mid-transfer, authentication failure, a changed host key, a non-Linux host
(collector output without /proc: FreeBSD's uname), a host with a restricted /proc (procfs mounted with
subset=pid in a private mount namespace, like a hardened container), and a host without `ss`.

Every host is reported exactly once with the right status, healthy hosts are fully audited, and the sweep
ends within the configured per-host timeouts. Ctrl-C (SIGINT) in the middle of a sweep writes the partial
report - valid JSON, every host, the unfinished ones `interrupted` - and exits 130.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sshd  # noqa: E402  (tests/sshd.py: real OpenSSH servers)

from tcpaudit.model import Report  # noqa: E402
from tcpaudit.rules.engine import catalogue  # noqa: E402
from tcpaudit.sanitize import clean_text  # noqa: E402

pytestmark = [
    pytest.mark.ssh,
    pytest.mark.skipif(not sshd.have_sshd(), reason="OpenSSH server (/usr/sbin/sshd) not installed"),
]
USER = sshd.login_user() if sshd.have_sshd() else "root"
# Generous: 20 healthy hosts connect (paramiko key exchange in one Python process) and collect at once on two
# shared cores. Neither costs time: the sweep lasts as long as its slowest host, the slow-drip one, which ends
# at the command timeout; the dropped one ends at the connect timeout meanwhile.
CONNECT_T = 15.0
COMMAND_T = 25.0
HEALTHY = 20
ROOT = sshd.have_netns() and shutil.which("unshare") is not None


def _restricted_proc_works() -> bool:
    """procfs with subset=pid (Linux 5.8+) in a private mount namespace: a container-like /proc."""
    if not ROOT:
        return False
    p = subprocess.run(
        [
            "unshare",
            "-m",
            "--propagation",
            "private",
            "sh",
            "-c",
            "mount -t proc -o subset=pid proc /proc && test ! -e /proc/net/netstat",
        ],
        capture_output=True,
        timeout=30,
    )
    return p.returncode == 0


FREEBSD_DUMP = (
    """@@tcpaudit-collector 1
@@tcpaudit-begin hostname
|freebsd1.example
@@tcpaudit-end hostname rc=0
@@tcpaudit-begin osrelease
|14.0-RELEASE
@@tcpaudit-end osrelease rc=0
@@tcpaudit-begin os-release
|NAME=FreeBSD
|ID=freebsd
|PRETTY_NAME="FreeBSD 14.0-RELEASE"
@@tcpaudit-end os-release rc=0
"""
    + "".join(
        f"@@tcpaudit-gap {item} missing {path}: No such file or directory\n"
        for item, path in [
            ("uptime", "/proc/uptime"),
            ("netstat", "/proc/net/netstat"),
            ("snmp", "/proc/net/snmp"),
            ("sockstat", "/proc/net/sockstat"),
            ("sockstat6", "/proc/net/sockstat6"),
            ("nf_conntrack_stat", "/proc/net/stat/nf_conntrack"),
            ("cgroup", "/proc/1/cgroup"),
            ("proc-net-tcp", "/proc/net/tcp"),
            ("proc-net-tcp6", "/proc/net/tcp6"),
        ]
    )
    + "".join(
        f"@@tcpaudit-gap sysctl:net.{d} missing /proc/sys/net/{d} does not exist\n"
        for d in ("ipv4", "ipv6", "core", "netfilter")
    )
    + "@@tcpaudit-gap ss missing ss not installed\n@@tcpaudit-done\n"
)


def _bindir(work: Path, name: str, tools: tuple[str, ...]) -> Path:
    d = work / name
    d.mkdir(exist_ok=True)
    for tool in tools:
        src = shutil.which(tool)
        if src and not (d / tool).exists():
            (d / tool).symlink_to(src)
    return d


PROC_ITEMS = ("uptime", "netstat", "snmp", "sockstat", "sockstat6", "nf_conntrack_stat", "cgroup", "sysctls")


def _without_proc(dump: bytes) -> bytes:
    """A real dump with the /proc items replaced by `missing` gaps."""
    out, skip = [], False
    for line in dump.decode().split("\n"):
        if line.startswith("@@tcpaudit-begin ") and line.split(" ", 1)[1] in PROC_ITEMS:
            skip = True
            out.append(f"@@tcpaudit-gap {line.split(' ', 1)[1]} missing hidden by the container")
        elif skip and line.startswith("@@tcpaudit-end "):
            skip = False
        elif not skip:
            out.append(line)
    return "\n".join(out).encode()


def _faulty(work: Path, keys: sshd.Keys, stop: list, namespaces: list) -> list[tuple[str, str, int, str]]:
    """(name, address, port, expected status) of the ten faulty hosts, servers started."""
    hosts: list[tuple[str, str, int, str]] = []

    def server(name: str, expected: str, **kw) -> None:  # type: ignore[no-untyped-def]
        s = sshd.SSHServer(work, keys, name=name, **kw).start(wait=False)
        stop.append(s)
        hosts.append((name, s.address, s.port, expected))

    refused = sshd.RefusingPort()
    stop.append(refused)
    hosts.append(("refused", "127.0.0.1", refused.port, "unreachable"))
    if ROOT:  # packets dropped by iptables in a namespace: SYNs vanish
        ns = sshd.NetNS(drop_input=True)
        namespaces.append(ns)
        hosts.append(("dropped", ns.address, 22, "timeout"))
    else:
        silent = sshd.SilentServer()
        stop.append(silent)
        hosts.append(("dropped", "127.0.0.1", silent.port, "timeout"))
    silent = sshd.SilentServer()
    stop.append(silent)
    hosts.append(("no-banner", "127.0.0.1", silent.port, "timeout"))
    drip = sshd.write_script(
        work / "drip.sh",
        "#!/bin/sh\necho '@@tcpaudit-collector 1'\n"
        "echo '@@tcpaudit-begin ss'\n"
        "while :; do echo '|ESTAB 0 0 10.0.0.1:1 10.0.0.2:2'; sleep 0.5; done\n",
    )
    server("slow-drip", "timeout", force_command=str(drip))
    real = work / "real.dump"
    real.write_bytes(
        subprocess.run(["sh", "-s"], stdin=open(sshd.COLLECTOR, "rb"), capture_output=True, timeout=120).stdout
    )
    dies = sshd.write_script(work / "dies.sh", f"#!/bin/sh\nhead -c 30000 {real}\nsleep 0.3\nkill -KILL $PPID\n")
    server("dies-mid-transfer", "bad_output", force_command=str(dies))
    (work / "empty_authorized_keys").write_text("")
    server("auth-fails", "auth_failed", authorized_keys=work / "empty_authorized_keys")
    server("key-changed", "host_key_rejected")
    freebsd = work / "freebsd.dump"
    freebsd.write_text(FREEBSD_DUMP)
    server("freebsd", "ok", force_command=f"cat {freebsd}")
    if _restricted_proc_works():  # a real collector run with a container-like /proc: pid directories only
        restricted = sshd.write_script(
            work / "restricted.sh",
            "#!/bin/sh\n"
            "exec unshare -m --propagation private sh -c "
            "'mount -t proc -o subset=pid proc /proc && exec sh -s'\n",
        )
    else:  # the collector output such a host gives: this host's, without what lives under /proc/net and /proc/sys
        canned = work / "restricted.dump"
        canned.write_bytes(_without_proc(real.read_bytes()))
        restricted = sshd.write_script(work / "restricted.sh", f"#!/bin/sh\ncat {canned}\n")
    server("restricted-proc", "ok", force_command=str(restricted))
    no_ss = _bindir(work, "no-ss-bin", ("cat", "grep", "sed", "head", "uname", "id", "iptables-save"))
    wrapper = sshd.write_script(work / "no-ss.sh", f"#!/bin/sh\nPATH={no_ss}\nexport PATH\nexec /bin/sh -s\n")
    server("no-ss", "ok", force_command=str(wrapper))
    return hosts


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("faults")
    keys = sshd.make_keys(work)
    stop: list = []
    namespaces: list = []
    try:
        healthy = [sshd.SSHServer(work, keys, name=f"ok{i:02d}") for i in range(HEALTHY)]
        for s in healthy:
            s.start(wait=False)
            stop.append(s)
        faulty = _faulty(work, keys, stop, namespaces)
        for s in stop:
            if isinstance(s, sshd.SSHServer):
                s.wait_ready()
        other = sshd.keygen(work / "other_host_key")
        lines = [s.known_line() for s in healthy]
        for name, address, port, _ in faulty:
            lines.append(keys.known_line(address, port, other if name == "key-changed" else None))
        kh = work / "known_hosts"
        kh.write_text("".join(lines))
        hosts = [(s.name, s.address, s.port, "ok") for s in healthy] + faulty
        inv = work / "inventory.txt"
        inv.write_text(
            "".join(
                f"{name} ansible_host={addr} ansible_port={port} ansible_user={USER}\n" for name, addr, port, _ in hosts
            )
        )
        yield {"work": work, "keys": keys, "hosts": hosts, "inventory": inv, "known_hosts": kh}
    finally:
        for s in stop:
            s.stop()
        for ns in namespaces:
            ns.delete()


@pytest.fixture(scope="module")
def sweep(fleet):  # type: ignore[no-untyped-def]
    out = fleet["work"] / "fleet.json"
    t0 = time.monotonic()
    p = sshd.run_tcpaudit(
        [
            "fleet",
            "--inventory",
            str(fleet["inventory"]),
            "--known-hosts",
            str(fleet["known_hosts"]),
            "-i",
            str(fleet["keys"].client_key),
            "--ssh-config",
            str(sshd.empty_config(fleet["keys"])),
            "--connect-timeout",
            str(CONNECT_T),
            "--command-timeout",
            str(COMMAND_T),
            "--jobs",
            "30",
            "-f",
            f"json:{out}",
            "-f",
            "table",
        ],
        timeout=600,
    )
    elapsed = time.monotonic() - t0
    return {"proc": p, "elapsed": elapsed, "report": json.loads(out.read_text())}


def test_every_host_once_with_the_right_status_within_the_timeouts(fleet, sweep) -> None:  # type: ignore[no-untyped-def]
    p, report = sweep["proc"], sweep["report"]
    assert p.returncode == 3, p.stderr.decode(errors="replace")  # some hosts could not be audited
    Report.model_validate(report)
    hosts = fleet["hosts"]
    assert [t["name"] for t in report["targets"]] == [h[0] for h in hosts]  # each exactly once, in order
    got = {t["name"]: t["status"] for t in report["targets"]}
    errors = {t["name"]: t["error"] for t in report["targets"] if t["status"] != "ok"}
    assert got == {h[0]: h[3] for h in hosts}, errors
    for t in report["targets"]:
        if t["status"] != "ok":
            assert t["error"] and "\n" not in t["error"] and clean_text(t["error"]) == t["error"], t
    # Each host is bounded by its connect + command timeouts and 30 run in parallel: the sweep is bounded by the
    # slowest host's budget (plus start-up and auditing), far below the serial sum of every host's timeouts.
    per_host = CONNECT_T + COMMAND_T
    assert sweep["elapsed"] < per_host * len(hosts), sweep["elapsed"]
    assert sweep["elapsed"] < per_host * math.ceil(len(hosts) / 30) + 90, sweep["elapsed"]
    statuses = report["extra"]["fleet"]["statuses"]
    assert sum(statuses.values()) == 30 and statuses["ok"] == HEALTHY + 3
    table = p.stdout.decode()
    assert "Fleet: 30 host(s)" in table and clean_text(table, keep_newlines=True) == table


def test_healthy_hosts_are_fully_audited(fleet, sweep) -> None:  # type: ignore[no-untyped-def]
    rules = {r.meta.id for r in catalogue()}
    for t in sweep["report"]["targets"]:
        if not t["name"].startswith("ok"):
            continue
        assert t["status"] == "ok" and t["error"] is None
        assert t["kernel"]["release"] and t["kernel"]["version"], t["kernel"]
        assert {c["rule"] for c in t["checks"]} == rules  # every rule ran (or said why not)
        assert not any(c["outcome"] == "error" for c in t["checks"]), t["checks"]
        assert t["sysctls"], "the rules' sysctls were read"


def test_degraded_hosts_say_what_they_could_not_read(fleet, sweep) -> None:  # type: ignore[no-untyped-def]
    by_name = {t["name"]: t for t in sweep["report"]["targets"]}
    no_ss = by_name["no-ss"]
    assert any(g.startswith("ss: missing") for g in no_ss["gaps"]), no_ss["gaps"]
    restricted = by_name["restricted-proc"]
    if _restricted_proc_works():
        assert any(g.startswith("netstat: missing") for g in restricted["gaps"]), restricted["gaps"]
        assert any(g.startswith("sysctl:net.ipv4: missing") for g in restricted["gaps"]), restricted["gaps"]
    freebsd = by_name["freebsd"]
    assert freebsd["kernel"]["release"] == "14.0-RELEASE"
    assert any(g.startswith("sysctl:net.ipv4: missing") for g in freebsd["gaps"]), freebsd["gaps"]
    assert not any(c["outcome"] == "error" for t in (no_ss, restricted, freebsd) for c in t["checks"])


def test_a_host_without_any_data_passes_no_rule(sweep) -> None:  # type: ignore[no-untyped-def]
    freebsd = next(t for t in sweep["report"]["targets"] if t["name"] == "freebsd")
    passed = sorted(c["rule"] for c in freebsd["checks"] if c["outcome"] == "pass")
    assert not passed, passed


def test_ctrl_c_mid_sweep_writes_the_partial_report_and_exits_130(fleet, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Four healthy hosts finish, three hang (no banner); SIGINT: valid JSON with all seven, exit 130."""
    work, keys = fleet["work"], fleet["keys"]
    snaps = tmp_path / "snaps"  # a host's snapshot is saved once it is audited: then it is done
    servers = [sshd.SSHServer(work, keys, name=f"int{i}") for i in range(4)]
    silent = [sshd.SilentServer() for _ in range(3)]
    out = tmp_path / "partial.json"
    proc = None
    try:
        for s in servers:
            s.start()
        kh = tmp_path / "known_hosts"
        kh.write_text("".join(s.known_line() for s in servers))
        hosts = [f"{USER}@127.0.0.1:{s.port}" for s in servers] + [f"{USER}@127.0.0.1:{s.port}" for s in silent]
        env = dict(os.environ, PYTHONPATH=str(sshd.REPO))
        env.pop("SSH_AUTH_SOCK", None)
        proc = subprocess.Popen(
            [
                *sshd.tcpaudit_argv(),
                "fleet",
                *hosts,
                "--known-hosts",
                str(kh),
                "-i",
                str(keys.client_key),
                "--ssh-config",
                str(sshd.empty_config(keys)),
                "--connect-timeout",
                "300",
                "--command-timeout",
                "120",
                "--save-snapshots",
                str(snaps),
                "-f",
                f"json:{out}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        deadline = time.monotonic() + 240
        while len(list(snaps.glob("*.json"))) < len(servers) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        assert len(list(snaps.glob("*.json"))) == len(servers), "the healthy hosts never finished"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=240)
        assert time.monotonic() - t0 < 120  # not the 300 s connect timeout of the hanging hosts
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        for s in servers:
            s.stop()
        for s in silent:
            s.stop()
    assert proc.returncode == 130, err
    report = json.loads(out.read_text())
    Report.model_validate(report)
    assert [t["name"] for t in report["targets"]] == [h.split("@", 1)[1] for h in hosts]
    assert [t["status"] for t in report["targets"]] == ["ok"] * 4 + ["interrupted"] * 3
    assert report["summary"]["exit_code"] == 130
    assert b"interrupted" in err
