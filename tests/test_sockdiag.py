"""The local collector's socket table over NETLINK_SOCK_DIAG (tcpaudit/collect/sockdiag.py).

The authority is `ss` itself: in a fresh namespace holding every kind of socket a rule looks at, the
netlink columns must equal what tcpaudit's ss parser reads from `ss -tanoeH` / `ss -tinH` on the same
sockets (timers and idle times within the rounding ss applies for display). Then the fallbacks against a
kernel that really refuses the request, and the reply parser against hostile bytes.
"""

from __future__ import annotations

import json
import os
import socket
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tcpaudit.collect import sockdiag
from tcpaudit.collect.sockdiag import DumpParser, SockDiagUnavailable

from .netns import PYTHON, make_netns  # noqa: F401 - fixture

CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
EXAMPLES = int(os.environ.get("TCPAUDIT_FUZZ_EXAMPLES") or 0) or 300

# Every state and address shape the rules read: listeners (IPv4, dual-stack IPv6, IPv6-only), ESTAB
# pairs (IPv4, IPv6, IPv4-mapped), a keepalive timer, TIME-WAIT, CLOSE-WAIT / FIN-WAIT-2, a full accept
# queue (recv_q/send_q of a listener).
SOCKETS = r"""
srv = socket.socket(); srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 7500)); srv.listen(8)
dual = socket.socket(socket.AF_INET6); dual.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
dual.bind(("::", 7501)); dual.listen(3)
only6 = socket.socket(socket.AF_INET6); only6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
only6.bind(("::", 7502)); only6.listen(5)
full = socket.socket(); full.bind(("127.0.0.1", 7503)); full.listen(1)
held = []
for _ in range(3):
    c = socket.create_connection(("127.0.0.1", 7500)); held += [c, srv.accept()[0]]
c = socket.create_connection(("127.0.0.1", 7500)); a = srv.accept()[0]; c.close(); a.close()  # TIME-WAIT
c = socket.create_connection(("::1", 7501)); held += [c, dual.accept()[0]]
c = socket.create_connection(("127.0.0.1", 7501)); held += [c, dual.accept()[0]]  # IPv4-mapped
c = socket.create_connection(("127.0.0.1", 7500)); a = srv.accept()[0]; a.close(); held.append(c)  # half-closed
k = socket.create_connection(("127.0.0.1", 7500)); held += [k, srv.accept()[0]]
k.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
k.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, 600)
for _ in range(3):  # backlog 1: the accept queue fills, the rest wait in SYN-SENT / SYN-RECV
    s = socket.socket(); s.setblocking(False); s.connect_ex(("127.0.0.1", 7503)); held.append(s)
time.sleep(0.5)
ready()
for _ in commands():
    pass
"""

COMPARE = r"""
import json, subprocess, sys
from tcpaudit.collect.parsers import parse_ss_columns, parse_ss_detail_fast
from tcpaudit.collect.sockdiag import dump_tcp
nl, truncated = dump_tcp()
ss = parse_ss_columns(subprocess.run(["ss", "-tanoeH"], capture_output=True, text=True, check=True).stdout)
detail = parse_ss_detail_fast(subprocess.run(["ss", "-tinH", "state", "established"], capture_output=True,
                                             text=True, check=True).stdout)
print(json.dumps({"nl": nl, "truncated": truncated, "ss": ss,
                  "detail": [[list(k), list(v)] for k, v in detail.items()]}))
"""


def _rows(cols: dict[str, list]) -> dict[tuple, dict]:
    n = len(cols["state"])
    key = ("state", "local_addr", "local_port", "remote_addr", "remote_port")
    return {tuple(cols[k][i] for k in key): {c: cols[c][i] for c in cols} for i in range(n)}


@pytest.mark.root
def test_netlink_table_equals_what_ss_prints(make_netns) -> None:  # noqa: F811
    ns = make_netns()
    ns.spawn(SOCKETS).ready()
    r = ns.run([PYTHON, "-c", COMPARE], cwd="/")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["truncated"] is False
    nl, ss = _rows(out["nl"]), _rows(out["ss"])
    assert set(nl) == set(ss)
    states = {k[0] for k in nl}
    assert {"LISTEN", "ESTAB", "TIME-WAIT", "CLOSE-WAIT", "FIN-WAIT-2"} <= states, states
    # the dual-stack listener reads as ss prints it ("*" -> 0.0.0.0), the IPv6-only one as [::]
    assert ("LISTEN", "0.0.0.0", 7501, "0.0.0.0", 0) in nl
    assert ("LISTEN", "::", 7502, "::", 0) in nl and nl[("LISTEN", "::", 7502, "::", 0)]["family"] == 6
    assert any(k[1] == "::ffff:127.0.0.1" for k in nl)
    detail = {tuple(k): v for k, v in out["detail"]}
    exact = ("family", "recv_q", "send_q", "timer", "uid", "inode")
    for k, a in nl.items():
        b = ss[k]
        assert {c: a[c] for c in exact} == {c: b[c] for c in exact}, k
        if b["timer"] is not None:
            # ss prints the kernel's milliseconds rounded for display ("119min", "59sec")
            assert abs(a["timer_ms"] - b["timer_ms"]) <= max(1000, b["timer_ms"] // 100), k
            if b["timer"] != "on":
                assert a["retrans"] == b["retrans"], k
        else:
            assert a["timer_ms"] is None and a["retrans"] is None, k
        if k[0] == "ESTAB":
            snd, rcv = detail[k[1:]]
            assert a["lastsnd_ms"] is not None and a["lastrcv_ms"] is not None, k
            for mine, theirs in ((a["lastsnd_ms"], snd), (a["lastrcv_ms"], rcv)):
                # taken moments apart; ss prints nothing for 0
                assert theirs is None and mine < 5000 or theirs is not None and abs(mine - theirs) < 5000, k
        else:
            assert a["lastsnd_ms"] is None and a["lastrcv_ms"] is None, k
    listener = nl[("LISTEN", "127.0.0.1", 7503, "0.0.0.0", 0)]
    assert listener["send_q"] == 1 and listener["recv_q"] >= 1  # backlog 1, queue full
    keepalive = [a for a in nl.values() if a["timer"] == "keepalive"]
    assert len(keepalive) == 1 and 590_000 < keepalive[0]["timer_ms"] <= 600_000


CAPTURE = r"""
import json, sys
from tcpaudit.collect import sockdiag
from tcpaudit.collect.build import build_snapshot
from tcpaudit.collect.local import capture_local
if sys.argv[1] == "refused":
    sockdiag.NETLINK_SOCK_DIAG = 31  # no such netlink family: the kernel refuses the socket (EPROTONOSUPPORT)
snap = build_snapshot(capture_local(table_cap=int(sys.argv[2])))
t = snap.sockets
print(json.dumps({"source": t.source, "detail": t.detail, "total": t.total, "counts": t.state_counts,
                  "gaps": [[g.item, g.reason.value, g.detail] for g in snap.gaps]}))
"""


@pytest.mark.root
@pytest.mark.parametrize("mode", ["netlink", "refused"])
def test_collector_uses_netlink_and_falls_back_to_ss_when_refused(make_netns, mode: str) -> None:  # noqa: F811
    ns = make_netns()
    ns.spawn(SOCKETS).ready()
    full = ns.run([PYTHON, "-c", CAPTURE, mode, "1000000"], cwd="/")
    assert full.returncode == 0, full.stderr
    out = json.loads(full.stdout)
    assert out["source"] == ("netlink" if mode == "netlink" else "ss")
    assert out["detail"] == ("netlink" if mode == "netlink" else "ss-i")
    assert out["counts"]["ESTAB"] >= 10 and out["counts"]["TIME-WAIT"] == 1
    assert not [g for g in out["gaps"] if g[0] in ("sock_diag", "ss", "ss-detail")]
    # the local cap cuts the table the same way on both paths, and says so
    capped = json.loads(ns.run([PYTHON, "-c", CAPTURE, mode, "4"], cwd="/").stdout)
    assert capped["total"] == 4
    item = "sock_diag" if mode == "netlink" else "ss"
    assert [item, "truncated", "stopped after 4 sockets; counts are lower bounds"] in capped["gaps"]


def test_refused_request_is_unavailable_not_a_crash(monkeypatch) -> None:
    monkeypatch.setattr(sockdiag, "NETLINK_SOCK_DIAG", 31)
    with pytest.raises(SockDiagUnavailable, match="netlink socket"):
        sockdiag.dump_tcp(timeout_s=5)


# ---- the reply parser against hostile bytes ----------------------------------------------------------


def _message(
    state: int = 1, family: int = socket.AF_INET, src: bytes = b"\x7f\0\0\x01" + bytes(12), attrs: bytes = b""
) -> bytes:
    # ports in network byte order, as the kernel sends them: 80 and 12345
    body = (
        struct.pack(
            "=BBBB 2s2s 16s16s I 8s IIIII",
            family,
            state,
            0,
            0,
            (80).to_bytes(2, "big"),
            (12345).to_bytes(2, "big"),
            src,
            src,
            0,
            bytes(8),
            0,
            0,
            0,
            0,
            0,
        )
        + attrs
    )
    return struct.pack("=IHHII", 16 + len(body), 20, 2, 1, 0) + body


def _info_attr(lastsnd: int, lastrcv: int) -> bytes:
    info = bytearray(104)
    struct.pack_into("=I4xI", info, 44, lastsnd, lastrcv)
    return struct.pack("=HH", 4 + len(info), 2) + bytes(info)


DONE = struct.pack("=IHHII i", 20, 3, 2, 1, 0, 0)


def test_parser_reads_messages_attributes_and_done() -> None:
    p = DumpParser()
    assert p.feed(_message() * 3) is False  # the uniform fast path: more to come
    assert p.feed(_message(attrs=_info_attr(1234, 5678)) + _message(state=6) + DONE) is True
    cols = p.columns()
    assert cols["state"] == ["ESTAB"] * 4 + ["TIME-WAIT"]
    assert cols["local_addr"][0] == "127.0.0.1" and cols["local_port"][0] == 80 and cols["remote_port"][0] == 12345
    assert cols["lastsnd_ms"] == [None, None, None, 1234, None] and cols["lastrcv_ms"][3] == 5678


def test_parser_limit_and_errors() -> None:
    p = DumpParser(limit=2)
    assert p.feed(_message() * 5) is True and p.truncated and len(p.columns()["state"]) == 2
    err = struct.pack("=IHHII i", 36, 2, 0, 1, 0, -2) + bytes(16)
    with pytest.raises(SockDiagUnavailable, match="ENOENT"):
        DumpParser().feed(err)
    with pytest.raises(SockDiagUnavailable, match="malformed"):
        DumpParser().feed(struct.pack("=IHHII", 9999, 20, 2, 1, 0) + bytes(72))  # longer than the batch


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=CI,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    st.one_of(
        st.binary(max_size=4096),
        st.lists(
            st.sampled_from(
                [
                    _message(),
                    _message(state=6),
                    _message(attrs=_info_attr(1, 2)),
                    _message(family=socket.AF_INET6, src=bytes(16)),
                    DONE,
                ]
            ),
            max_size=30,
        )
        .map(b"".join)
        .flatmap(
            lambda b: st.tuples(st.just(b), st.integers(0, max(0, len(b))), st.binary(max_size=8)).map(
                lambda t: t[0][: t[1]] + t[2] + t[0][t[1] :]
            )
        ),
    )
)
def test_parser_never_fails_but_with_its_typed_error(buf: bytes) -> None:
    p = DumpParser(limit=1000)
    try:
        p.feed(buf)
    except SockDiagUnavailable:
        return
    cols = p.columns()
    n = len(cols["state"])
    assert n <= len(buf) // 88
    assert all(len(v) == n for v in cols.values())
