"""TCP013's arithmetic proved on the running kernel: tcp_retries2 ends an established connection after
tcp_model_timeout(tcp_retries2, 200 ms), i.e. after rto.data_timeline(...) retransmissions on a 200 ms-RTO path.

Two namespaces it creates (`ta-r16c-*`, `ta-r16s-*`) joined by a veth pair; the client connects and exchanges one byte
with the server, then the client's neighbour entry for the server is replaced by a MAC nobody owns, so every further
segment leaves the client and is discarded. The test counts the client namespace's own Tcp.RetransSegs until recv()
fails with ETIMEDOUT. It asserts on counts and the error, never on elapsed time.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tcpaudit.kernel import rto

_SERVER = r"""
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.251.9.2", 7000)); s.listen(1)
print("READY", flush=True)
c, _ = s.accept()
c.sendall(c.recv(1))
sys.stdin.read()
"""

_CLIENT = r"""
import errno, socket, subprocess, sys
def retrans():
    lines = open("/proc/net/snmp").read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("Tcp:"):
            return int(dict(zip(head.split()[1:], vals.split()[1:]))["RetransSegs"])
s = socket.create_connection(("10.251.9.2", 7000), timeout=30)
s.sendall(b"x"); assert s.recv(1) == b"x"
subprocess.run(["ip", "neigh", "replace", "10.251.9.2", "lladdr", "02:00:00:00:09:02", "dev", sys.argv[1],
                "nud", "permanent"], check=True)
before = retrans()
s.settimeout(120)
s.sendall(b"y")
try:
    s.recv(1)
    print("received?")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), retrans() - before)
"""


def _ns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 `ip` is not installed"
    return None


@pytest.fixture
def pair() -> Iterator[tuple[str, str, str]]:
    reason = _ns_unavailable()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(2)
    client, server, vc, vs = f"ta-r16c-{tag}", f"ta-r16s-{tag}", f"ta-r16c{tag}", f"ta-r16s{tag}"
    made: list[str] = []
    try:
        for ns in (client, server):
            r = subprocess.run(["ip", "netns", "add", ns], capture_output=True, text=True)
            if r.returncode != 0:
                pytest.skip(f"`ip netns add` failed: {r.stderr.strip()[:200]}")
            made.append(ns)
        steps = [
            ["ip", "link", "add", vc, "netns", client, "type", "veth", "peer", "name", vs, "netns", server],
            ["ip", "-n", client, "addr", "add", "10.251.9.1/24", "dev", vc],
            ["ip", "-n", server, "addr", "add", "10.251.9.2/24", "dev", vs],
            ["ip", "-n", client, "link", "set", vc, "up"],
            ["ip", "-n", server, "link", "set", vs, "up"],
            ["ip", "-n", client, "link", "set", "lo", "up"],
            ["ip", "-n", server, "link", "set", "lo", "up"],
        ]
        for cmd in steps:
            subprocess.run(cmd, check=True, capture_output=True)
        yield client, server, vc
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _write(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}"], check=True)


@pytest.mark.parametrize("retries2", [2, 3])
def test_retries2_retransmissions_on_this_kernel(pair, retries2):
    client, server, dev = pair
    _write(client, "net.ipv4.tcp_retries2", str(retries2))
    _write(client, "net.ipv4.tcp_early_retrans", "0")  # no tail loss probe: only RTO retransmissions count
    srv = subprocess.Popen(
        ["ip", "netns", "exec", server, sys.executable, "-c", _SERVER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert srv.stdout is not None and srv.stdout.readline().strip() == "READY"
        r = subprocess.run(
            ["ip", "netns", "exec", client, sys.executable, "-c", _CLIENT, dev],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        srv.kill()
        srv.wait()
    err, _, n = r.stdout.strip().partition(" ")
    assert err == "ETIMEDOUT", (r.stdout, r.stderr)
    # on a veth path the RTO is the 200 ms minimum (plus a few ms), so the budget allows exactly this many
    assert int(n) == len(rto.data_timeline(retries2).retransmits_at)
