"""The local collector against the kernel it reads: values in the snapshot equal what /proc says.

One test collects this machine as it is (no namespace); one collects a fresh namespace holding a known
set of sockets, where the counts must be exact.
"""

from __future__ import annotations

import json
import os
import random
import subprocess

import pytest

from tcpaudit.collect.parsers import fold_value, parse_counter_pairs, parse_proc_net_tcp, parse_sockstat
from tcpaudit.collect.raw import is_secret_sysctl

from .netns import PYTHON, make_netns, netns_unavailable  # noqa: F401 - fixture

pytestmark = pytest.mark.root

ROOTS = ("net/ipv4", "net/ipv6", "net/core", "net/netfilter")
DYNAMIC = ("net.netfilter.nf_conntrack_count",)  # changes between two reads on a live host


def _snapshot(prefix: list[str] | None = None) -> dict:
    r = subprocess.run(
        [*(prefix or []), PYTHON, "-m", "tcpaudit", "snapshot", "-o", "-"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _proc_sys_path(name: str) -> str:
    return "/proc/sys/" + "/".join(part.replace("/", ".") for part in name.split("."))


def _tcp_lines(text: str) -> int:
    return sum(1 for line in text.splitlines()[1:] if line.strip())


def _proc_tcp_count() -> int:
    n = 0
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(path):
            with open(path) as f:
                n += _tcp_lines(f.read())
    return n


def test_runtime_local_machine_matches_proc() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root: unprivileged runs cannot read every sysctl (see test_runtime_unprivileged)")
    before = _proc_tcp_count()
    snap = _snapshot()
    after = _proc_tcp_count()

    with open("/proc/sys/kernel/hostname") as f:
        assert snap["hostname"] == f.read().strip()
    uname_r = subprocess.run(["uname", "-r"], capture_output=True, text=True, check=True).stdout.strip()
    assert snap["kernel"]["release"] == uname_r == os.uname().release

    # every readable file under the sysctl roots is either in the snapshot or named in a gap
    sysctls = snap["sysctls"]
    gaps = {g["item"] for g in snap["gaps"]}
    names_on_disk = set()
    for root in ROOTS:
        for dirpath, _dirs, files in os.walk(f"/proc/sys/{root}"):
            for fn in files:
                path = os.path.join(dirpath, fn)
                if not os.stat(path).st_mode & 0o444:
                    continue
                rel = os.path.relpath(path, "/proc/sys")
                names_on_disk.add(".".join(p.replace(".", "/") for p in rel.split(os.sep)))
    # secrets (stable_secret, tcp_fastopen_key, netdev_rss_key) are neither read nor gaps
    secrets = {n for n in names_on_disk if is_secret_sysctl(n)}
    assert secrets and not secrets & set(sysctls) and not any(is_secret_sysctl(g[7:]) for g in gaps)
    missing = {n for n in names_on_disk if n not in sysctls and f"sysctl:{n}" not in gaps and n not in secrets}
    assert not missing, sorted(missing)[:20]
    assert len(sysctls) > 200

    # 200 sampled values equal the file, read again now
    rng = random.Random(5)
    sample = rng.sample(sorted(k for k in sysctls if k not in DYNAMIC), 200)
    for name in sample:
        with open(_proc_sys_path(name), "rb") as f:
            assert sysctls[name] == fold_value(f.read().decode("utf-8", "replace")), name

    # socket table: roughly the /proc/net/tcp{,6} line count read just before and after (the host is live:
    # other work opens and closes connections meanwhile, so not exact - see the namespace test for that)
    total = snap["sockets"]["total"]
    slack = max(50, max(before, after) // 5)
    assert min(before, after) - slack <= total <= max(before, after) + slack, (before, total, after)
    assert sum(snap["sockets"]["state_counts"].values()) == total == len(snap["sockets"]["state"])

    # counters: every name /proc prints is parsed, and no value runs ahead of a later read
    with open("/proc/net/netstat") as f:
        netstat = parse_counter_pairs(f.read(), "netstat")
    with open("/proc/net/snmp") as f:
        snmp = parse_counter_pairs(f.read(), "snmp")
    for mine, now in ((snap["counters"]["netstat"], netstat), (snap["counters"]["snmp"], snmp)):
        assert set(mine) == set(now)
        for group, values in now.items():
            assert set(mine[group]) == set(values), group
            for k, v in values.items():
                if group in ("Tcp", "Udp", "Ip", "IpExt", "TcpExt", "Icmp") and k not in (
                    "CurrEstab",
                    "RtoAlgorithm",
                    "RtoMin",
                    "RtoMax",
                    "MaxConn",
                    "Forwarding",
                    "DefaultTTL",
                ):
                    assert mine[group][k] <= v, (group, k)
    assert {"inuse", "orphan", "tw", "alloc", "mem"} <= set(snap["counters"]["sockstat"]["TCP"])
    if os.path.exists("/proc/net/stat/nf_conntrack"):
        with open("/proc/net/stat/nf_conntrack") as f:
            cpus = len([ln for ln in f.read().splitlines()[1:] if ln.strip()])
        assert snap["conntrack"]["present"] is True
        assert len(snap["conntrack"]["stats_per_cpu"]) == cpus
        assert "found" in snap["conntrack"]["stats_per_cpu"][0]


KNOWN_SOCKETS = r"""
srv = socket.socket()
srv.bind(("127.0.0.1", 7300))
srv.listen(16)
srv6 = socket.socket(socket.AF_INET6)
srv6.bind(("::1", 7301))
srv6.listen(16)
held = []
for _ in range(3):  # 3 established pairs: 6 sockets
    c = socket.create_connection(("127.0.0.1", 7300))
    held += [c, srv.accept()[0]]
for _ in range(2):  # 2 client-side TIME-WAIT
    c = socket.create_connection(("127.0.0.1", 7300))
    a = srv.accept()[0]
    c.close()
    a.close()
wait_states({"LISTEN": 2, "ESTAB": 6, "TIME-WAIT": 2})  # the FINs of the closed pairs have landed
ready(sockets=2 + 6 + 2)
for _ in commands():
    pass
"""


@pytest.mark.parametrize("source", ["netlink", "ss"])
def test_runtime_fresh_namespace_counts_are_exact(make_netns, source: str) -> None:  # noqa: F811
    """Both ways the local collector reads the table: sock_diag (the default) and ss (its fallback)."""
    ns = make_netns(net__ipv4__tcp_tw_reuse=0)
    proc = ns.spawn(KNOWN_SOCKETS)
    expected = proc.ready()["sockets"]
    snap = _snapshot(ns.argv(["env", f"TCPAUDIT_SOCKET_SOURCE={source}"]))
    tcp = ns.run(["cat", "/proc/net/tcp"]).stdout
    tcp6 = ns.run(["cat", "/proc/net/tcp6"]).stdout
    netstat = ns.run(["cat", "/proc/net/netstat"]).stdout
    snmp = ns.run(["cat", "/proc/net/snmp"]).stdout
    sockstat = ns.run(["cat", "/proc/net/sockstat"]).stdout

    t = snap["sockets"]
    assert t["source"] == source
    assert t["total"] == len(t["state"]) == expected == _tcp_lines(tcp) + _tcp_lines(tcp6)
    assert t["state_counts"] == {"LISTEN": 2, "ESTAB": 6, "TIME-WAIT": 2}
    assert t["detail"] == ("ss-i" if source == "ss" else "netlink")  # all 6 established got lastsnd/lastrcv
    assert sum(1 for x in t["lastsnd_ms"] if x is not None) == 6

    # the ss table and /proc/net/tcp{,6} (through tcpaudit's own /proc parser) name the same sockets
    from_proc = parse_proc_net_tcp(tcp) + parse_proc_net_tcp(tcp6, "/proc/net/tcp6")
    mine = set(zip(t["state"], t["local_addr"], t["local_port"], t["remote_addr"], t["remote_port"], strict=False))
    theirs = {(s.state, s.local_addr, s.local_port, s.remote_addr, s.remote_port) for s in from_proc}
    assert mine == theirs
    inodes = {s.inode for s in from_proc if s.state != "TIME-WAIT"}
    assert {i for s, i in zip(t["state"], t["inode"], strict=False) if s != "TIME-WAIT"} == inodes

    # a quiet namespace: the counters equal a read made right after, exactly
    assert snap["counters"]["netstat"] == parse_counter_pairs(netstat, "netstat")
    assert snap["counters"]["snmp"] == parse_counter_pairs(snmp, "snmp")
    assert snap["counters"]["snmp"]["Tcp"]["CurrEstab"] == 6
    assert snap["counters"]["snmp"]["Tcp"]["ActiveOpens"] == 5
    socks = parse_sockstat(sockstat, "sockstat")
    assert snap["counters"]["sockstat"]["TCP"]["tw"] == socks["TCP"]["tw"] == 2
    assert snap["counters"]["sockstat"]["TCP"]["inuse"] == socks["TCP"]["inuse"]
    assert snap["sysctls"]["net.ipv4.tcp_tw_reuse"] == "0"


CAPPED = """
import json, sys
from tcpaudit.collect.build import build_snapshot
from tcpaudit.collect.local import capture_local
snap = build_snapshot(capture_local(table_cap=4, sockets=sys.argv[1]))
print(json.dumps({"total": snap.sockets.total, "gaps": [[g.item, g.reason.value, g.detail] for g in snap.gaps]}))
"""


@pytest.mark.parametrize("source,item", [("netlink", "sock_diag"), ("ss", "ss")])
def test_runtime_local_socket_table_cap_is_a_reported_gap(make_netns, source: str, item: str) -> None:  # noqa: F811
    """A table beyond the local cap is cut there and the cut is said, never an error and never silent."""
    ns = make_netns()
    proc = ns.spawn(KNOWN_SOCKETS)
    assert proc.ready()["sockets"] == 10
    r = ns.run([PYTHON, "-c", CAPPED, source], cwd="/")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["total"] == 4
    assert [item, "truncated", "stopped after 4 sockets; counts are lower bounds"] in out["gaps"]


def test_runtime_global_sysctls_are_not_visible_in_a_namespace(make_netns) -> None:  # noqa: F811
    """tcp_max_orphans and tcp_mem live in ipv4_table, registered for the initial namespace only: inside a
    container's namespace the files are gone although the kernel has them. tcpaudit says so, and the rules
    that need them are not applicable for that reason (not 'absent on this kernel')."""
    if not os.path.exists("/proc/sys/net/ipv4/tcp_max_orphans"):
        pytest.skip("this test runs in a child network namespace already")
    ns = make_netns()
    assert ns.run(["sh", "-c", "test -e /proc/sys/net/ipv4/tcp_max_orphans || echo gone"]).stdout.strip() == "gone"
    run = ns.tcpaudit(snapshot=False)
    notes = run.target["kernel_notes"]
    assert any(n.startswith("net.ipv4.tcp_max_orphans is absent") and "global sysctl" in n for n in notes), notes
    assert run.outcome("TCP008") == "not_applicable"
    reason = next(c["reason"] for c in run.target["checks"] if c["rule"] == "TCP008")
    assert "another network namespace" in reason
