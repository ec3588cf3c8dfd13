"""Real kernel, real sockets: NAT001's severity follows docs/severity.md.

Two namespaces joined by a veth pair, the kernel's default tcp_keepalive_time (7200 s) and a given idle timeout
of 350 s. With only a plain connection no socket uses SO_KEEPALIVE: NAT001 is medium and says so. Once a
connection enables SO_KEEPALIVE with the kernel's timing its keepalive timer is due ~7200 s later, after the
timeout: NAT001 is high, so the default --fail-on high fails the run (exit 1).
"""

from __future__ import annotations

import pytest

from .netns import make_netns, veth  # noqa: F401 - fixture

pytestmark = pytest.mark.root

SERVER = r"""
import threading
host, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.bind((host, port))
srv.listen(16)
held = []
threading.Thread(target=lambda: [held.append(srv.accept()[0]) for _ in range(8)], daemon=True).start()
ready(port=port)
for _ in commands():
    pass
"""

CLIENT = r"""
host, port = sys.argv[1], int(sys.argv[2])
conns = [socket.create_connection((host, port))]
ready(plain=conns[0].getsockname()[1])
for cmd in commands():
    if cmd == "keepalive":
        s = socket.create_connection((host, port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)  # the kernel's tcp_keepalive_time/intvl
        conns.append(s)
        reply(port=s.getsockname()[1])
"""


def test_runtime_nat001_is_high_only_when_a_socket_relies_on_the_slow_keepalive(make_netns) -> None:  # noqa: F811
    client, server = make_netns(), make_netns()
    caddr, saddr = veth(client, server)
    assert client.read_sysctl("net.ipv4.tcp_keepalive_time") == "7200"
    srv = server.spawn(SERVER, saddr, "7200")
    srv.ready()
    cli = client.spawn(CLIENT, saddr, "7200")
    cli.ready()

    run = client.tcpaudit("--nat-idle-timeout", "350")
    (f,) = run.findings("NAT001")
    assert f["severity"] == "medium"
    assert any("no socket uses SO_KEEPALIVE" in c for c in f["context"]), f["context"]
    assert f["evidence"]["established_with_keepalive_timer"] == 0

    cli.send("keepalive")
    run = client.tcpaudit("--nat-idle-timeout", "350")
    (f,) = run.findings("NAT001")
    assert f["severity"] == "high", f["context"]
    assert f["evidence"]["keepalive_due_after_idle_timeout"] == 1
    assert any("next probe due later than the 350 s idle timeout" in c for c in f["context"]), f["context"]
    assert run.rc == 1 and run.report["summary"]["exit_code"] == 1  # --fail-on high, the default
