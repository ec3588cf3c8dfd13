"""`tcpaudit host` run as `nobody` inside a namespace: it works, and it says what it could not read."""

from __future__ import annotations

import pytest

from .netns import make_netns  # noqa: F401 - fixture

pytestmark = pytest.mark.root

SOCKETS = r"""
srv = socket.socket()
srv.bind(("127.0.0.1", 7400))
srv.listen(16)
c = socket.create_connection(("127.0.0.1", 7400))
a = srv.accept()[0]
ready()
for _ in commands():
    pass
"""


def test_runtime_unprivileged_run_reports_gaps(make_netns) -> None:  # noqa: F811
    ns = make_netns()
    ns.spawn(SOCKETS).ready()
    run = ns.tcpaudit(user="nobody")
    assert run.rc in (0, 1), f"exit {run.rc}: {run.stderr}"  # not 3 (collection) or 4 (internal)
    assert run.report["summary"]["exit_code"] == run.rc
    t = run.target
    assert t["status"] == "ok"
    gaps = t["gaps"]
    # NAT rules need root; the collector says so instead of failing or pretending there are none
    assert any(g.startswith("iptables-nat: permission_denied") for g in gaps), gaps
    # root-only sysctl files (mode 0600, e.g. tcp_fastopen_key) become permission_denied gaps
    assert any(g.startswith("sysctl:") and "permission_denied" in g for g in gaps), gaps
    assert all(c["outcome"] != "error" for c in t["checks"]), t["checks"]

    snap = run.snapshot  # written by nobody into the scratch directory
    assert snap is not None
    assert snap["environment"]["nat_rules"] is None  # unknown, not "no rules"
    assert snap["sockets"]["source"] == "netlink"  # the socket table needs no privilege
    assert snap["sockets"]["state_counts"] == {"LISTEN": 1, "ESTAB": 2}
    assert snap["counters"]["netstat"]["TcpExt"] and snap["counters"]["sockstat"]["TCP"]
    assert "net.ipv4.tcp_fastopen_key" not in snap["sysctls"]
    assert "net.ipv4.ip_local_port_range" in snap["sysctls"]

    # as root in the same namespace, those gaps are gone
    root_run = ns.tcpaudit()
    assert not any(g.startswith("iptables-nat") for g in root_run.target["gaps"])
    assert "net.ipv4.tcp_fastopen_key" in root_run.snapshot["sysctls"]
