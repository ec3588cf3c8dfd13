"""`tcpaudit host --all-netns` on real kernel state: three pod-like namespaces (kubepods cgroups, unshare'd
processes), one `ip netns` named namespace and the host, in one report.

- every namespace lsns lists (before and after the run) appears exactly once, with its inode;
- each pod is named from its cgroup and /var/log/pods directory; the named namespace from its bind mount;
- seed 003 in a pod: an iptables REDIRECT of outbound TCP to a 15001 listener inside the pod's ephemeral
  range, with a half-closed redirected connection: PORT002 and CT002 fire in that pod's target;
- a pod with a connection idle past the NAT timeout, no keepalive, over a veth pair to the named namespace:
  NAT002 fires in that pod;
- every --format renders the report.

Other processes on this machine may own namespaces too: the test asserts on its own namespaces and on
lsns's, never on a total.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import xml.etree.ElementTree as ET

import pytest

from .netns_pods import PYTHON, cluster, lsns_net, tcpaudit_all_netns  # noqa: F401 - fixture

pytestmark = pytest.mark.root

SEED003 = r"""
# Seed 003: outbound TCP redirected to a sidecar listener on 15001, which lies inside the ephemeral range.
sysctl("net.ipv4.ip_local_port_range", "15000 15100")
proxy = socket.socket()
proxy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
proxy.bind(("0.0.0.0", 15001))
proxy.listen(64)
rule = ["-A", "OUTPUT", "-p", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", "15001"]
subprocess.run(["iptables", "-t", "nat", *rule], check=True)
app = socket.create_connection(("127.0.0.1", 80))  # redirected to the proxy
held, peer = proxy.accept()
app.shutdown(socket.SHUT_WR)  # the app closes its side: the proxy's socket is left in CLOSE-WAIT
time.sleep(0.2)
ready(inode=netns_inode(), app_port=app.getsockname()[1], proxy_peer=peer[1])
for _ in commands():
    pass
"""

IDLE_CLIENT = r"""
conns = []
ready(inode=netns_inode())
for cmd in commands():
    host, port = cmd.split()
    conns.append(socket.create_connection((host, int(port))))  # no SO_KEEPALIVE
    reply(local=conns[-1].getsockname()[1])
"""

PLAIN = r"""
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
ready(inode=netns_inode(), port=srv.getsockname()[1])
for _ in commands():
    pass
"""

SERVER = r"""
import socket, sys
srv = socket.socket()
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(4)
print("READY", flush=True)
held = [srv.accept()[0]]
sys.stdin.read()
"""


def _by_inode(report: dict) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for t in report["targets"]:
        assert t["netns"] is not None, f"{t['name']}: every --all-netns target says which namespace it is"
        out.setdefault(int(t["netns"]["inode"]), []).append(t)
    return out


def _findings(target: dict, rule: str) -> list[dict]:
    return [f for f in target["findings"] if f["rule"] == rule]


@pytest.mark.skipif(shutil.which("iptables") is None, reason="iptables is not installed (scripts/test installs it)")
def test_all_netns_pods_named_netns_and_host(cluster, tmp_path) -> None:  # noqa: F811
    seed = cluster.pod(SEED003, qos="burstable")
    idle = cluster.pod(IDLE_CLIENT, qos="besteffort")
    plain = cluster.pod(PLAIN, qos="guaranteed")
    named = cluster.named_netns()
    pod_addr, peer_addr = cluster.veth(idle, named)
    server = named.spawn([PYTHON, "-c", SERVER, peer_addr, "8080"])
    assert server.stdout is not None and server.stdout.readline().strip() == "READY"
    idle.proc.send(f"{peer_addr} 8080")
    time.sleep(3.5)  # idle past --nat-idle-timeout 2: nothing sent either way

    before = lsns_net()
    outputs = {fmt: tmp_path / f"report.{fmt}" for fmt in ("table", "sarif", "junit", "markdown")}
    fmt_args = [a for fmt, p in outputs.items() for a in ("--format", f"{fmt}:{p}")]
    rc, report, stderr = tcpaudit_all_netns("--nat-idle-timeout", "2", *fmt_args)
    after = lsns_net()
    assert rc in (0, 1, 3), stderr  # 3: some other process's namespace could not be read (said in its target)
    assert "Traceback" not in stderr

    by_inode = _by_inode(report)
    # every namespace exactly once; target names unique
    assert all(len(ts) == 1 for ts in by_inode.values()), {i: [t["name"] for t in ts] for i, ts in by_inode.items()}
    names = [t["name"] for t in report["targets"]]
    assert len(names) == len(set(names))
    for inode in set(before) & set(after):  # the ones that lived through the whole run
        assert inode in by_inode, f"lsns namespace {inode} ({before[inode].get('command')}) missing from the report"

    host_inode = os.stat("/proc/self/ns/net").st_ino
    (host,) = by_inode[host_inode]
    assert host["kind"] == "host" and host["netns"]["is_host"] and host["name"] == socket.gethostname()
    assert report["extra"]["netns"]["host_inode"] == host_inode

    for pod, qos in ((seed, "burstable"), (idle, "besteffort"), (plain, "guaranteed")):
        (t,) = by_inode[pod.inode]
        ns = t["netns"]
        assert t["kind"] == "netns" and t["status"] == "ok", t
        assert t["name"] == f"netns:{pod.expected_name}"
        assert (ns["pod"], ns["pod_uid"], ns["qos_class"], ns["container_id"], ns["name_source"]) == (
            pod.expected_name,
            pod.uid,
            qos,
            pod.container_id,
            "pod-log-dir",
        )
        assert pod.pid in ns["pids"] and not ns["is_host"]
        if pod.inode in after:
            assert after[pod.inode]["ns"] == ns["inode"]

    (t,) = by_inode[named.inode]
    assert t["name"] == f"netns:{named.name}" and t["netns"]["name_source"] == "bind-mount"
    assert f"/run/netns/{named.name}" in t["netns"]["bind_mounts"]

    # seed 003, in the pod's namespace: the listener, its range and the REDIRECT
    (t,) = by_inode[seed.inode]
    (port002,) = _findings(t, "PORT002")
    assert 15001 in port002["evidence"]["listening_ports_in_range"]
    assert port002["evidence"]["ip_local_port_range"] == "15000 15100"
    (ct002,) = _findings(t, "CT002")
    assert ct002["evidence"]["redirect_ports"] == [15001]
    assert ct002["evidence"]["half_closed_on_redirect_ports"] >= 1
    assert any(f":15001 <- 127.0.0.1:{seed.info['proxy_peer']}" in e for e in ct002["evidence"]["examples"])
    assert any("15001" in c for c in t["context"]), t["context"]
    assert t["sysctls"]["net.ipv4.ip_local_port_range"] == "15000 15100"
    # ... and nowhere else: the host's range and sockets are not the pod's
    assert host["sysctls"].get("net.ipv4.ip_local_port_range") != "15000 15100"

    # the idle pod: NAT002 names its connection to the peer namespace
    (t,) = by_inode[idle.inode]
    (nat002,) = _findings(t, "NAT002")
    assert any(peer_addr in e for e in nat002["evidence"]["examples"]), nat002["evidence"]
    assert not _findings(by_inode[plain.inode][0], "NAT002")

    # every format renders
    table = outputs["table"].read_text()
    assert f"netns:{seed.expected_name}" in table
    assert f"netns:{seed.expected_name}" in outputs["markdown"].read_text()
    sarif = json.loads(outputs["sarif"].read_text())
    assert sarif["runs"]
    ET.fromstring(outputs["junit"].read_text())
