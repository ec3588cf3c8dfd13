"""Real kernel, real sockets: ephemeral port exhaustion (PORT001) and listeners in the range (PORT002)."""

from __future__ import annotations

import errno

import pytest

from .netns import make_netns  # noqa: F401 - fixture

pytestmark = pytest.mark.root

RANGE = (61000, 61099)

CHURN = r"""
# A client that opens and closes connections to one server, closing first (-> TIME-WAIT on the
# client's ephemeral port), until connect() fails.
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(128)
cycles, err = 0, None
while cycles < 5000:
    c = socket.socket()
    try:
        c.connect(("127.0.0.1", port))
    except OSError as exc:
        err = exc.errno
        c.close()
        break
    a, _ = srv.accept()
    c.close()  # the client closes first: its side goes FIN-WAIT-2, then TIME-WAIT
    a.close()
    cycles += 1
ready(cycles=cycles, errno=err, error=os.strerror(err) if err else None)
for _ in commands():
    pass
"""

LISTEN = r"""
srv = socket.socket()
srv.bind(("0.0.0.0", int(sys.argv[1])))
srv.listen(16)
ready(port=srv.getsockname()[1])
for _ in commands():
    pass
"""


def test_runtime_port001_time_wait_exhausts_narrow_range(make_netns) -> None:  # noqa: F811
    ns = make_netns(net__ipv4__ip_local_port_range=f"{RANGE[0]} {RANGE[1]}", net__ipv4__tcp_tw_reuse=0)
    churn = ns.spawn(CHURN, "5000")
    info = churn.ready()
    usable = RANGE[1] - RANGE[0] + 1
    # The failure is real: connect() ran out of ports after using every port in the range once.
    assert info["errno"] == errno.EADDRNOTAVAIL, info
    assert info["cycles"] == usable, info

    run = ns.tcpaudit()
    assert run.rc in (0, 1), run.stderr
    (f,) = run.findings("PORT001")
    ev = f["evidence"]
    assert ev["destination"] == "127.0.0.1:5000"
    assert ev["ip_local_port_range"] == f"{RANGE[0]} {RANGE[1]}"
    assert ev["usable_ports"] == usable
    assert ev["time_wait"] == usable
    assert ev["ports_held"] == usable
    assert ev["tcp_tw_reuse"] == 0 and ev["time_wait_reusable"] == 0
    assert f["severity"] == "critical"
    assert "EADDRNOTAVAIL" in f["explanation"]
    # the socket table the rule saw is the kernel's: every one of those ports is in TIME-WAIT
    assert run.snapshot is not None
    assert run.snapshot["sockets"]["state_counts"].get("TIME-WAIT") == usable
    assert run.rc == 1  # a critical finding gates at the default --fail-on high


def test_runtime_port002_listener_in_range_until_reserved(make_netns) -> None:  # noqa: F811
    ns = make_netns(net__ipv4__ip_local_port_range=f"{RANGE[0]} {RANGE[1]}")
    listener = ns.spawn(LISTEN, "61050")
    assert listener.ready()["port"] == 61050

    run = ns.tcpaudit()
    (f,) = run.findings("PORT002")
    ev = f["evidence"]
    assert ev["listening_ports_in_range"] == [61050]
    assert ev["ip_local_port_range"] == f"{RANGE[0]} {RANGE[1]}"
    assert ev["ip_local_reserved_ports"] == ""
    assert f["fix"] == {"net.ipv4.ip_local_reserved_ports": "61050"}

    ns.sysctl(net__ipv4__ip_local_reserved_ports="61050")
    run = ns.tcpaudit()
    assert run.findings("PORT002") == []
    assert run.outcome("PORT002") == "pass"
    assert run.snapshot["sysctls"]["net.ipv4.ip_local_reserved_ports"] == "61050"
