"""Parsers against real captures (fixtures/proc, fixtures/corpus)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tcpaudit.collect import parsers as p

FIX = Path(__file__).resolve().parents[1] / "fixtures"
BUSY = FIX / "proc" / "busy-netns-6.18"
CORPUS = FIX / "corpus"


def read(path: Path) -> str:
    return path.read_text()


def test_ss_and_proc_net_tcp_agree_on_a_real_capture() -> None:
    ss = p.parse_ss_table(read(BUSY / "ss-tanoeH.txt"))
    proc = p.parse_proc_net_tcp(read(BUSY / "tcp")) + p.parse_proc_net_tcp(read(BUSY / "tcp6"))
    key = lambda s: (s.state, s.local_addr, s.local_port, s.remote_addr, s.remote_port)  # noqa: E731
    assert sorted(map(key, ss)) == sorted(map(key, proc))
    states = sorted(s.state for s in ss)
    assert states.count("LISTEN") == 2 and "FIN-WAIT-2" in states and "CLOSE-WAIT" in states
    assert "TIME-WAIT" in states and states.count("ESTAB") == 6
    ka = [s for s in ss if s.timer == "keepalive"]
    assert len(ka) == 1 and 0 < ka[0].timer_ms <= 30000
    assert {s.family for s in ss} == {4, 6}
    # ss -e omits uid 0; /proc/net/tcp has it
    assert all(s.uid == 0 for s in ss if s.inode)


def test_ss_detail_gives_idle_times_for_every_established_socket() -> None:
    detail = p.parse_ss_detail(read(BUSY / "ss-tinH-established.txt"))
    ss = [s for s in p.parse_ss_table(read(BUSY / "ss-tanoeH.txt")) if s.state == "ESTAB"]
    assert len(detail) == len(ss)
    for s in ss:
        snd, rcv = detail[(s.local_addr, s.local_port, s.remote_addr, s.remote_port)]
        assert snd is not None and rcv is not None and 0 <= snd < 60000


def test_counters_from_a_real_kernel() -> None:
    netstat = p.parse_counter_pairs(read(BUSY / "netstat"), "netstat")
    snmp = p.parse_counter_pairs(read(BUSY / "snmp"), "snmp")
    # PAWSPassive went with tcp_tw_recycle in 4.12; modern kernels count PAWSActive/PAWSEstab/PAWSTimewait
    assert "PAWSPassive" not in netstat["TcpExt"] and "PAWSEstab" in netstat["TcpExt"]
    assert "TCPChallengeACK" in netstat["TcpExt"]
    assert snmp["Tcp"]["ActiveOpens"] >= 5 and snmp["Tcp"]["MaxConn"] == -1
    sockstat = p.parse_sockstat(read(BUSY / "sockstat"), "sockstat")
    assert sockstat["TCP"]["tw"] >= 1 and "inuse" in sockstat["TCP"]
    ct = p.parse_conntrack_stat(read(BUSY / "stat_nf_conntrack"), "nf_conntrack")
    assert ct and {"insert_failed", "drop", "early_drop", "search_restart"} <= set(ct[0])


def test_third_party_captures() -> None:
    netstat = p.parse_counter_pairs(read(CORPUS / "runtime/node_exporter-fixture-proc-net-netstat.txt"), "ne")
    assert netstat["TcpExt"]["TW"] == 388812 and netstat["TcpExt"]["PAWSEstab"] == 6
    snmp = p.parse_counter_pairs(read(CORPUS / "runtime/node_exporter-fixture-proc-net-snmp.txt"), "ne")
    assert snmp["Tcp"]["ActiveOpens"] == 3556 and snmp["Tcp"]["AttemptFails"] == 341
    old = p.parse_sockstat(read(CORPUS / "runtime/node_exporter-fixture-proc-net-sockstat-rhel4.txt"), "rhel4")
    assert old["TCP"]["tw"] == 4 and "TCP6" not in old
    for name in (
        "node_exporter-fixture-proc-net-stat-nf_conntrack.txt",
        "elastic-beats-fixture-proc-net-stat-nf_conntrack.txt",
    ):
        rows = p.parse_conntrack_stat(read(CORPUS / "runtime" / name), name)
        assert len(rows) == 4 and all(r["insert_failed"] == 0 and r["drop"] == 0 for r in rows)
    tcp = p.parse_proc_net_tcp(read(CORPUS / "runtime/node_exporter-fixture-proc-net-tcp.txt"))
    assert [s.state for s in tcp] == ["LISTEN", "ESTAB"] and tcp[0].local_port == 22
    assert tcp[1].timer == "keepalive" and tcp[1].send_q == 0x15  # tr 02: sk_timer, i.e. keepalive
    old_ss = p.parse_ss_table(read(CORPUS / "runtime/datadog-network-fixture-ss-ipv4-tcp.txt"))
    assert sorted(s.state for s in old_ss).count("TIME-WAIT") == 2


def test_sysctl_dump_with_annotations_and_errors() -> None:
    d = p.parse_sysctl_dump(read(CORPUS / "sysctl-dump/centos7.2-3.10.0-327-ceph-node-sysctl-a-annotated.txt"))
    assert d["kernel.osrelease"] == "3.10.0-327.el7.x86_64"
    assert d["net.ipv4.tcp_tw_recycle"] == "0" and d["net.ipv4.ip_local_port_range"] == "32768 61000"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]:443", ("::1", 443)),
        ("0.0.0.0:*", ("0.0.0.0", 0)),
        ("*:*", ("0.0.0.0", 0)),
        ("[::ffff:10.0.0.1]:5432", ("::ffff:10.0.0.1", 5432)),
        ("10.0.0.1%eth0:53", ("10.0.0.1", 53)),
        ("[fe80::1%eth0]:22", ("fe80::1", 22)),
    ],
)
def test_endpoints(text: str, expected: tuple[str, int]) -> None:
    assert p.split_endpoint(text, "t") == expected


@pytest.mark.parametrize("bad", ["127.0.0.1", "1.2.3.4:99999", "1.2.3.4:-1", "1.2.3.4:http"])
def test_bad_endpoints_raise_parse_error(bad: str) -> None:
    with pytest.raises(p.ParseError):
        p.split_endpoint(bad, "t")


@pytest.mark.parametrize(
    "fn", [p.parse_counter_pairs, p.parse_sockstat, p.parse_conntrack_stat, p.parse_ss_table, p.parse_proc_net_tcp]
)
def test_truncation_gives_parse_error_or_data(fn) -> None:  # type: ignore[no-untyped-def]
    src = {
        p.parse_counter_pairs: "netstat",
        p.parse_sockstat: "sockstat",
        p.parse_conntrack_stat: "stat_nf_conntrack",
        p.parse_ss_table: "ss-tanoeH.txt",
        p.parse_proc_net_tcp: "tcp",
    }[fn]
    text = read(BUSY / src)
    for cut in range(0, len(text), 7):
        try:
            fn(text[:cut], "cut")
        except p.ParseError as exc:
            assert str(exc).startswith("cut:")


def test_socket_numbers_beyond_what_a_kernel_prints_are_parse_errors():
    """ss fields are unsigned and at most 64-bit: a saved snapshot bounds them the same way, so a table that
    parsed must load again (tcpaudit.snapshot's Unsigned columns)."""
    line = "ESTAB 0 0 10.0.0.1:40000 10.0.0.2:80 uid:{uid} ino:{ino} sk:1"
    ok = p.parse_ss_columns(line.format(uid=1000, ino=2**64 - 1))
    assert ok["inode"] == [2**64 - 1] and ok["uid"] == [1000]
    for uid, ino in ((1000, 2**64), (-1, 5), (10**25, 5)):
        with pytest.raises(p.ParseError):
            p.parse_ss_columns(line.format(uid=uid, ino=ino))
    with pytest.raises(p.ParseError, match="out of range"):
        p.parse_ss_columns("ESTAB -1 0 10.0.0.1:40000 10.0.0.2:80")
    with pytest.raises(p.ParseError, match="out of range"):
        p.parse_counter_pairs("TcpExt: A\nTcpExt: 18446744073709551616\n", "netstat")
    assert p.parse_counter_pairs("Tcp: MaxConn\nTcp: -1\n", "snmp") == {"Tcp": {"MaxConn": -1}}
