"""TCP005: tcp_max_tw_buckets so low that TIME-WAIT sockets are destroyed early."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


def _is_power_of_two(n: int) -> bool:
    return n > 0 and n & (n - 1) == 0


class MaxTwBucketsLow(ValueRule):
    key = "net.ipv4.tcp_max_tw_buckets"
    meta = RuleMeta(
        id="TCP005",
        title="tcp_max_tw_buckets is low: TIME-WAIT sockets are destroyed early",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_max_tw_buckets", "net.ipv4.ip_local_port_range"],
        summary=(
            "tcp_max_tw_buckets caps how many TIME-WAIT sockets may exist. Once the cap is reached, every further "
            "connection that closes skips TIME-WAIT entirely (counted in TcpExt.TCPTimeWaitOverflow). The port "
            "becomes free at once, which is why low values are recommended as a TIME-WAIT 'fix', but the protection "
            "TIME-WAIT exists for is gone: a lost final ACK makes the peer's retransmitted FIN meet a RST, and old "
            "duplicate segments can be delivered into a new connection on the same 4-tuple."
        ),
        mechanism=[
            "When a connection is closed actively, tcp_time_wait() (net/ipv4/tcp_minisocks.c) tries to allocate a "
            "TIME-WAIT mini-socket; if the number of TIME-WAIT sockets has reached tcp_max_tw_buckets the "
            "allocation is refused, TcpExt.TCPTimeWaitOverflow is incremented and the socket is simply destroyed "
            "(older kernels also log 'TCP: time wait bucket table overflow'; ip-sysctl.rst: 'time-wait socket is "
            "immediately destroyed and warning is printed').",
            "TIME-WAIT keeps the 4-tuple for 60 s so that (a) the last ACK can be re-sent if the peer retransmits "
            "its FIN, and (b) delayed segments of the old connection are not taken for a new one.",
            "Without it, a peer whose final ACK was lost stays in LAST-ACK and gets a RST for its retransmitted FIN "
            "(an error on close for the peer), and a new connection that immediately reuses the same port pair can "
            "be answered from the peer's stale LAST-ACK state (ACK, RST, SYN retry: a 1 s+ connect stall), or "
            "accept a stray old segment.",
            "A cap below the number of usable ephemeral ports means a single busy client that closes its own "
            "connections overflows it in normal operation, not under attack; the kernel documentation says 'you "
            "_must_ not lower the limit artificially'.",
            "The kernel's own default is half the TCP established-hash size (tcp_sk_init()/tcp_init(): "
            "sysctl_max_tw_buckets = cnt / 2), and the hash is sized from RAM, so on a small VM a value of a few "
            "thousand can be the untouched default rather than a mistake.",
        ],
        when_it_matters=(
            "Clients with heavy connection churn (HTTP without keep-alive, proxies, NAT gateways) and servers that "
            "close connections first. Sysctl files from tuning blogs (5000 or 6000 is common) set it on purpose."
        ),
        remediation=(
            "Raise net.ipv4.tcp_max_tw_buckets to at least the number of usable ephemeral ports (better: leave the "
            "RAM-sized default). Deal with TIME-WAIT pressure through connection reuse, tcp_tw_reuse=1 with "
            "timestamps for outgoing connections, or a wider port range. Each TIME-WAIT socket costs only a few "
            "hundred bytes."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_max_tw_buckets ('you _must_ not lower the limit artificially')",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp_minisocks.c tcp_time_wait(): LINUX_MIB_TCPTIMEWAITOVERFLOW when no "
                "TIME-WAIT socket can be allocated",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_minisocks.c",
            ),
            Reference(
                title="net/ipv4/tcp_ipv4.c tcp_sk_init(): sysctl_max_tw_buckets = ehash size / 2",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_ipv4.c",
            ),
            Reference(
                title="Vincent Bernat: Coping with the TCP TIME-WAIT state on busy Linux servers",
                url="https://vincent.bernat.ch/en/blog/2014-tcp-time-wait-state-linux",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        n = v.int
        if n is None and v.origin == "default":  # the knowledge base describes the RAM-sized default, no number
            return self.na(
                f"{self.key} is not set here, and its kernel default is computed at boot from RAM (half "
                "the established-hash size), so there is no value to judge"
            )
        if n is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        limit = f.context.threshold("min_tw_buckets")
        eph = f.usable_ephemeral_ports()
        ports, port_range = (eph[2], f"{eph[0]}-{eph[1]}") if eph else (None, None)
        ev: dict = {"tcp_max_tw_buckets": n, "tcp_max_tw_buckets_origin": v.origin, "min_tw_buckets": limit}
        if ports is not None:
            ev["usable_ephemeral_ports"] = ports
            ev["ip_local_port_range"] = port_range
        tw = overflow = None
        rate = None
        if f.kind == "host":
            tw = f.snapshot.counters.get("TCP.tw")
            if tw is not None:
                ev["time_wait_sockets"] = tw
            overflow = f.counter_evidence("TcpExt.TCPTimeWaitOverflow")
            if overflow is not None:
                ev["TCPTimeWaitOverflow"] = overflow
            rate = f.counter_rate("TcpExt.TCPTimeWaitOverflow")
        overflowed = overflow is not None and overflow["total_since_boot"] > 0
        near_cap = tw is not None and n > 0 and tw >= 0.8 * n
        below_limit = n < limit
        below_ports = ports is not None and n < ports
        if not below_limit and not (below_ports and (overflowed or near_cap)):
            return None

        ctx: list[str] = []
        # A `sysctl -a` capture (it carries kernel.osrelease) shows running values, defaults included.
        captured = f.kind == "config" and "kernel.osrelease" in f.configured
        if v.origin == "config" and not captured:
            sev = Severity.medium
            ctx.append("set explicitly in a configuration file, i.e. lowered on purpose")
        elif v.origin in ("host", "config") and _is_power_of_two(n) and not overflowed:
            sev = Severity.low
            ctx.append(
                f"{n} is a power of two and may be the kernel's RAM-sized default (half the established "
                "hash) on a small host rather than a deliberate setting"
            )
        else:
            sev = Severity.medium
        parts = [
            f"tcp_max_tw_buckets={n} ({v.where()}): once {n} sockets are in TIME-WAIT, every further "
            "connection this host closes is destroyed without TIME-WAIT."
        ]
        if below_ports:
            parts.append(
                f"That is fewer than the {ports} usable ephemeral ports ({port_range}), so one client "
                "closing its own connections to a single service overflows it in normal operation."
            )
        elif below_limit:
            parts.append(f"That is below the threshold of {limit:.0f} (min_tw_buckets).")
        if near_cap and tw is not None:
            parts.append(f"{tw} TIME-WAIT sockets exist right now, {tw / n:.0%} of the cap.")
            sev = max(sev, Severity.medium, key=lambda s: s.rank)
        if rate is not None and rate > 0:
            sev = Severity.high
            parts.append(f"TcpExt.TCPTimeWaitOverflow is rising at {rate:.1f}/s: TIME-WAIT is being skipped now.")
        elif overflowed and overflow is not None:
            sev = sev.raised() if sev.rank < Severity.high.rank else sev
            parts.append(
                f"TcpExt.TCPTimeWaitOverflow is {overflow['total_since_boot']} since boot: the cap has "
                "been hit (use --sample to see whether it still is)."
            )
        parts.append(
            "Without TIME-WAIT a peer whose final ACK was lost gets a RST for its retransmitted FIN, a quick reuse "
            "of the same port pair can hit the peer's stale state (ACK, RST, 1 s SYN retry), and delayed segments "
            "of the old connection can be accepted by the new one."
        )
        target = 1 << (int(max(limit, ports or 0)) - 1).bit_length()  # next power of two
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx or [f"threshold min_tw_buckets={limit:.0f}"],
            fix={self.key: str(target)},
            explanation=" ".join(parts),
        )
