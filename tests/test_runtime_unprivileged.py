"""`tcpaudit host` run as `nobody` inside a namespace: it works, and it says what it could not read."""

from __future__ import annotations

import re
import subprocess

import pytest

from .netns import PYTHON, make_netns  # noqa: F401 - fixture

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
    # secrets (tcp_fastopen_key is mode 0600, stable_secret too) are not read: neither values nor gaps
    assert not any("fastopen_key" in g or "stable_secret" in g for g in gaps), gaps
    assert all(c["outcome"] != "error" for c in t["checks"]), t["checks"]

    snap = run.snapshot  # written by nobody into the scratch directory
    assert snap is not None
    assert snap["environment"]["nat_rules"] is None  # unknown, not "no rules"
    assert snap["sockets"]["source"] == "netlink"  # the socket table needs no privilege
    assert snap["sockets"]["state_counts"] == {"LISTEN": 1, "ESTAB": 2}
    assert snap["counters"]["netstat"]["TcpExt"] and snap["counters"]["sockstat"]["TCP"]
    assert "net.ipv4.tcp_fastopen_key" not in snap["sysctls"]
    assert "net.ipv4.ip_local_port_range" in snap["sysctls"]

    # as root in the same namespace, those gaps are gone; the secrets are still not read
    root_run = ns.tcpaudit()
    assert not any(g.startswith("iptables-nat") for g in root_run.target["gaps"])
    assert not any(k.endswith(("fastopen_key", "stable_secret")) for k in root_run.snapshot["sysctls"])


def test_runtime_unreadable_nat_rules_are_unknown_not_pass(make_netns) -> None:  # noqa: F811
    """A namespace with a REDIRECT rule, audited as `nobody`: iptables -t nat is unreadable, so CT002 (sidecar
    redirects) and CT006 (does this host NAT?) say unknown with the reason; they neither pass nor vanish, and
    the table says so. As root they read the rule."""
    ns = make_netns()
    ns.run(
        ["iptables", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "--dport", "80", "-j", "REDIRECT", "--to-ports", "15001"]
    )
    run = ns.tcpaudit(user="nobody")
    for rule in ("CT002", "CT006"):
        check = next(c for c in run.target["checks"] if c["rule"] == rule)
        assert check["outcome"] == "unknown", check
        assert "NAT rules could not be read" in check["reason"] and "root" in check["reason"], check
    table = subprocess.run(
        ns.argv([PYTHON, "-m", "tcpaudit", "host", "--color", "never"], user="nobody"),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ns.workdir,
    )
    assert table.returncode in (0, 1), table.stderr
    text = " ".join(table.stdout.split())  # the table wraps at the width; compare words
    assert "unknown: CT002: the NAT rules could not be read" in text, table.stdout
    assert "unknown: CT006:" in text
    assert re.search(r"checked \d+ rules: \d+ pass, \d+ fail, \d+ not applicable, [2-9]\d* unknown", text), text

    root_run = ns.tcpaudit()
    assert root_run.snapshot is not None and root_run.snapshot["environment"]["nat_rules"]  # the REDIRECT rule
    assert root_run.outcome("CT002") != "unknown" and root_run.outcome("CT006") != "unknown"
