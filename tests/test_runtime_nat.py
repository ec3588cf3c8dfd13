"""Real kernel, real sockets: established connections idle past the NAT idle timeout (NAT002).

Two namespaces joined by a veth pair (NAT002 ignores loopback peers by design). The client holds two
connections to the server and sends nothing for 4.5 s: one plain, one with SO_KEEPALIVE, TCP_KEEPIDLE=1
and TCP_KEEPINTVL=1. With --nat-idle-timeout 2 the plain one is reported, the keepalive one is not.
"""

from __future__ import annotations

import re
import time

import pytest

from .netns import make_netns, veth  # noqa: F401 - fixture

pytestmark = pytest.mark.root
NAT_IDLE_S = 2
IDLE_S = 4.5

SERVER = r"""
host, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.bind((host, port))
srv.listen(16)
ready(port=port)
held = [srv.accept()[0], srv.accept()[0]]
for _ in commands():
    pass
"""

CLIENT = r"""
host, port = sys.argv[1], int(sys.argv[2])
plain = socket.create_connection((host, port))
ka = socket.create_connection((host, port))
ka.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
ka.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 1)
ka.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, 1)
ready(plain=plain.getsockname()[1], keepalive=ka.getsockname()[1])
for cmd in commands():
    if cmd == "close-plain":
        plain.close()
        time.sleep(0.2)
        reply(closed=True)
"""


def test_runtime_nat002_idle_connection_without_keepalive_over_veth(make_netns) -> None:  # noqa: F811
    client, server = make_netns(), make_netns()
    caddr, saddr = veth(client, server)
    srv = server.spawn(SERVER, saddr, "7100")
    srv.ready()
    cli = client.spawn(CLIENT, saddr, "7100")
    ports = cli.ready()
    # idle: no data in either direction, for more than twice the NAT idle timeout given below
    time.sleep(IDLE_S)

    run = client.tcpaudit("--nat-idle-timeout", str(NAT_IDLE_S))
    (f,) = run.findings("NAT002")
    ev = f["evidence"]
    assert ev["idle_connections"] == 1
    assert ev["without_keepalive"] == 1 and ev["keepalive_too_late"] == 0
    assert ev["nat_idle_timeout"] == NAT_IDLE_S and ev["loopback_not_counted"] == 0
    assert ev["socket_detail"] == "netlink"  # the local collector's sock_diag dump: every ESTAB socket
    (example,) = ev["examples"]
    conn = re.escape(f"{caddr}:{ports['plain']} -> {saddr}:7100")
    m = re.fullmatch(rf"{conn} idle (\d+) s .*", example)
    assert m and int(m.group(1)) >= int(IDLE_S), example  # idle at least as long as it slept
    assert "(no keepalive)" in example
    assert f["severity"] == "high"  # the timeout was given explicitly

    # the snapshot shows why the keepalive connection is not counted: a keepalive timer due within 2 s
    t = run.snapshot["sockets"]
    rows = {t["local_port"][i]: i for i in range(len(t["state"])) if t["state"][i] == "ESTAB"}
    ka, plain = rows[ports["keepalive"]], rows[ports["plain"]]
    assert t["timer"][ka] == "keepalive" and t["timer_ms"][ka] <= 1000  # TCP_KEEPINTVL
    assert t["timer"][plain] is None
    assert min(t["lastsnd_ms"][ka], t["lastrcv_ms"][ka]) > NAT_IDLE_S * 1000  # idle too, but kept alive

    # only the keepalive connection left, just as idle: NAT002 passes
    cli.send("close-plain")
    run = client.tcpaudit("--nat-idle-timeout", str(NAT_IDLE_S))
    assert run.findings("NAT002") == []
    assert run.outcome("NAT002") == "pass"
    assert run.snapshot["sockets"]["state_counts"].get("ESTAB") == 1
