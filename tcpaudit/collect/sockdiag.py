"""The TCP socket table straight from the kernel: NETLINK_SOCK_DIAG, the interface `ss` itself reads.

`ss -tanoeH` and `ss -tinH state established` print what the kernel hands them over sock_diag; at
200,000 sockets the two processes and the text they print cost more than tcpaudit's whole audit, and
parsing that text back cost more again (benchmarks/sockets_bench.py). One dump over a netlink socket
gives the same columns, with the ss -i idle times (tcp_info) of every full socket, for a fraction.

`dump_tcp()` returns the same columns as `parsers.SsTableParser` (parsers.SS_COLUMNS) plus
lastsnd_ms/lastrcv_ms, with the values ss would print:

- state: ss's names (snapshot.TCP_STATES; request sockets, TCP_NEW_SYN_RECV, show as SYN-RECV);
- timer, timer_ms, retrans: ss -o's `timer:(NAME,EXPIRES,RETRANS)`, from idiag_timer / idiag_expires /
  idiag_retrans, NAME as ss names the timer codes (tcp_timer_print in iproute2's misc/ss.c); no timer
  (code 0) is None in all three, as when ss prints none. timer_ms is the kernel's exact milliseconds
  where ss rounds them for display;
- uid, inode: ss -e's uid: and ino:;
- lastsnd_ms, lastrcv_ms: ss -i's lastsnd/lastrcv, tcp_info.tcpi_last_data_sent / _recv, for ESTAB
  sockets (the rows the ss detail pass covers); None elsewhere. ss prints a zero as nothing; here it is 0;
- local_addr, remote_addr, family: as parsing ss's text gives them. ss prints an IPv6 socket bound to the
  unspecified address without IPV6_V6ONLY (a dual-stack listener; INET_DIAG_SKV6ONLY is 0) as `*`
  (inet_addr_print), which the text parser reads as 0.0.0.0, family 4; the same here, so a host audited
  locally and over SSH (where the collector runs ss) sees the same table.

Layouts (include/uapi/linux/inet_diag.h, include/uapi/linux/tcp.h, include/uapi/linux/netlink.h;
unchanged since sock_diag arrived in 3.3, commit d366477a52f1 "sock_diag: Initial skeleton"):
  struct nlmsghdr      { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }                  16 bytes
  struct inet_diag_msg { u8 family, state, timer, retrans; struct inet_diag_sockid id;
                         u32 expires, rqueue, wqueue, uid, inode; }                            72 bytes
  struct inet_diag_sockid { be16 sport, dport; be32 src[4], dst[4]; u32 if; u32 cookie[2]; }
  struct tcp_info: tcpi_last_data_sent at byte 44, tcpi_last_data_recv at byte 52.

One request covers both families: the inet_diag_req (v1) dump, TCPDIAG_GETSOCK, is answered by
inet_diag_dump_compat with sdiag_family AF_UNSPEC, so the kernel walks its socket hash tables once for IPv4
and IPv6 together (net/ipv4/inet_diag.c; the replies carry nlmsg_type TCPDIAG_GETSOCK). The hash tables are
shared by every namespace and walked whole whichever namespace asks (262,144 established buckets on this
2-core VM): one walk instead of two saves ~3-4 ms per namespace in a `--all-netns` sweep. Where that request
is refused, the per-family SOCK_DIAG_BY_FAMILY dumps are used, as before.

Raises SockDiagUnavailable when the kernel or the sandbox refuses the interface (no AF_NETLINK, no
tcp_diag, a seccomp filter): the caller then runs `ss`, as before.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from itertools import compress
from typing import Any

from ..snapshot import TCP_STATES
from .parsers import SS_COLUMNS

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
_FAMILY_NAMES = {int(socket.AF_INET): "IPv4", int(socket.AF_INET6): "IPv6"}
TCPDIAG_GETSOCK = 18  # include/uapi/linux/inet_diag.h: the v1 request, answered for both families at once
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
INET_DIAG_INFO = 2
INET_DIAG_SKV6ONLY = 11
_ZERO16 = bytes(16)
ALL_STATES = 0xFFFFFFFF  # ss -a: every state, request sockets (TCP_NEW_SYN_RECV) included

# ss's names for idiag_timer (misc/ss.c, tcp_timer_print): 1 retransmit/probe ("on"), 2 keepalive,
# 3 TIME-WAIT, 4 zero-window probe; anything above 4 prints as "unknown". 0: no timer, ss prints none.
_TIMER_NAMES = ("off", "on", "keepalive", "timewait", "persist")

_REQUEST = struct.Struct("=IHHII BBBB I 48x")  # nlmsghdr + inet_diag_req_v2 (sockid zero: every socket)
# nlmsghdr + inet_diag_req: family, src_len, dst_len, ext, sockid (zero), states, dbs
_REQUEST_V1 = struct.Struct("=IHHII BBBB 48x II")
_HEADER = struct.Struct("=IHHII")
# nlmsghdr (length, type; flags, seq and pid skipped), then inet_diag_msg (interface and cookie skipped);
# the ports stay in network byte order here and are swapped (ntohs) by _columns.
_MESSAGE = struct.Struct("=IH10x BBBB HH 16s16s 4x8x IIIII")
_MESSAGE_SIZE = _MESSAGE.size  # 88
_ATTR = struct.Struct("=HH")
_LAST = struct.Struct("=I4xI")  # tcpi_last_data_sent, (tcpi_last_ack_sent), tcpi_last_data_recv
_LAST_OFFSET = 44
_ERRNO = struct.Struct("=i")
_RECV_BYTES = 1 << 16  # the kernel fills at most ~32 KiB per dump message batch (netlink_recvmsg)

SOCK_DIAG_COLUMNS = (*SS_COLUMNS, "lastsnd_ms", "lastrcv_ms")  # the ss columns, plus the idle times


class SockDiagUnavailable(Exception):
    """The kernel (or a sandbox) does not answer sock_diag TCP dumps here."""


class SockDiagTimeout(Exception):
    """The dump did not finish in time."""


def _address_column(families: list[int], raw: list[bytes]) -> list[str]:
    """inet_ntop of each 16-byte address field, once per distinct value: IPv4 for every row first (map at C
    speed; the few IPv6 rows get a meaningless IPv4 text there), then the IPv6 rows again, properly."""
    ntop, v4 = socket.inet_ntop, socket.AF_INET
    texts = {a: ntop(v4, a[:4]) for a in set(raw)}
    out = list(map(texts.__getitem__, raw))
    if socket.AF_INET6 in set(families):
        v6: dict[bytes, str] = {}
        for i in compress(range(len(raw)), map(socket.AF_INET6.__eq__, families)):
            a = raw[i]
            text = v6.get(a)
            if text is None:
                text = v6[a] = ntop(socket.AF_INET6, a)
            out[i] = text
    return out


class DumpParser:
    """The replies to sock_diag dump requests, one recv() batch at a time (feed), into raw rows.

    rows: the messages as _MESSAGE tuples; last: row -> (lastsnd, lastrcv) for ESTAB rows that carried
    tcp_info; dual: rows of IPv6 sockets bound to the unspecified address without IPV6_V6ONLY (dual-stack
    listeners). Anything that is not a well-formed reply raises SockDiagUnavailable: the caller falls back
    to ss rather than trust half a table.
    """

    def __init__(self, limit: int = 1_000_000, want_info: bool = True, msg_type: int = SOCK_DIAG_BY_FAMILY):
        self.limit, self.want_info = limit, want_info
        self.msg_type, self._type_bytes = msg_type, struct.pack("=H", msg_type)
        self.rows: list[tuple] = []
        self.last: dict[int, tuple[int, int]] = {}
        self.dual: set[int] = set()
        self.truncated = False

    def feed(self, buf: bytes, family: int = socket.AF_INET) -> bool:
        """Take one batch; True when this family's dump is over (NLMSG_DONE, or the limit reached)."""
        rows, limit = self.rows, self.limit
        end, off = len(buf), 0
        kind_wanted = self.msg_type
        if end and end % _MESSAGE_SIZE == 0 and buf[4:6] == self._type_bytes:
            # The common run: messages without attributes (TIME-WAIT sockets, or no extension asked for)
            # fill the whole batch, and struct unpacks them all at C speed. Any other length or type
            # anywhere in it sends the batch to the walk below.
            batch = list(_MESSAGE.iter_unpack(buf))
            if all(m[0] == _MESSAGE_SIZE and m[1] == kind_wanted for m in batch):
                room = limit - len(rows)
                base = len(rows)
                rows.extend(batch[:room])
                # no attributes, so no INET_DIAG_SKV6ONLY: ss prints an unspecified IPv6 address as "*"
                self.dual.update(
                    base + i for i, m in enumerate(batch[:room]) if m[2] == socket.AF_INET6 and m[8] == _ZERO16
                )
                if len(batch) >= room:
                    self.truncated = True
                    return True
                return False
        header, message, attr = _HEADER.unpack_from, _MESSAGE.unpack_from, _ATTR.unpack_from
        want_info, last, dual = self.want_info, self.last, self.dual
        while off + 16 <= end:
            length, kind = header(buf, off)[:2]
            if length < 16 or off + length > end:
                raise SockDiagUnavailable(f"netlink dump: malformed message (length {length})")
            if kind == kind_wanted and length >= _MESSAGE_SIZE:
                m = message(buf, off)
                estab, any6 = m[3] == 1 and want_info, m[2] == socket.AF_INET6 and m[8] == _ZERO16
                if estab or any6:
                    v6only = 0
                    a, stop = off + _MESSAGE_SIZE, off + length
                    while a + 4 <= stop:
                        alen, atype = attr(buf, a)
                        if alen < 4 or a + alen > stop:
                            break
                        if atype == INET_DIAG_INFO and estab and alen >= 4 + _LAST_OFFSET + 12:
                            last[len(rows)] = _LAST.unpack_from(buf, a + 4 + _LAST_OFFSET)
                        elif atype == INET_DIAG_SKV6ONLY and alen >= 5:
                            v6only = buf[a + 4]
                        a += (alen + 3) & ~3
                    if any6 and not v6only:
                        dual.add(len(rows))
                rows.append(m)
                if len(rows) >= limit:
                    self.truncated = True
                    return True
            elif kind == NLMSG_DONE:
                return True
            elif kind == NLMSG_ERROR:
                code = -_ERRNO.unpack_from(buf, off + 16)[0] if length >= 20 else 0
                raise SockDiagUnavailable(
                    f"netlink dump: {errno.errorcode.get(code, code)} "
                    f"({_FAMILY_NAMES.get(int(family), 'IPv4 and IPv6')})"
                )
            elif kind != kind_wanted:
                raise SockDiagUnavailable(f"netlink dump: unexpected message type {kind}")
            off += (length + 3) & ~3
        if off != end and end - off >= 4:  # trailing bytes that are not even a header
            raise SockDiagUnavailable(f"netlink dump: {end - off} stray bytes")
        return False

    def columns(self) -> dict[str, list[Any]]:
        return _columns(self.rows, self.last, self.dual)


def _dump_family(family: int, deadline: float, parser: DumpParser) -> None:
    """Ask for one family's TCP sockets and feed the replies to parser until the dump is over."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG)
    except (OSError, AttributeError) as exc:  # no AF_NETLINK (not Linux), or a sandbox that forbids it
        raise SockDiagUnavailable(f"netlink socket: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        ext = 1 << (INET_DIAG_INFO - 1) if parser.want_info else 0
        flags = NLM_F_REQUEST | NLM_F_DUMP
        if parser.msg_type == TCPDIAG_GETSOCK:  # both families (inet_diag_dump_compat)
            request = _REQUEST_V1.pack(_REQUEST_V1.size, TCPDIAG_GETSOCK, flags, 1, 0, 0, 0, 0, ext, ALL_STATES, 0)
        else:
            request = _REQUEST.pack(
                _REQUEST.size, SOCK_DIAG_BY_FAMILY, flags, 1, 0, family, socket.IPPROTO_TCP, ext, 0, ALL_STATES
            )
        try:
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            sock.send(request)
        except OSError as exc:
            raise SockDiagUnavailable(f"netlink request: {exc.strerror or exc}") from None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SockDiagTimeout()
            sock.settimeout(left)
            try:
                buf = sock.recv(_RECV_BYTES)
            except TimeoutError:
                raise SockDiagTimeout() from None
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise SockDiagUnavailable(f"netlink dump: {exc.strerror or exc}") from None
            if not buf:
                raise SockDiagUnavailable("netlink dump: the kernel closed the socket")
            if parser.feed(buf, family):
                return
    finally:
        sock.close()


def dump_tcp(
    timeout_s: float = 20.0, limit: int = 1_000_000, want_info: bool = True, proc_net: str = "/proc/net"
) -> tuple[dict[str, list[Any]], bool]:
    """Every TCP socket of this network namespace, IPv4 then IPv6, as columns (SOCK_DIAG_COLUMNS).

    "This" namespace is the calling thread's: a socket belongs to the namespace it was created in, and the
    netlink socket is created here, in the caller's thread. `proc_net` is where that namespace's /proc/net
    files are seen (/proc/thread-self/net in a thread that entered another namespace).

    Returns (columns, truncated): truncated when more than `limit` sockets were there (the first `limit`
    are kept). Raises SockDiagUnavailable or SockDiagTimeout.
    """
    deadline = time.monotonic() + timeout_s
    parser = DumpParser(limit, want_info, msg_type=TCPDIAG_GETSOCK)
    try:
        _dump_family(socket.AF_UNSPEC, deadline, parser)
        return parser.columns(), parser.truncated
    except SockDiagUnavailable:
        pass  # no v1 requests here: one dump per family
    parser = DumpParser(limit, want_info)
    _dump_family(socket.AF_INET, deadline, parser)
    if not parser.truncated:
        try:
            _dump_family(socket.AF_INET6, deadline, parser)
        except SockDiagUnavailable:
            if os.path.exists(f"{proc_net}/if_inet6"):
                raise
            # a kernel without IPv6 answers the AF_INET6 dump with an error: there are no IPv6 sockets
    return parser.columns(), parser.truncated


def _columns(rows: list[tuple], last: dict[int, tuple[int, int]], dual: set[int]) -> dict[str, list[Any]]:
    n = len(rows)
    if n == 0:
        return {c: [] for c in SOCK_DIAG_COLUMNS}
    # message fields: 0 length, 1 type, 2 family, 3 state, 4 timer, 5 retrans, 6 sport, 7 dport, 8 src,
    # 9 dst, 10 expires, 11 rqueue, 12 wqueue, 13 uid, 14 inode
    columns = map(list, zip(*rows, strict=False))
    (_, _, fam, state, timer, retrans, sport, dport, src, dst, expires, rq, wq, uid, inode) = columns
    swap = socket.ntohs  # the ports were unpacked in host order from network-order bytes
    names = TCP_STATES
    timers = [None if t == 0 else _TIMER_NAMES[t] if t < 5 else "unknown" for t in timer]
    lastsnd: list[int | None] = [None] * n
    lastrcv: list[int | None] = [None] * n
    for i, (snd, rcv) in last.items():
        lastsnd[i], lastrcv[i] = snd, rcv
    family = [4 if f == socket.AF_INET else 6 for f in fam]
    local, remote = _address_column(fam, src), _address_column(fam, dst)
    for i in dual:  # what ss prints as "*", and what parsing its "*" gives
        family[i], local[i] = 4, "0.0.0.0"
        if remote[i] == "::":
            remote[i] = "0.0.0.0"
    return {
        "family": family,
        "state": [names.get(s) or "UNKNOWN" for s in state],
        "local_addr": local,
        "local_port": list(map(swap, sport)),
        "remote_addr": remote,
        "remote_port": list(map(swap, dport)),
        "recv_q": rq,
        "send_q": wq,
        "timer": timers,
        "timer_ms": [None if t is None else e for t, e in zip(timers, expires, strict=False)],
        "retrans": [None if t is None else r for t, r in zip(timers, retrans, strict=False)],
        "uid": uid,
        "inode": inode,
        "lastsnd_ms": lastsnd,
        "lastrcv_ms": lastrcv,
    }
