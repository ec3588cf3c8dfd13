"""TCP014: tcp_abort_on_overflow=1 turns an accept-queue overflow into a RST for a client that thinks it connected."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule

KEY = "net.ipv4.tcp_abort_on_overflow"
# net/ipv4/tcp_minisocks.c tcp_check_req() (stored mainline copy 00483690552c): when syn_recv_sock() cannot create
# the child because the accept queue is full, `listen_overflow:` with tcp_abort_on_overflow == 0 only marks the
# request acked and drops the ACK (the SYN-ACK timer retransmits and the handshake completes later); with it set the
# code falls through to `embryonic_reset:` and sends a RST (req->rsk_ops->send_reset) and drops the request.


class AbortOnOverflow(ValueRule):
    key = KEY
    meta = RuleMeta(
        id="TCP014",
        title="tcp_abort_on_overflow=1: when the accept queue is full, clients get a RST instead of a retried "
        "handshake",
        severity=Severity.medium,
        keys=[KEY],
        summary=(
            "With tcp_abort_on_overflow=1, a connection whose handshake completes while the listener's accept "
            "queue is full is reset: the client, which already received the SYN-ACK and considers itself "
            "connected, gets 'connection reset by peer' on its first read or write. With the default (0) the "
            "kernel drops the client's ACK and the half-open request is retried, so a burst that the server "
            "drains within a second or two costs latency, not errors."
        ),
        mechanism=[
            "The client's SYN is answered with a SYN-ACK; the client's ACK completes the handshake in "
            "tcp_check_req() (net/ipv4/tcp_minisocks.c), which creates the child socket only if the accept queue "
            "(min(listen() backlog, somaxconn)) has room.",
            "If it has none, tcp_check_req() goes to listen_overflow: with tcp_abort_on_overflow=0 it marks the "
            "request acked and drops the ACK; the SYN-ACK is retransmitted (1 s, 2 s, ... up to "
            "tcp_synack_retries) and the client's next ACK completes the connection once the application has "
            "accept()ed. TcpExt.ListenOverflows counts each such drop.",
            "With tcp_abort_on_overflow=1 it falls through to embryonic_reset: a RST is sent to the client and "
            "the request is dropped. The client has already returned from connect() and sent its request; its "
            "read or write fails with ECONNRESET.",
            "ip-sysctl.rst: 'enable this option only if you are really sure that listening daemon cannot be tuned "
            "to accept connections faster. Enabling this option can harm clients of your server.' A short burst "
            "that the default absorbs becomes a burst of errors that clients may not retry (a request that may "
            "have been processed is not safe to resend).",
        ],
        when_it_matters=(
            "Servers that receive connection bursts (restarts with many reconnecting clients, cron-driven load, "
            "front ends after a failover) and whose accept queue fills, even briefly. Some tuning guides set it "
            "to 'fail fast'; load balancers with health checks then see resets as server errors."
        ),
        remediation=(
            "Set net.ipv4.tcp_abort_on_overflow=0 (the default) and size the accept queue for bursts: raise "
            "net.core.somaxconn and the application's listen() backlog, and make the application accept() faster. "
            "If clients must fail fast, give them connect and read timeouts."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_abort_on_overflow ('can harm clients of your server')",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp_minisocks.c tcp_check_req(): listen_overflow / embryonic_reset "
                "(stored mainline copy 00483690552c)",
                url="https://github.com/torvalds/linux/blob/00483690552c5fb6aa30bf3acb75b0ee89b4c0fd/net/ipv4/tcp_minisocks.c",
            ),
            Reference(
                title="Andreas Veithen: How TCP backlog works in Linux",
                url="https://veithen.io/2014/01/01/how-tcp-backlog-works-in-linux.html",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        if f.kind == "config" and v.origin != "config":
            return None
        n = v.int
        if n is None or n == 0:
            return None
        ev: dict = {"tcp_abort_on_overflow": v.raw, "origin": v.origin}
        sev = Severity.medium
        text = (
            f"tcp_abort_on_overflow={n} ({v.where()}): whenever a listener's accept queue is full, the kernel "
            "answers the client's final handshake ACK with a RST instead of dropping it and retransmitting the "
            "SYN-ACK. The client has already connected and sent its request, and gets ECONNRESET; with the "
            "default the same burst only delays it by a SYN-ACK retransmission (1 s)."
        )
        ctx: list[str] = []
        if f.kind == "host":
            overflows = f.counter_evidence("TcpExt.ListenOverflows")
            if overflows is not None:
                ev["ListenOverflows"] = overflows
                if overflows["total_since_boot"] > 0:
                    sev = Severity.high
                    text += (
                        f" TcpExt.ListenOverflows = {overflows['total_since_boot']} since boot: accept queues "
                        "on this host have overflowed, and each overflow was a reset client connection."
                    )
                else:
                    ctx.append("no accept-queue overflow since boot: the resets have not happened yet")
        else:
            ctx.append("config target: whether accept queues overflow is not known; medium")
        return self.finding(f, severity=sev, evidence=ev, context=ctx, fix={KEY: "0"}, explanation=text)
