"""TCP013: tcp_retries2 (or tcp_orphan_retries) so low that a loss burst or a failover of seconds kills connections."""

from tcpaudit.kernel import rto
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

RETRIES2 = "net.ipv4.tcp_retries2"
RETRIES1 = "net.ipv4.tcp_retries1"
ORPHAN = "net.ipv4.tcp_orphan_retries"
# net/ipv4/tcp_timer.c (stored mainline copy 01a523b07161): tcp_write_timeout() aborts an established connection
# once retransmits_timed_out(sk, tcp_retries2, 0) -- time since the first unacknowledged segment was sent >=
# tcp_model_timeout(tcp_retries2, TCP_RTO_MIN) = ((2 << n) - 1) * 200 ms up to n = 9, then +120 s per retry.
# tcp_retries1 only makes the same test start black-hole MTU probing and dst_negative_advice() (re-route);
# tcp_orphan_retries() replaces tcp_retries2 for orphans, with 0 meaning 8 while the RTO is below TCP_RTO_MAX.
DEFAULT_RETRIES2 = 15  # TCP_RETR2 (kernel_db/sysctls.toml)
RFC1122_MIN = 8  # ip-sysctl.rst: RFC 1122 asks for at least 100 s; 8 gives 102.2 s
HIGH_AT_MOST = 2  # budget <= 1.4 s, abort within 3 s: ordinary loss on a slow path ends connections
MEDIUM_AT_MOST = 5  # budget <= 12.6 s: a failover, link flap or BGP reconvergence of seconds ends them
ORPHAN_LOW_AT_MOST = 2  # orphans given up within 3 s: a response tail lost a few times is truncated
ORPHAN_DEFAULT = 8  # tcp_orphan_retries(): 0 -> 8 while the socket's RTO is below TCP_RTO_MAX
_SLOW_PATH_RTO_S = 1.0  # an RTO of a long or lossy path (mobile, intercontinental), to show the fewer retries


def _judged(f: Facts, v: Value) -> int | None:
    if f.kind == "config" and v.origin != "config":
        return None
    return v.int


class RetriesLow(Rule):
    meta = RuleMeta(
        id="TCP013",
        title="tcp_retries2 far below its default: an established connection is aborted after seconds of loss "
        "instead of ~15 minutes",
        severity=Severity.medium,
        keys=[RETRIES2, RETRIES1, ORPHAN],
        summary=(
            "tcp_retries2 bounds how long an established connection keeps retransmitting unacknowledged data "
            "before the kernel aborts it with ETIMEDOUT. The bound is a time, tcp_model_timeout(tcp_retries2, "
            "200 ms): 924.6 s (~15 min) for the default of 15, 102.2 s for 8 (RFC 1122's 100 s minimum), 12.6 s "
            "for 5, 3 s for 3, 1.4 s for 2, counted from the first retransmission. Set that low, a failover, a "
            "link flap, a congested uplink or a VM pause of a few seconds kills every connection that had data "
            "in flight, where the default would have "
            "carried it through. tcp_orphan_retries does the same for connections the application already "
            "closed (0 means 8)."
        ),
        mechanism=[
            "Each retransmission timeout doubles the RTO (at least 200 ms, TCP_RTO_MIN; at most 120 s). "
            "tcp_write_timeout() (net/ipv4/tcp_timer.c) calls retransmits_timed_out(sk, tcp_retries2, 0): once "
            "the time since retrans_stamp (taken at the first retransmission) reaches tcp_model_timeout("
            "tcp_retries2, TCP_RTO_MIN) = ((2 << n) - 1) x 200 ms (n <= 9; then +120 s per retry), the next "
            "timeout aborts the connection (tcp_write_err(): ETIMEDOUT, TcpExt.TCPAbortOnTimeout) instead of "
            "retransmitting.",
            "It is a time budget, not a count: on a LAN with a 200 ms RTO, tcp_retries2=3 means 4 retransmissions "
            "(0.2, 0.6, 1.4, 3 s) and an abort at 6.2 s (measured on 6.18: tests/test_kernel_retries2.py); on a "
            "path with a 1 s RTO the same budget allows two (at 1 and 3 s) and the abort comes at 7 s.",
            "Losing a segment and its retransmissions for that long is ordinary during failovers (VRRP/keepalived, "
            "a load balancer draining a target, a NAT gateway or firewall cluster switching over, BGP "
            "reconvergence), Wi-Fi roaming, live migration and congestion: with the default the connection "
            "resumes when the path comes back, with a low value the application gets ETIMEDOUT and must reconnect "
            "and retry whatever was in flight.",
            "tcp_retries1 (default 3) does not abort anything: when the same test passes tcp_retries1, the kernel "
            "starts black-hole MTU probing (with tcp_mtu_probing) and asks the route to be re-checked "
            "(dst_negative_advice()). With tcp_retries1 >= tcp_retries2 the connection is aborted before those "
            "recovery steps run.",
            "For orphans (closed by the application, data or FIN still unacknowledged) tcp_orphan_retries() "
            "replaces tcp_retries2; 0, the default, means 8 (~102 s) while the RTO is below 120 s. A value of 1 "
            "or 2 gives up within 1.4 or 3 s: a response whose tail is lost a few times is cut short without the "
            "application ever knowing. Front ends lower it on purpose to shed orphans under attack (values of 3 "
            "and more, or 0, are not reported).",
            "Per-socket TCP_USER_TIMEOUT overrides tcp_retries2 for sockets that set it, so applications that "
            "need fast failure detection can have it without shortening everybody's budget.",
        ],
        when_it_matters=(
            "Any host whose connections must survive a failover, a path change or a burst of loss: clients of "
            "databases, message brokers and RPC services, and servers behind load balancers or NAT gateways that "
            "fail over. Tuning guides for 'fast failover' (Redis, PostgreSQL HA, Kubernetes node tuning) often set "
            "tcp_retries2 to 3-5 host-wide."
        ),
        remediation=(
            "Keep tcp_retries2 at its default (15) or at least 8 (RFC 1122's 100 s), and get fast failure "
            "detection where it is wanted per socket: TCP_USER_TIMEOUT, application heartbeats and read timeouts. "
            "Leave tcp_retries1 at 3 and tcp_orphan_retries at 0 (8) unless orphans must be shed under attack."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_retries1, tcp_retries2 (15 -> 924.6 s; RFC 1122 >= 8), tcp_orphan_retries",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp_timer.c tcp_write_timeout(), retransmits_timed_out(), tcp_model_timeout(), "
                "tcp_orphan_retries() (stored mainline copy 01a523b07161)",
                url="https://github.com/torvalds/linux/blob/01a523b071618abbc634d1958229fe3bd2dfa5fa/net/ipv4/tcp_timer.c",
            ),
            Reference(
                title="RFC 1122 4.2.3.5: TCP connection failures (R2 at least 100 s)",
                url="https://www.rfc-editor.org/rfc/rfc1122#section-4.2.3.5",
            ),
            Reference(
                title="tcp(7): TCP_USER_TIMEOUT",
                url="https://man7.org/linux/man-pages/man7/tcp.7.html",
            ),
        ],
    )

    def check(self, f: Facts):
        r2_v, r1_v, orphan_v = f.value(RETRIES2), f.value(RETRIES1), f.value(ORPHAN)
        r2, r1, orphan = _judged(f, r2_v), _judged(f, r1_v), _judged(f, orphan_v)
        if f.kind == "host" and r2 is None and orphan is None:
            return self.unknown("tcp_retries2 and tcp_orphan_retries could not be read")
        out = []
        if r2 is not None and 0 <= r2 < RFC1122_MIN:
            out.append(self._retries2(f, r2_v, r2, r1_v, r1))
        if orphan is not None and 1 <= orphan <= ORPHAN_LOW_AT_MOST:
            out.append(self._orphan(f, orphan_v, orphan))
        return out or None

    def _retries2(self, f: Facts, v: Value, r2: int, r1_v: Value, r1: int | None):
        lan, slow = rto.data_timeline(r2), rto.data_timeline(r2, _SLOW_PATH_RTO_S)
        budget, budget_default = round(rto.model_timeout(r2), 1), round(rto.model_timeout(DEFAULT_RETRIES2), 1)
        if r2 <= HIGH_AT_MOST:
            sev = Severity.high
        elif r2 <= MEDIUM_AT_MOST:
            sev = Severity.medium
        else:
            sev = Severity.low
        ev = {
            "tcp_retries2": v.raw,
            "tcp_retries2_origin": v.origin,
            "budget_s": budget,
            "budget_s_default": budget_default,
            "aborted_after_s": lan.gives_up_at,
            "retransmissions_rto_200ms": len(lan.retransmits_at),
            "retransmissions_rto_1s": len(slow.retransmits_at),
        }
        text = (
            f"tcp_retries2={r2} ({v.where()}): when data goes unacknowledged, the connection is aborted with "
            f"ETIMEDOUT once tcp_model_timeout({r2}, 200 ms) = {rto.fmt_s(budget)} have passed since the first "
            f"retransmission, instead of {rto.fmt_s(budget_default)} with the default of {DEFAULT_RETRIES2}. On a "
            f"path with a 200 ms RTO that is {len(lan.retransmits_at)} retransmissions (at {rto.schedule(lan)}) and "
            f"the abort at {rto.fmt_s(lan.gives_up_at)}; with a 1 s RTO {len(slow.retransmits_at)} (at "
            f"{rto.schedule(slow)}) and the abort at {rto.fmt_s(slow.gives_up_at)}. A failover, link flap or loss "
            "burst longer than that kills every connection with data in flight."
        )
        ctx = [
            f"high for tcp_retries2 <= {HIGH_AT_MOST} (aborted within 3 s: ordinary loss on a slow path ends "
            f"connections), medium for <= {MEDIUM_AT_MOST} (a budget of <= 12.6 s: a failover ends them), low below "
            f"{RFC1122_MIN} (RFC 1122's 100 s)"
        ]
        if r1 is not None and r1 >= r2:
            ev["tcp_retries1"] = r1_v.raw
            text += (
                f" tcp_retries1={r1} ({r1_v.where()}) is not below it, so the connection is aborted before the "
                "kernel tries black-hole MTU probing and a route re-check (which start at tcp_retries1)."
            )
        return self.finding(
            f,
            keys=[RETRIES2] + ([RETRIES1] if "tcp_retries1" in ev else []),
            severity=sev,
            evidence=ev,
            context=ctx,
            fix={RETRIES2: str(DEFAULT_RETRIES2)},
            explanation=text,
        )

    def _orphan(self, f: Facts, v: Value, n: int):
        t = rto.data_timeline(n)
        return self.finding(
            f,
            keys=[ORPHAN],
            severity=Severity.low,
            evidence={
                "tcp_orphan_retries": v.raw,
                "tcp_orphan_retries_origin": v.origin,
                "orphan_given_up_after_s": t.gives_up_at,
                "orphan_budget_s_default": round(rto.model_timeout(ORPHAN_DEFAULT), 1),
            },
            context=["tcp_orphan_retries 0 (the default, meaning 8) and 3 or more are not reported"],
            fix={ORPHAN: "0"},
            remediation=(
                "Set tcp_orphan_retries back to 0 (8 retries, ~102 s) or at least 3 unless orphans must be shed "
                "under attack; to bound orphans use tcp_max_orphans and tcp_fin_timeout instead."
            ),
            explanation=(
                f"tcp_orphan_retries={n} ({v.where()}): a connection the application has closed while data or its "
                f"FIN is still unacknowledged is given up after {rto.fmt_s(t.gives_up_at)} "
                f"({len(t.retransmits_at)} retransmissions with a 200 ms RTO) instead of a budget of ~102 s with the "
                "default (0, meaning 8). Losing the tail of a response that often cuts it short silently: the "
                "application already returned from close(), and the peer never receives the rest."
            ),
        )
