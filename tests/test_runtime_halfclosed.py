"""Real kernel, real sockets: half-closed connections (TCP010).

- the client closes, the server never does: CLOSE-WAIT on the server, orphaned FIN-WAIT-2 (timer, ino:0)
  on the client, bounded by tcp_fin_timeout -> TCP010 reports the CLOSE-WAIT pile-up only;
- the client half-closes (shutdown(SHUT_WR)) and keeps the descriptor, over a veth pair: FIN-WAIT-2 with
  no timer -> TCP010 reports the half-closed leak; once the client close()s, the sockets are orphaned,
  get the fin-wait timer, and TCP010 passes.
"""

from __future__ import annotations

import pytest

from .netns import make_netns, veth  # noqa: F401 - fixture

pytestmark = pytest.mark.root

SERVER_NEVER_CLOSES = r"""
# A server on HOST:PORT that accepts and never reads or close()s, and CLIENTS clients (in this process
# too) that connect and close(): their sockets are orphaned in FIN-WAIT-2, the server's sit in CLOSE-WAIT.
host, port, clients = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((host, port))
srv.listen(1024)
accepted = []
for _ in range(clients):
    c = socket.create_connection((host, port))
    accepted.append(srv.accept()[0])
    c.close()
wait_states({"CLOSE-WAIT": clients, "FIN-WAIT-2": clients})  # the FINs and ACKs have landed
ready(port=port)
for cmd in commands():
    if cmd == "server-close":
        for a in accepted:
            a.close()
        accepted.clear()
        wait_states({"CLOSE-WAIT": 0, "LAST-ACK": 0, "FIN-WAIT-2": 0, "TIME-WAIT": clients})
        reply(closed=True)
"""

SERVER = r"""
host, port = sys.argv[1], int(sys.argv[2])
srv = socket.socket()
srv.bind((host, port))
srv.listen(1024)
accepted = []
srv.settimeout(0.2)
ready(port=port)
import threading
def serve():
    while True:
        try:
            accepted.append(srv.accept()[0])  # accepted, never read, never closed
        except socket.timeout:
            continue
        except OSError:
            return
threading.Thread(target=serve, daemon=True).start()
for _ in commands():
    pass
"""

HALF_CLOSER = r"""
host, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
held = []
for _ in range(n):
    c = socket.create_connection((host, port))
    c.shutdown(socket.SHUT_WR)  # FIN sent; the descriptor stays open
    held.append(c)
wait_states({"FIN-WAIT-2": n})  # the server acknowledged every FIN
ready(ports=[c.getsockname()[1] for c in held])
for cmd in commands():
    if cmd == "close":
        for c in held:
            c.close()
        held.clear()
        wait_states({"FIN-WAIT-2": n})  # orphaned now, still FIN-WAIT-2
        reply(closed=True)
"""


def test_runtime_TCP010_close_wait_pileup_with_orphaned_fin_wait2(make_netns) -> None:  # noqa: F811
    ns = make_netns(net__ipv4__tcp_fin_timeout=60)
    n = 120  # above the default close_wait_warn of 100
    proc = ns.spawn(SERVER_NEVER_CLOSES, "127.0.0.1", "7000", str(n))
    proc.ready()

    run = ns.tcpaudit()
    counts = run.snapshot["sockets"]["state_counts"]
    # the kernel state is what the test meant to create
    assert counts.get("CLOSE-WAIT") == n and counts.get("FIN-WAIT-2") == n, counts
    (f,) = run.findings("TCP010")
    ev = f["evidence"]
    assert f["severity"] == "medium"
    assert ev["close_wait"] == n
    assert ev["close_wait_unread"] == n  # nobody read the FIN: Recv-Q 1 on every one
    assert ev["close_wait_peer_fin_wait2_on_this_host"] == n
    assert ev["close_wait_top"][0]["where"] == "local port 7000 (listener)"
    assert ev["close_wait_top"][0]["count"] == n
    assert ev["close_wait_top"][0]["uids"] == [0]
    # the clients' FIN-WAIT-2 sockets are orphaned and bounded by tcp_fin_timeout: no leak
    assert ev["fin_wait2_orphaned"] == n
    assert ev["fin_wait2_without_timer"] == 0
    assert ev["tcp_fin_timeout"] == 60
    assert 0 <= ev["fin_wait2_orphaned_oldest_s"] < 30  # ages from the timewait timer: seconds old, not minutes
    assert "CLOSE-WAIT" in f["explanation"] and "orphaned FIN-WAIT-2" in f["explanation"]

    # the application finally closes: CLOSE-WAIT -> LAST-ACK -> gone; the clients go to TIME-WAIT
    proc.send("server-close")
    run = ns.tcpaudit()
    counts = run.snapshot["sockets"]["state_counts"]
    assert "CLOSE-WAIT" not in counts and "FIN-WAIT-2" not in counts, counts
    assert counts.get("TIME-WAIT") == n
    assert run.outcome("TCP010") == "pass"


def test_runtime_TCP010_half_closed_fin_wait2_without_timer(make_netns) -> None:  # noqa: F811
    client, server = make_netns(), make_netns()
    caddr, saddr = veth(client, server)
    srv = server.spawn(SERVER, saddr, "7000")
    srv.ready()
    n = 30  # above the default fin_wait2_leak_warn of 20
    half = client.spawn(HALF_CLOSER, saddr, "7000", str(n))
    half.ready()

    run = client.tcpaudit()
    table = run.snapshot["sockets"]
    fw2 = [i for i, s in enumerate(table["state"]) if s == "FIN-WAIT-2"]
    assert len(fw2) == n
    assert all(table["timer"][i] is None and table["inode"][i] for i in fw2)  # no timer, descriptor open
    (f,) = run.findings("TCP010")
    ev = f["evidence"]
    assert f["severity"] == "medium"
    assert ev["fin_wait2_without_timer"] == n
    assert ev["fin_wait2_orphaned"] == 0
    assert ev["fin_wait2_without_timer_top"] == [{"where": f"to {saddr}:7000", "count": n, "uids": [0]}]
    assert "close_wait_top" not in ev  # the CLOSE-WAIT half lives on the server, in the other namespace
    assert "tcp_fin_timeout (60 s) does not apply" in f["explanation"]

    # the server side holds the matching CLOSE-WAIT sockets: n is below close_wait_warn there
    srun = server.tcpaudit()
    assert srun.snapshot["sockets"]["state_counts"].get("CLOSE-WAIT") == n
    assert srun.outcome("TCP010") == "pass"

    # close() the descriptors: now orphaned, the fin-wait timer bounds them, and nothing leaks
    half.send("close")
    run = client.tcpaudit()
    table = run.snapshot["sockets"]
    fw2 = [i for i, s in enumerate(table["state"]) if s == "FIN-WAIT-2"]
    assert len(fw2) == n
    assert all(table["timer"][i] == "timewait" and table["inode"][i] == 0 for i in fw2)
    assert run.outcome("TCP010") == "pass"
