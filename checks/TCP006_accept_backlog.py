"""TCP006: the accept queue (somaxconn / listen backlog) overflows and connection attempts are dropped."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

SOMAXCONN = "net.core.somaxconn"
SYN_BACKLOG = "net.ipv4.tcp_max_syn_backlog"
_SHOW = 10
# Above 65535 the kernel version decides (kernel_db/issues.toml): before 4.1 the accept-queue limit is a
# 16-bit field and a larger backlog wraps; 3.11 to 4.0 refuse such a somaxconn outright.
_U16 = "KI-CORE-LISTEN-BACKLOG-U16"
_CAP = "KI-CORE-SOMAXCONN-MAX-65535"
_U16_MAX = 65535
_TINY_QUEUE = 128  # a wrapped backlog below the old default somaxconn is a real outage under any burst


def _release_default(f: Facts) -> int | None:
    """net.core.somaxconn's default on the target kernel (128 before 5.4, 4096 from it), from the knowledge base."""
    fact = f.kdb.sysctl(SOMAXCONN) if f.kdb is not None else None
    raw = fact.default_in(f.release) if fact is not None and f.release is not None else None
    return int(raw) if raw is not None and str(raw).strip().isdigit() else None


def _judged(f: Facts, v: Value) -> int | None:
    """The integer to judge: config targets only judge what the file sets."""
    if f.kind == "config" and v.origin != "config":
        return None
    return v.int


class AcceptBacklog(Rule):
    meta = RuleMeta(
        id="TCP006",
        title="Accept queue too small or overflowing: connection attempts are dropped under bursts",
        severity=Severity.medium,
        keys=[SOMAXCONN, SYN_BACKLOG],
        summary=(
            "Every listening socket has an accept queue of min(listen() backlog, net.core.somaxconn) connections "
            "that completed the handshake but were not yet accept()ed. When it is full the kernel drops the "
            "client's final ACK and new SYNs (TcpExt.ListenOverflows / ListenDrops); clients see connect() hang "
            "for a second or more, or time out, only during bursts. A low somaxconn caps every application's "
            "backlog, whatever it asked for."
        ),
        mechanism=[
            "listen(fd, backlog) is silently capped at net.core.somaxconn (default 4096 since Linux 5.4, 128 "
            "before, per ip-sysctl.rst); ss shows the resulting limit as Send-Q of the LISTEN socket and the "
            "current queue length as Recv-Q.",
            "When a handshake completes while the accept queue is full, the kernel counts ListenOverflows and "
            "ListenDrops and drops the ACK; the request stays half-open and the SYN-ACK is retransmitted (1 s, "
            "2 s, ...). With tcp_abort_on_overflow=1 it sends a RST instead.",
            "New SYNs arriving while the queue is full are dropped too, so the client retransmits its SYN after "
            "1 s, 3 s, 7 s ... (tcp_syn_retries; from 6.5 the first tcp_syn_linear_timeouts=4 retries are 1 s "
            "apart: 1, 2, 3, 4, 5, 7, 11 s ...): latency spikes and timeouts that come and go with load.",
            "The client side usually believes the connection is established (it got the SYN-ACK) and sends its "
            "request, which the server also drops until the connection is finally accepted: the first request "
            "stalls for one or more retransmission timeouts.",
            "The SYN (half-open) queue is bounded by the same listener backlog: tcp_conn_request() treats it as "
            "full at min(listen() backlog, somaxconn) requests (inet_csk_reqsk_queue_is_full()), and with "
            "syncookies on (the default) overflow is answered with cookies instead of being dropped. "
            "tcp_max_syn_backlog only matters with tcp_syncookies=0: SYNs from peers without TCP-metrics history "
            "are then dropped once the queue holds 3/4 of it. (Kernels before ef547f2ac16b 'tcp: remove "
            "max_qlen_log' sized the SYN queue from min(backlog, tcp_max_syn_backlog) instead.)",
            "Above 65535 the kernel version matters: before 4.1 the limit was a 16-bit field (becb74f0acca made it "
            "32-bit), so a backlog capped at a larger somaxconn wrapped modulo 65536 (3240000 -> 28736, 65536 -> "
            "0); 3.11 to 4.0 refuse such a somaxconn with EINVAL instead (5f671d6b4ec3) and keep the old value. "
            "From 4.1 a somaxconn above what applications pass to listen() is harmless and changes nothing.",
        ],
        when_it_matters=(
            "Servers that receive connection bursts (HTTP front ends, databases after a failover, service "
            "restarts with many reconnecting clients) and old kernels whose somaxconn default is 128."
        ),
        remediation=(
            "Raise net.core.somaxconn (4096 or more) and the application's own listen() backlog (nginx 'listen ... "
            "backlog=', haproxy 'backlog', Java ServerSocket backlog, ...), and make sure the application accept()s "
            "fast enough: a permanently full queue means the server is too slow, not the queue too short. With "
            "tcp_syncookies=0, also keep tcp_max_syn_backlog above 4/3 of the largest listen() backlog, or SYNs "
            "from new peers are dropped before the queue is full; with cookies on it plays no part on current "
            "kernels."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: somaxconn (4096, was 128 before 5.4), tcp_max_syn_backlog, tcp_abort_on_overflow",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net: increase SOMAXCONN to 4096 (v5.4, 19f92a030ca6)",
                url="https://github.com/torvalds/linux/commit/19f92a030ca6d772ab44b22ee6a01378a8cb32d4",
            ),
            Reference(
                title="net/ipv4/tcp_input.c tcp_conn_request(): SYN queue full test, tcp_max_syn_backlog "
                "3/4 rule without syncookies",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_input.c",
            ),
            Reference(
                title="Andreas Veithen: How TCP backlog works in Linux",
                url="https://veithen.io/2014/01/01/how-tcp-backlog-works-in-linux.html",
            ),
            Reference(
                title="net: increase sk_[max_]ack_backlog (v4.1, becb74f0acca): the limit was 16 bits before",
                url="https://git.zx2c4.com/linux-dev/commit/include?id=becb74f0acca19b5abfcb24dc602530f3deea66a",
            ),
            Reference(
                title="net: check net.core.somaxconn sysctl values (v3.11, 5f671d6b4ec3): EINVAL above 65535",
                url="https://git.zx2c4.com/linux-dev/commit/include/linux/stringify.h"
                "?id=5f671d6b4ec3e6d66c2a868738af2cdea09e7509",
            ),
            Reference(
                title="golang/go#5030: somaxconn=262144 gave listeners a queue of 0",
                url="https://github.com/golang/go/issues/5030",
            ),
        ],
    )

    def check(self, f: Facts):
        som_v, syn_v = f.value(SOMAXCONN), f.value(SYN_BACKLOG)
        som, syn = _judged(f, som_v), _judged(f, syn_v)
        if f.kind == "host" and som is None and syn is None:
            return self.unread(f, "net.core.somaxconn and net.ipv4.tcp_max_syn_backlog unknown")
        limit = f.context.threshold("min_somaxconn")
        out = []
        absurd = self._absurd(f, som_v, som, syn)
        if absurd is not None:
            out.append(absurd)

        ev: dict = {
            "somaxconn": som_v.raw,
            "somaxconn_origin": som_v.origin,
            "tcp_max_syn_backlog": syn_v.raw,
            "tcp_max_syn_backlog_origin": syn_v.origin,
            "min_somaxconn": limit,
        }
        overflows = drops = None
        rate = 0.0
        full: list[str] = []
        capped: list[str] = []
        if f.kind == "host":
            overflows = f.counter_evidence("TcpExt.ListenOverflows")
            drops = f.counter_evidence("TcpExt.ListenDrops")
            if overflows is not None:
                ev["ListenOverflows"] = overflows
            if drops is not None:
                ev["ListenDrops"] = drops
            rate = max(f.counter_rate("TcpExt.ListenOverflows") or 0.0, f.counter_rate("TcpExt.ListenDrops") or 0.0)
            t = f.snapshot.sockets
            if t.listen_queues:
                for s in t.rows("LISTEN"):
                    if s.state != "LISTEN" or s.send_q <= 0:
                        continue
                    where = f"{s.local_addr}:{s.local_port} ({s.recv_q}/{s.send_q})"
                    if s.recv_q >= max(1, 0.9 * s.send_q):
                        full.append(where)
                    if som is not None and s.send_q == som:
                        capped.append(f"{s.local_addr}:{s.local_port}")
                if full:
                    ev["listeners_accept_queue_near_full"] = full[:_SHOW]
                if capped:
                    ev["listeners_capped_by_somaxconn"] = capped[:_SHOW]
        total = max((overflows or {}).get("total_since_boot", 0), (drops or {}).get("total_since_boot", 0))
        som_low = som is not None and som < limit
        syn_low = syn is not None and syn < limit

        parts: list[str] = []
        ctx: list[str] = []
        sev: Severity | None = None
        fix: dict[str, str] = {}
        target = str(int(max(limit, 4096)))
        if som_low:
            assert som is not None
            default = _release_default(f)
            ev["somaxconn_default"] = default
            # A threshold is an opinion: at or above what the kernel itself ships, with no listener capped and no
            # overflow seen, a lower somaxconn is a note (info), not a risk; below the release's default it is low.
            opinion = default is not None and som >= default and not capped
            sev = Severity.info if opinion else Severity.low
            fix[SOMAXCONN] = target
            parts.append(
                f"somaxconn={som} ({som_v.where()}) caps every listen() backlog at {som}: as soon as {som} "
                "connections wait for accept(), further handshakes are dropped and clients wait for SYN/SYN-ACK "
                "retransmissions (1 s, then 2 s, ...)."
            )
            if opinion:
                assert default is not None
                ratio = f"{som / default:g} times" if som > default else "the same as"
                parts.append(
                    f"That is {ratio} this kernel's own default ({default}) and below tcpaudit's threshold "
                    f"min_somaxconn={limit:.0f} only: it matters for a server that asks listen() for more and gets "
                    "bursts of more than that many connections waiting; nothing here shows that."
                )
            if capped:
                parts.append(
                    f"{len(capped)} listener(s) asked for at least that much and were capped: "
                    f"{', '.join(capped[:_SHOW])}."
                )
        if total > 0:
            if som_low:
                sev = Severity.medium
            parts.append(
                f"ListenOverflows/ListenDrops = {total} since boot: the accept queue has overflowed on this host."
            )
        if rate > 0 or full:
            sev = Severity.high if som_low else Severity.medium
            if rate > 0:
                parts.append(f"Listen drops are rising at {rate:.1f}/s right now.")
            if full:
                parts.append(
                    f"Listener(s) with an (almost) full accept queue, Recv-Q/Send-Q: {', '.join(full[:_SHOW])}."
                )
            if not som_low:
                parts.append(
                    "somaxconn is not the limit here: the application's own listen() backlog is too "
                    "small or it accept()s too slowly."
                )
        if syn_low:
            cookies = f.value("net.ipv4.tcp_syncookies").int
            ev["tcp_syncookies"] = cookies
            syn_sev = Severity.low if cookies == 0 else Severity.info
            if sev is None or syn_sev.rank > sev.rank:
                sev = syn_sev
            fix[SYN_BACKLOG] = target
            parts.append(
                f"tcp_max_syn_backlog={syn} ({syn_v.where()}): "
                + (
                    "with tcp_syncookies=0, SYNs from peers the kernel has no TCP-metrics history for are dropped "
                    "once a listener's SYN queue holds 3/4 of it, even before the queue (bounded by the listen "
                    "backlog) is full."
                    if cookies == 0
                    else "with syncookies on, current kernels do not use it (the SYN queue is bounded by the listen "
                    "backlog and overflow is answered with cookies); kernels before ef547f2ac16b sized the SYN "
                    "queue from min(backlog, it), with cookies beyond."
                )
            )
        if sev is None:
            return out or None
        ctx.append(f"threshold min_somaxconn={limit:.0f}")
        if f.kind == "config":
            ctx.append("config target: judged on what the file sets; no counters or sockets to confirm overflows")
        elif overflows is None:
            ctx.append("no ListenOverflows counter available: severity from the setting alone")
        out.append(self.finding(f, severity=sev, evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts)))
        return out

    def _absurd(self, f: Facts, v: Value, som: int | None, syn: int | None):
        """somaxconn above 65535: wraps or is refused before 4.1, harmless but pointless after."""
        if som is None or som <= _U16_MAX:
            return None
        wrapped = som & 0xFFFF
        narrow, refusing = f.issue(_U16), f.issue(_CAP)
        ev: dict = {"somaxconn": som, "somaxconn_origin": v.origin, "kernel": f.snapshot.kernel.release}
        if syn is not None and syn > _U16_MAX:
            ev["tcp_max_syn_backlog"] = syn
        ctx = [
            f"{_U16}: {narrow.reason} (confidence {narrow.confidence})"
            if narrow is not None
            else "kernel version or knowledge base unavailable: whether the backlog is 16 bits is unknown"
        ]
        if narrow is not None and narrow.applies is False:
            ev["backlog_bits"] = 32
            return self.finding(
                f,
                severity=Severity.info,
                keys=[SOMAXCONN],
                evidence=ev,
                context=ctx,
                remediation="Set somaxconn to what the listeners need (4096 is the default since 5.4; at most 65535 "
                "if the same file also goes to kernels before 4.1) and size each application's own "
                "listen() backlog.",
                explanation=(
                    f"somaxconn={som} ({v.where()}) is above 65535. This kernel keeps the accept-queue limit in 32 "
                    "bits (since 4.1, becb74f0acca), so nothing wraps - but nothing is gained either: each listener's "
                    "queue is min(its listen() backlog, somaxconn), so a somaxconn above what applications pass "
                    f"changes nothing, and {som} connections waiting for accept() would themselves mean the server "
                    "has stopped accepting."
                ),
            )
        ev["wrapped_backlog"] = wrapped
        fix = {SOMAXCONN: str(_U16_MAX)}
        when = f"this kernel ({f.snapshot.kernel.release})" if f.release is not None else "kernels before 4.1"
        wraps = (
            f"listen(fd, N) caps N at somaxconn and stores it in a 16-bit field, so an application that asks "
            f"for 65536 or more (a big number, -1, or somaxconn itself, as Go's net package once did) gets "
            f"{som} mod 65536 = {wrapped}"
        )
        if refusing is not None:
            ctx.append(f"{_CAP}: {refusing.reason} (confidence {refusing.confidence})")
        observed: list[str] = []
        if f.kind == "host" and f.snapshot.sockets.listen_queues:
            observed = [
                f"{s.local_addr}:{s.local_port}"
                for s in f.snapshot.sockets.rows("LISTEN")
                if s.state == "LISTEN" and s.send_q == wrapped
            ]
            if observed:
                ev["listeners_with_wrapped_backlog"] = observed[:_SHOW]
        if f.kind == "config" and refusing is not None and refusing.applies is True:
            return self.finding(
                f,
                severity=Severity.medium,
                keys=[SOMAXCONN],
                evidence=ev,
                context=ctx,
                fix=fix,
                explanation=(
                    f"somaxconn={som} ({v.where()}) is above 65535, and {when} refuses that: 3.11 to 4.0 bound the "
                    "sysctl to 65535 while the backlog field was 16 bits (5f671d6b4ec3; where that bound ends is "
                    "not verified, see the knowledge base). The write fails with EINVAL and somaxconn keeps its "
                    "previous value - 128 unless something else raised it - so every listen() stays capped there, "
                    "the opposite of what the line intends."
                ),
            )
        if wrapped < _TINY_QUEUE:
            sev = Severity.high
        elif wrapped < f.context.threshold("min_somaxconn"):
            sev = Severity.medium
        else:
            sev = Severity.low
        certain = observed or (narrow is not None and narrow.applies is True)
        if certain:
            text = (
                f"somaxconn={som} ({v.where()}) is above 65535 and {when} keeps the accept-queue limit in 16 "
                f"bits (becb74f0acca widened it in 4.1): {wraps}."
            )
        else:
            # the kernel's status rests on an assumption (a distribution build): one step below the certain case
            sev = Severity.medium if sev is Severity.high else Severity.low
            text = (
                f"somaxconn={som} ({v.where()}) is above 65535. Before 4.1 the accept-queue limit is a 16-bit "
                f"field (becb74f0acca widened it) and {when} may still have it: {wraps}. Kernels 3.11 to 4.0 "
                "refuse the value instead (EINVAL: somaxconn keeps its old value, 128 by default). Either way "
                "the setting does not do what it says."
            )
        if observed:
            text += f" Listener(s) already show that backlog (Send-Q {wrapped}): {', '.join(observed[:_SHOW])}."
        if wrapped < _TINY_QUEUE:
            text += f" A queue of {wrapped} drops connection attempts under the smallest burst (golang/go#5030)."
        else:
            text += f" {wrapped} is still a usable queue, but not the one configured."
        return self.finding(f, severity=sev, keys=[SOMAXCONN], evidence=ev, context=ctx, fix=fix, explanation=text)
