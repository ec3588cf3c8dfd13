"""TCP006: the accept queue (somaxconn / listen backlog) overflows and connection attempts are dropped."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

SOMAXCONN = "net.core.somaxconn"
SYN_BACKLOG = "net.ipv4.tcp_max_syn_backlog"
_SHOW = 10
# golang/go src/net/sock_linux.go maxAckBacklog(): "Linux stores the backlog as: uint16 in kernel
# version < 4.1, uint32 in kernel version >= 4.1 ... Truncate number to avoid wrapping. See issue 5030
# and 41470." The knowledge base has no entry for this, so the rule cites Go's reading of the kernel.
_U16_BACKLOG_BEFORE = (4, 1)


def _where(v: Value) -> str:
    """Where a value came from ('kernel default', 'set in file:line', 'on the host'), without repeating it."""
    d, prefix = v.describe(), f"{v.name}={v.raw} ("
    return d[len(prefix):-1] if d.startswith(prefix) and d.endswith(")") else d


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
            "1 s, 3 s, 7 s ... (tcp_syn_retries): latency spikes and timeouts that come and go with load.",
            "The client side usually believes the connection is established (it got the SYN-ACK) and sends its "
            "request, which the server also drops until the connection is finally accepted: the first request "
            "stalls for one or more retransmission timeouts.",
            "tcp_max_syn_backlog bounds the SYN (half-open) queue; with syncookies on (the default) overflow is "
            "answered with cookies instead of being dropped.",
        ],
        when_it_matters=(
            "Servers that receive connection bursts (HTTP front ends, databases after a failover, service "
            "restarts with many reconnecting clients) and old kernels whose somaxconn default is 128."
        ),
        remediation=(
            "Raise net.core.somaxconn (4096 or more) and the application's own listen() backlog (nginx 'listen ... "
            "backlog=', haproxy 'backlog', Java ServerSocket backlog, ...), and make sure the application accept()s "
            "fast enough: a permanently full queue means the server is too slow, not the queue too short. Keep "
            "tcp_max_syn_backlog at least as large."
        ),
        references=[
            Reference(title="ip-sysctl.rst: somaxconn (4096, was 128 before 5.4), tcp_max_syn_backlog, "
                            "tcp_abort_on_overflow",
                      url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst"),
            Reference(title="net: increase SOMAXCONN to 4096 (v5.4, 19f92a030ca6)",
                      url="https://github.com/torvalds/linux/commit/19f92a030ca6d772ab44b22ee6a01378a8cb32d4"),
            Reference(title="Andreas Veithen: How TCP backlog works in Linux",
                      url="https://veithen.io/2014/01/01/how-tcp-backlog-works-in-linux.html"),
            Reference(title="golang/go src/net/sock_linux.go: backlog stored as uint16 before Linux 4.1 (issues "
                            "5030, 41470)",
                      url="https://github.com/golang/go/blob/master/src/net/sock_linux.go"),
        ],
    )

    def check(self, f: Facts):
        som_v, syn_v = f.value(SOMAXCONN), f.value(SYN_BACKLOG)
        som, syn = _judged(f, som_v), _judged(f, syn_v)
        if f.kind == "host" and som is None and syn is None:
            return self.na("net.core.somaxconn and net.ipv4.tcp_max_syn_backlog unknown")
        limit = f.context.threshold("min_somaxconn")
        out = []
        absurd = self._absurd(f, som_v, som)
        if absurd is not None:
            out.append(absurd)

        ev: dict = {"somaxconn": som_v.raw, "somaxconn_origin": som_v.origin,
                    "tcp_max_syn_backlog": syn_v.raw, "tcp_max_syn_backlog_origin": syn_v.origin,
                    "min_somaxconn": limit}
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
            if t.source == "ss":
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
            sev = Severity.low
            fix[SOMAXCONN] = target
            parts.append(
                f"somaxconn={som} ({_where(som_v)}) caps every listen() backlog at {som}: as soon as {som} "
                "connections wait for accept(), further handshakes are dropped and clients wait for SYN/SYN-ACK "
                "retransmissions (1 s, then 2 s, ...)."
            )
            if capped:
                parts.append(f"{len(capped)} listener(s) asked for at least that much and were capped: "
                             f"{', '.join(capped[:_SHOW])}.")
        if total > 0:
            if som_low:
                sev = Severity.medium
            parts.append(f"ListenOverflows/ListenDrops = {total} since boot: the accept queue has overflowed on "
                         "this host.")
        if rate > 0 or full:
            sev = Severity.high if som_low else Severity.medium
            if rate > 0:
                parts.append(f"Listen drops are rising at {rate:.1f}/s right now.")
            if full:
                parts.append(f"Listener(s) with an (almost) full accept queue, Recv-Q/Send-Q: {', '.join(full[:_SHOW])}.")
            if not som_low:
                parts.append("somaxconn is not the limit here: the application's own listen() backlog is too "
                             "small or it accept()s too slowly.")
        if syn_low:
            cookies = f.value("net.ipv4.tcp_syncookies").int
            ev["tcp_syncookies"] = cookies
            syn_sev = Severity.low if cookies == 0 else Severity.info
            if sev is None or syn_sev.rank > sev.rank:
                sev = syn_sev
            fix[SYN_BACKLOG] = target
            parts.append(
                f"tcp_max_syn_backlog={syn} ({_where(syn_v)}) bounds the half-open (SYN) queue; "
                + ("with tcp_syncookies=0 SYNs beyond it are dropped." if cookies == 0 else
                   "with syncookies on, overflow is answered with cookies (degraded but not dropped).")
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

    def _absurd(self, f: Facts, v: Value, som: int | None):
        if som is None or som <= 65535:
            return None
        old = f.kernel_at_least(_U16_BACKLOG_BEFORE)
        if old is True:
            return None
        wrapped = som % 65536
        when = ("this kernel (before 4.1)" if old is False else
                "kernels before 4.1 (this target's kernel version is unknown)")
        return self.finding(
            f, severity=Severity.info, keys=[SOMAXCONN],
            evidence={"somaxconn": som, "somaxconn_origin": v.origin, "kernel": f.snapshot.kernel.release,
                      "wrapped_backlog": wrapped},
            context=["Go's net package reads the kernel this way (src/net/sock_linux.go); the knowledge base has "
                     "no entry for it"],
            fix={SOMAXCONN: "65535"},
            explanation=(
                f"somaxconn={som} is above 65535. On {when} the listen backlog is stored in 16 bits, so an "
                f"application that passes a backlog this large gets {wrapped} instead (the value wraps; Go "
                "truncates to 65535 to avoid exactly this). Nothing is gained above 65535 there."
            ),
        )
