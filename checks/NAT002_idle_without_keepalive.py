"""NAT002: established connections already idle past the NAT timeout, with no keepalive to save them."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.snapshot import is_loopback

_EXAMPLES = 5


class IdleWithoutKeepalive(Rule):
    meta = RuleMeta(
        id="NAT002",
        title="Established connections idle longer than the NAT/LB idle timeout, without keepalive",
        severity=Severity.high,
        keys=["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_retries2"],
        applies_to=["host"],
        summary=(
            "The socket table shows connections that have sent and received nothing for longer than the "
            "middlebox idle timeout and have no keepalive timer that would fire before it: their NAT/LB flow is "
            "most likely gone already, and their next use will hang or be reset."
        ),
        mechanism=[
            "ss -ti reports, per socket, the time since the last data was sent (lastsnd) and received (lastrcv); "
            "ss -o shows the keepalive timer of sockets with SO_KEEPALIVE.",
            "A connection idle longer than the NAT/LB idle timeout has outlived its flow entry: the middlebox "
            "dropped it silently (no RST to either end).",
            "Keepalive probes carry no data, so they do not reset lastsnd/lastrcv; a socket whose keepalive timer "
            "fires within the idle timeout is kept alive and is not counted. After its first probe the timer "
            "re-arms for the keepalive interval (TCP_KEEPINTVL, default tcp_keepalive_intvl = 75 s), so a socket "
            "with a short TCP_KEEPIDLE but a long interval shows a timer further away than the idle timeout and "
            "is counted: its flow is dropped between two probes.",
            "The next request on such a connection is lost: it is retransmitted until tcp_retries2 is exhausted "
            "(~15 min by default) or answered with RST, which applications report as random timeouts or "
            "'connection reset by peer' on pooled connections.",
        ],
        when_it_matters=(
            "Connection pools and long-lived clients behind a NAT gateway or load balancer; the count tells how "
            "many connections are already dead and waiting to fail."
        ),
        remediation=(
            "Enable SO_KEEPALIVE on these sockets with both the first probe (TCP_KEEPIDLE, or "
            "net.ipv4.tcp_keepalive_time) and the interval between probes (TCP_KEEPINTVL, or "
            "net.ipv4.tcp_keepalive_intvl) well below the idle timeout, or make the pool discard connections idle "
            "longer than the timeout (e.g. maxIdleTime / idle eviction). Loopback connections, and connections "
            "between two of the host's own addresses, never cross a NAT and are not counted."
        ),
        references=[
            Reference(
                title="Azure Load Balancer TCP idle timeout",
                url="https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-idle-timeout",
            ),
            Reference(
                title="ss(8): -i lastsnd/lastrcv, -o timer", url="https://man7.org/linux/man-pages/man8/ss.8.html"
            ),
            Reference(
                title="tcp(7): SO_KEEPALIVE, TCP_KEEPIDLE", url="https://man7.org/linux/man-pages/man7/tcp.7.html"
            ),
        ],
        headline=["idle_connections", "without_keepalive", "keepalive_too_late", "nat_idle_timeout", "examples"],
    )

    def check(self, f: Facts):
        idle = f.context.nat_idle_timeout
        if idle is None:
            return self.na("no NAT/load-balancer idle timeout known (give --nat-idle-timeout or --profile)")
        t = f.snapshot.sockets
        if t.detail == "none":
            return self.unread(f, "socket idle times (ss -ti) were not collected")
        limit_ms = idle * 1000
        stale, loopback, slow_keepalive = 0, 0, 0
        examples: list[str] = []
        for s in t.rows("ESTAB"):
            if s.state != "ESTAB" or s.lastsnd_ms is None or s.lastrcv_ms is None:
                continue
            idle_ms = min(s.lastsnd_ms, s.lastrcv_ms)
            if idle_ms <= limit_ms:
                continue
            if s.timer == "keepalive" and s.timer_ms is not None and s.timer_ms <= limit_ms:
                continue  # the next probe comes before the middlebox gives up
            if is_loopback(s.remote_addr) or s.remote_addr == s.local_addr:  # never leaves the host
                loopback += 1
                continue
            stale += 1
            slow_keepalive += s.timer == "keepalive"
            if len(examples) < _EXAMPLES:
                peer = f"[{s.remote_addr}]" if ":" in s.remote_addr else s.remote_addr
                examples.append(
                    f"{s.local_addr}:{s.local_port} -> {peer}:{s.remote_port} idle {idle_ms // 1000} s"
                    + (" (keepalive too late)" if s.timer == "keepalive" else " (no keepalive)")
                )
        if not stale:
            return None
        sev = Severity.high if f.context.nat_idle_explicit else Severity.medium
        ev = {
            "idle_connections": stale,
            "nat_idle_timeout": idle,
            "nat_idle_timeout_source": f.context.nat_idle_source,
            "without_keepalive": stale - slow_keepalive,
            "keepalive_too_late": slow_keepalive,
            "examples": examples,
            "loopback_not_counted": loopback,
            "socket_detail": t.detail,
        }
        partial = " (idle times were collected for part of the table only)" if not t.detail_complete else ""
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=[f.context.describe_nat()],
            explanation=(
                f"{stale} established connection(s) have been idle longer than the {idle} s NAT/LB idle timeout "
                f"with no keepalive probe due before it{partial}: the middlebox has most likely dropped their "
                "flows already. The next request on each will be retransmitted until tcp_retries2 gives up "
                "(~15 min) or be reset - the 'random' timeouts of pooled connections."
            ),
        )
