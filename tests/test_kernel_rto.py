"""Retransmission arithmetic (tcpaudit/kernel/rto.py), and the SYN retry count proved on the running kernel.

The namespace test connects to an address behind a veth pair whose far end owns no address (the SYNs vanish),
with tcp_syn_retries
and, on 6.5+, tcp_syn_linear_timeouts set inside a namespace it creates, and counts the SYN retransmissions in that
namespace's own TcpExt.TCPSynRetrans. It asserts on counts, never on elapsed time.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tcpaudit.kernel import rto
from tcpaudit.kernel.release import parse_release


def test_syn_timeline_before_6_5_doubles_from_one_second():
    t = rto.syn_timeline(6, 0)
    assert t.retransmits_at == (1, 3, 7, 15, 31, 63)
    assert t.gives_up_at == 127
    assert rto.syn_timeline(1, 0).gives_up_at == 3
    assert rto.syn_timeline(1, 0).packets == 2


def test_syn_timeline_with_linear_timeouts_default_is_131_s():
    t = rto.syn_timeline(6, 4)
    assert t.retransmits_at == (1, 2, 3, 4, 5, 7, 11, 19, 35, 67)
    assert t.gives_up_at == 131
    # the time budget tcp_model_timeout(tcp_syn_retries, 1 s) still applies: 1 retry + 4 linear = 2 retransmissions
    one = rto.syn_timeline(1, 4)
    assert one.retransmits_at == (1, 2) and one.gives_up_at == 3 and one.packets == 3
    assert rto.syn_timeline(2, 2).retransmits_at == (1, 2, 3, 5)
    assert rto.syn_timeline(2, 2).gives_up_at == 9


def test_model_timeout_matches_ip_sysctl_rst():
    # ip-sysctl.rst: "The default value of 15 yields a hypothetical timeout of 924.6 seconds"
    assert round(rto.model_timeout(15), 1) == 924.6
    assert round(rto.model_timeout(3), 1) == 3.0


def test_linear_timeouts_per_kernel():
    assert rto.linear_timeouts_for((6, 1, 0)) == 0
    assert rto.linear_timeouts_for((6, 5, 0)) == 4
    assert rto.linear_timeouts_for((6, 8, 0), 0) == 0
    assert rto.linear_timeouts_for(None) is None


def _ns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if shutil.which("ip") is None:
        return "iproute2 `ip` is not installed"
    return None


@pytest.fixture
def netns() -> Iterator[str]:
    reason = _ns_unavailable()
    if reason:
        pytest.skip(reason)
    name = f"ta-trust-rto{secrets.token_hex(3)}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"`ip netns add` failed: {r.stderr.strip()[:200]}")
    try:
        for cmd in (
            ["ip", "link", "set", "lo", "up"],
            ["ip", "link", "add", "ta-trust-v0", "type", "veth", "peer", "name", "ta-trust-v1"],
            ["ip", "addr", "add", "10.251.7.1/24", "dev", "ta-trust-v0"],
            ["ip", "link", "set", "ta-trust-v0", "up"],
            ["ip", "link", "set", "ta-trust-v1", "up"],
            # a permanent neighbour whose MAC nobody owns: the SYNs leave v0 and are discarded on v1
            [
                "ip",
                "neigh",
                "add",
                "10.251.7.2",
                "lladdr",
                "02:00:00:00:07:02",
                "dev",
                "ta-trust-v0",
                "nud",
                "permanent",
            ],
        ):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True, capture_output=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


_PROBE = r"""
import errno, socket, sys
def syn_retrans():
    lines = open("/proc/net/netstat").read().splitlines()
    for head, vals in zip(lines[::2], lines[1::2]):
        if head.startswith("TcpExt:"):
            return int(dict(zip(head.split()[1:], vals.split()[1:]))["TCPSynRetrans"])
before = syn_retrans()
s = socket.socket()
try:
    s.connect(("10.251.7.2", 9))
    print("connected?")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno), syn_retrans() - before)
"""


def _write(ns: str, key: str, value: str) -> None:
    path = "/proc/sys/" + key.replace(".", "/")
    subprocess.run(["ip", "netns", "exec", ns, "sh", "-c", f"echo {value} > {path}"], check=True)


def _probe(ns: str) -> tuple[str, int]:
    r = subprocess.run(
        ["ip", "netns", "exec", ns, sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=60
    )
    err, _, n = r.stdout.strip().partition(" ")
    return err, int(n or -1)


@pytest.mark.parametrize(("retries", "linear"), [(1, 0), (1, 2), (2, 2)])
def test_syn_retransmissions_on_this_kernel(netns, retries, linear):
    release = parse_release(platform.release())
    has_linear = os.path.exists("/proc/sys/net/ipv4/tcp_syn_linear_timeouts")
    assert has_linear == (tuple(release.version[:2]) >= rto.LINEAR_SINCE)
    if linear and not has_linear:
        pytest.skip("this kernel predates tcp_syn_linear_timeouts (6.5)")
    _write(netns, "net.ipv4.tcp_syn_retries", str(retries))
    if has_linear:
        _write(netns, "net.ipv4.tcp_syn_linear_timeouts", str(linear))
    err, retrans = _probe(netns)
    assert err == "ETIMEDOUT"
    expected = rto.syn_timeline(retries, rto.linear_timeouts_for(tuple(release.version), linear) or 0)
    assert retrans == len(expected.retransmits_at)
