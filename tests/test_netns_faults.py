"""--all-netns when things go wrong, on real kernel state: a namespace that is gone by the time it is entered,
a run without CAP_SYS_ADMIN (counters only, said so), a user who may not even enumerate (remote hosts:
tests/test_netns_remote.py).
And the Snapshot fields a namespace snapshot carries (netns, init_net_sysctls, the host's global sysctls)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tcpaudit.audit import audit_netns, build_report
from tcpaudit.collect.netns import collect_all_netns, enumerate_netns, name_entries
from tcpaudit.model import TargetStatus

from .netns_pods import PYTHON, cluster, tcpaudit_all_netns  # noqa: F401 - fixture

POD = r"""
sysctl("net.ipv4.ip_local_port_range", "20000 20999")
srv = socket.socket()
srv.bind(("127.0.0.1", 20500))
srv.listen(4)
ready(inode=netns_inode())
for _ in commands():
    pass
"""


def _only(enum, *inodes: int):  # type: ignore[no-untyped-def]
    """The enumeration cut down to the host and the given namespaces (others' namespaces are not ours)."""
    enum.entries = [e for e in enum.entries if e.inode == enum.host_inode or e.inode in inodes]
    return enum


@pytest.mark.root
def test_namespace_gone_between_enumeration_and_entry(cluster) -> None:  # noqa: F811
    stays = cluster.pod(POD)
    leaves = cluster.pod(POD)
    enum = _only(enumerate_netns(), stays.inode, leaves.inode)
    name_entries(enum)
    pid = leaves.pid
    leaves.stop()  # every process of it exits: the namespace is freed
    for _ in range(100):
        if not os.path.exists(f"/proc/{pid}"):
            break
        time.sleep(0.05)
    targets = audit_netns(collect_all_netns(enum))
    by_inode = {t.netns.inode: t for t in targets if t.netns is not None}
    assert len(targets) == len(by_inode) == 3
    gone = by_inode[leaves.inode]
    assert (gone.status, gone.error, gone.kind) == (TargetStatus.skipped, "gone", "netns")
    assert gone.name == f"netns:{leaves.expected_name}"  # named at enumeration, so still named
    assert by_inode[stays.inode].status is TargetStatus.ok
    report = build_report(targets)
    assert report.summary.targets_failed == 0  # nothing left to audit is no failure


@pytest.mark.root
def test_namespace_snapshot_fields(cluster) -> None:  # noqa: F811
    pod = cluster.pod(POD)
    enum = _only(enumerate_netns(), pod.inode)
    caps = {c.entry.inode: c for c in collect_all_netns(enum)}
    host = caps[enum.host_inode].snapshot
    snap = caps[pod.inode].snapshot
    assert host is not None and snap is not None
    assert host.netns is not None and host.netns.is_host and host.init_net_sysctls is None
    assert snap.netns is not None and snap.netns.inode == pod.inode and snap.netns.pod_uid == pod.uid
    key = "net.ipv4.ip_local_port_range"
    assert snap.sysctls[key] == "20000 20999"  # read inside the namespace
    assert snap.init_net_sysctls is not None and snap.init_net_sysctls[key] == host.sysctls[key]
    assert 20500 in snap.sockets.local_port and snap.sockets.source == "netlink"
    # A global sysctl (absent from the namespace's tree, as reading there shows) carries the host's value,
    # and is no per-namespace key: init_net_sysctls does not list it.
    for global_key in ("net.ipv4.tcp_mem", "net.core.netdev_max_backlog"):
        path = "/proc/sys/" + global_key.replace(".", "/")
        inside = subprocess.run(["nsenter", f"--net=/proc/{pod.pid}/ns/net", "test", "-e", path])
        if inside.returncode == 0 or global_key not in host.sysctls:
            continue  # per-namespace on this kernel
        assert snap.sysctls[global_key] == host.sysctls[global_key]
        assert global_key not in snap.init_net_sysctls
    assert set(snap.init_net_sysctls) <= set(host.sysctls)


@pytest.mark.root
@pytest.mark.skipif(shutil.which("capsh") is None, reason="capsh (libcap2-bin) is not installed")
def test_without_cap_sys_admin_counters_only(cluster) -> None:  # noqa: F811
    pod = cluster.pod(POD)
    named = cluster.named_netns()  # held by a bind mount only: no process whose /proc/PID/net could be read
    prefix = ["capsh", "--drop=cap_sys_admin", "--", "-c", 'exec "$0" "$@"']
    rc, report, stderr = tcpaudit_all_netns(prefix=prefix)
    assert "Traceback" not in stderr
    assert rc == 3  # incomplete: partial and skipped targets
    by_inode = {t["netns"]["inode"]: t for t in report["targets"]}
    host = by_inode[os.stat("/proc/self/ns/net").st_ino]
    assert host["status"] == "ok"  # its own namespace needs no setns
    t = by_inode[pod.inode]
    assert t["status"] == "partial" and t["name"] == f"netns:{pod.expected_name}"
    assert any("CAP_SYS_ADMIN" in g and "counters" in g for g in t["gaps"]), t["gaps"]
    assert "net.ipv4.ip_local_port_range" not in t["sysctls"]  # never the host's value standing in
    # rules on its sysctls cannot know: unknown, never a pass
    outcomes = {c["rule"]: c["outcome"] for c in t["checks"]}
    assert outcomes["PORT002"] in ("unknown", "not_applicable")
    assert outcomes["TCP001"] != "pass"
    n = by_inode[named.inode]
    assert n["status"] == "skipped" and "CAP_SYS_ADMIN" in n["error"]


@pytest.mark.root
def test_cannot_enumerate_without_privileges() -> None:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv is not installed")
    argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", PYTHON, "-m", "tcpaudit", "host"]
    r = subprocess.run([*argv, "--all-netns"], capture_output=True, text=True, timeout=120, cwd="/")
    assert r.returncode == 3
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "CAP_SYS_PTRACE" in r.stderr and "Traceback" not in r.stderr
