"""TCP007: tcp_syncookies=0 drops SYNs when the SYN queue overflows; =2 sends cookies all the time."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


class SynCookies(ValueRule):
    key = "net.ipv4.tcp_syncookies"
    meta = RuleMeta(
        id="TCP007",
        title="tcp_syncookies is off: SYNs are dropped when the SYN queue overflows",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_syncookies", "net.ipv4.tcp_max_syn_backlog"],
        summary=(
            "SYN cookies are the kernel's fallback when a listener's queue of half-open connections is full: "
            "instead of dropping the SYN it answers with a SYN-ACK whose sequence number encodes the connection. "
            "With tcp_syncookies=0 a SYN flood, or just a legitimate burst of connection attempts, makes the "
            "kernel drop SYNs, and clients wait 1 s, 3 s, 7 s ... for retransmissions or time out. "
            "tcp_syncookies=2 is the opposite extreme: cookies for every connection, meant for testing."
        ),
        mechanism=[
            "Each incoming SYN creates a request socket in the listener's SYN queue until the handshake "
            "completes; tcp_conn_request() treats the queue as full at the listener's backlog, min(listen() "
            "backlog, somaxconn) (inet_csk_reqsk_queue_is_full(); kernels before ef547f2ac16b sized it from "
            "min(backlog, tcp_max_syn_backlog)).",
            "With tcp_syncookies=1 (default) an overflowing queue is answered statelessly with a cookie SYN-ACK "
            "(TcpExt.SyncookiesSent, TCPReqQFullDoCookies) and the connection completes when the ACK returns.",
            "With tcp_syncookies=0 the SYN is dropped instead (TcpExt.TCPReqQFullDrop); the client retransmits "
            "after 1 s, then 2 s, 4 s ... (from 6.5 first tcp_syn_linear_timeouts=4 retries 1 s apart) and "
            "connect() fails after tcp_syn_retries (+ tcp_syn_linear_timeouts on 6.5+) attempts. Earlier still, once "
            "the queue holds 3/4 of tcp_max_syn_backlog, SYNs from peers without TCP-metrics history are dropped "
            "(counted only in ListenDrops). During a SYN flood (spoofed sources never complete the handshake) "
            "legitimate clients are locked out completely.",
            "tcp_syncookies=2 sends cookies for every SYN even without overflow; ip-sysctl.rst describes it as a "
            "way to test the effect of cookies and warns that syncookies 'do not allow to use TCP extensions'.",
        ],
        when_it_matters=(
            "Any host with listeners reachable from untrusted networks, and services that see reconnect storms "
            "(restarts, failovers). Benchmark and database tuning files (e.g. tikv-bench) and pod securityContext "
            "sysctls sometimes turn cookies off."
        ),
        remediation=(
            "Set net.ipv4.tcp_syncookies=1. If cookies are being sent under normal load (SYN flood warnings without "
            "an attack), the listener is undersized: raise the application's listen backlog and net.core.somaxconn "
            "rather than disabling cookies (tcp_max_syn_backlog matters only with cookies off, or on kernels "
            "before ef547f2ac16b)."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_syncookies (default 1; 2 = unconditional cookies for testing)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(title="D. J. Bernstein: SYN cookies", url="https://cr.yp.to/syncookies.html"),
            Reference(
                title="RFC 4987: TCP SYN Flooding Attacks and Common Mitigations",
                url="https://www.rfc-editor.org/rfc/rfc4987",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        n = v.int
        if n is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        if n not in (0, 2):
            return None
        backlog = f.value("net.ipv4.tcp_max_syn_backlog")
        ev: dict = {"tcp_syncookies": n, "tcp_syncookies_origin": v.origin, "tcp_max_syn_backlog": backlog.raw}
        if n == 2:
            sent = f.counter_evidence("TcpExt.SyncookiesSent") if f.kind == "host" else None
            if sent is not None:
                ev["SyncookiesSent"] = sent
            return self.finding(
                f,
                severity=Severity.info,
                evidence=ev,
                fix={self.key: "1"},
                context=["tcp_syncookies=2 is a test mode: no connection fails, every connection is degraded"],
                explanation=(
                    "tcp_syncookies=2 answers every SYN with a cookie even when the SYN queue is not full, so no "
                    "connection gets a request socket: ip-sysctl.rst calls this a way to test the effect of "
                    "cookies and warns that cookies 'do not allow to use TCP extensions'. Use 1, which only falls "
                    "back to cookies when the queue overflows."
                ),
            )
        ctx = []
        sev = Severity.medium
        happening = ""
        if f.kind == "host":
            drop = f.counter_evidence("TcpExt.TCPReqQFullDrop")
            if drop is not None:
                ev["TCPReqQFullDrop"] = drop
            rate = f.counter_rate("TcpExt.TCPReqQFullDrop")
            if rate is not None and rate > 0:
                sev = Severity.high
                happening = f" TcpExt.TCPReqQFullDrop is rising at {rate:.1f}/s: SYNs are being dropped now."
            elif drop is not None and drop["total_since_boot"] > 0:
                sev = Severity.high
                happening = (
                    f" TcpExt.TCPReqQFullDrop is {drop['total_since_boot']} since boot: SYNs have been "
                    "dropped for this reason (use --sample to see whether it is still happening)."
                )
            ctx.append("host: SYN-queue overflow drops are counted in TcpExt.TCPReqQFullDrop")
        else:
            ctx.append("config target: no counters, severity from the setting alone")
        q = (
            " (bounded by its listen backlog; with cookies off, SYNs from peers without TCP-metrics history are "
            "dropped already once it holds 3/4 of tcp_max_syn_backlog"
            + (f"={backlog.int})" if backlog.int is not None else ")")
        )
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx,
            fix={self.key: "1"},
            explanation=(
                f"tcp_syncookies=0 ({v.where()}): when a listener's SYN queue is full{q}, further SYNs are "
                "dropped instead of being answered with a cookie. A SYN flood locks legitimate clients out, and "
                "even a legitimate burst makes clients wait for SYN retransmissions (1 s, 2 s, 4 s ...) or time "
                f"out.{happening}"
            ),
        )
