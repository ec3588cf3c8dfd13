"""Real kernel counters moving between the two samples of `--sample 2`.

A listener with backlog 1 that never accept()s, and a client that keeps connecting to it: once the
accept queue holds its two connections, every SYN is dropped and counted in TcpExt.ListenOverflows and
ListenDrops. TCP006 (accept backlog) reads those counters through Facts.counter_evidence and reports
the rate between the samples.
"""

from __future__ import annotations

import pytest

from tcpaudit.audit import facts_for
from tcpaudit.context import Context
from tcpaudit.snapshot import Snapshot

from .netns import make_netns  # noqa: F401 - fixture

pytestmark = pytest.mark.root

FLOOD = r"""
import collections, threading
port = int(sys.argv[1])
srv = socket.socket()
srv.bind(("127.0.0.1", port))
srv.listen(1)  # never accept()ed: the queue fills with 2 connections, then SYNs are dropped
stop = threading.Event()
attempts = [0]
def flood():
    ring = collections.deque()
    while not stop.is_set():
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        ring.append(s)
        attempts[0] += 1
        if len(ring) > 200:
            ring.popleft().close()
        time.sleep(0.005)
    for s in ring:
        s.close()
t = threading.Thread(target=flood, daemon=True)
t.start()
time.sleep(0.3)
ready(port=port)
for cmd in commands():
    if cmd == "stop":
        stop.set()
        t.join()
        reply(attempts=attempts[0])
"""


def test_runtime_sample_reports_listen_overflow_rate(make_netns) -> None:  # noqa: F811
    ns = make_netns()
    flood = ns.spawn(FLOOD, "7200")
    flood.ready()
    run = ns.tcpaudit("--sample", "2")
    attempts = flood.send("stop")["attempts"]
    assert attempts > 100

    snap = run.snapshot
    prev = snap["previous"]
    assert prev is not None, "--sample must record the first counter sample"
    # the interval is the time between the two counter reads, not the length of the whole collection
    assert 1.9 <= prev["interval_s"] < 3.5, prev["interval_s"]
    before = prev["counters"]["netstat"]["TcpExt"]["ListenOverflows"]
    after = snap["counters"]["netstat"]["TcpExt"]["ListenOverflows"]
    assert after > before > 0, (before, after)
    # every counter family is in both samples
    for sample in (prev["counters"], snap["counters"]):
        assert {"TcpExt", "IpExt"} <= set(sample["netstat"])
        assert {"Ip", "Tcp", "Udp"} <= set(sample["snmp"])
        assert "TCP" in sample["sockstat"]
    assert snap["counters"]["snmp"]["Tcp"]["ActiveOpens"] >= prev["counters"]["snmp"]["Tcp"]["ActiveOpens"]

    (f,) = run.findings("TCP006")
    ev = f["evidence"]["ListenOverflows"]
    assert ev["total_since_boot"] == after
    assert ev["rate_per_s"] > 0
    expected = (after - before) / prev["interval_s"]
    assert ev["rate_per_s"] == pytest.approx(expected, rel=0.01, abs=0.01)
    assert ev["sample_interval_s"] == round(prev["interval_s"], 1)
    assert f["evidence"]["ListenDrops"]["rate_per_s"] > 0
    assert "rising" in f["explanation"]
    # the full listener shows in the socket table too: Recv-Q 2 of a backlog of 1
    assert any("127.0.0.1:7200" in x for x in f["evidence"].get("listeners_accept_queue_near_full", []))

    # Facts gives every counter the same evidence shape, conntrack statistics (summed over CPUs) included
    facts = facts_for(Snapshot.model_validate(snap), Context())
    assert facts.counter_evidence("TcpExt.ListenOverflows") == {k: v for k, v in ev.items()}
    assert facts.counter_rate("Tcp.ActiveOpens") > 0  # the flood's connect()s
    rows = snap["conntrack"]["stats_per_cpu"]
    if rows:  # nf_conntrack loaded: its per-CPU statistics are in both samples
        assert len(prev["conntrack_stats_per_cpu"]) == len(rows)
        ct = facts.counter_evidence("conntrack.invalid")
        assert ct["total_since_boot"] == sum(r["invalid"] for r in rows)
        assert ct["rate_per_s"] >= 0 and ct["sample_interval_s"] == ev["sample_interval_s"]
        assert facts.counter_evidence("conntrack.no_such_counter") is None


def test_runtime_sample_without_movement_has_zero_rate(make_netns) -> None:  # noqa: F811
    """A quiet namespace: counters present in both samples, rate 0, so the counter alone raises nothing."""
    ns = make_netns()
    run = ns.tcpaudit("--sample", "1")
    snap = run.snapshot
    assert snap["previous"] is not None and 0.9 <= snap["previous"]["interval_s"] < 2.5
    assert snap["previous"]["counters"]["netstat"]["TcpExt"] == snap["counters"]["netstat"]["TcpExt"]
    assert run.findings("TCP006") == []
