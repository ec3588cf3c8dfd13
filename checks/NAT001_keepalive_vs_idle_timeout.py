"""NAT001: the first keepalive comes after the NAT/LB has already forgotten the flow."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule
from tcpaudit.snapshot import is_loopback


class KeepaliveVsIdleTimeout(ValueRule):
    key = "net.ipv4.tcp_keepalive_time"
    meta = RuleMeta(
        id="NAT001",
        title="TCP keepalive starts after the NAT/load-balancer idle timeout",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes"],
        summary=(
            "A NAT gateway or load balancer forgets a TCP flow after its idle timeout, without telling either end. "
            "If the first keepalive probe comes later than that (tcp_keepalive_time defaults to 7200 s), idle "
            "connections are cut silently and fail later in confusing ways."
        ),
        mechanism=[
            "The middlebox (NAT gateway, cloud load balancer, conntrack on a NAT box) drops its flow entry after "
            "the flow has been idle for its idle timeout (Azure LB/NAT Gateway 4 min, AWS NAT Gateway/NLB 350 s, "
            "GCP Cloud NAT 20 min). Usually no RST is sent to either end.",
            "Both hosts still hold the connection as ESTABLISHED. The next segment either hits no flow and is "
            "dropped or answered with RST, or - after SNAT port reuse - reaches the server on a 4-tuple the server "
            "still associates with the old connection: the server answers a new SYN with an ACK for the wrong "
            "sequence number, the client resets, and the handshake is retried (the 'ACK with wrong sequence "
            "number plus RST' pattern).",
            "A send() on the dead connection is retransmitted until tcp_retries2 gives up (about 15 minutes with "
            "the default of 15), so threads block on blocking I/O for that long; the peer keeps an orphaned "
            "ESTABLISHED socket that is never cleaned up.",
            "TCP keepalive keeps the flow alive only if the connection is never silent for as long as the idle "
            "timeout. The first probe goes out after tcp_keepalive_time seconds without a received segment; the "
            "timer then re-arms for tcp_keepalive_intvl, and when it fires the connection has again been silent "
            "that long (the probe's ACK carries no data), so on an idle connection probes come every "
            "max(tcp_keepalive_time, tcp_keepalive_intvl) seconds (tcp_keepalive_timer in "
            "net/ipv4/tcp_timer.c). Both must be below the idle timeout: a short keepalive_time with the 75 s "
            "default interval still loses the flow behind a 60 s idle timeout right after the first probe.",
            "Keepalive only runs on sockets that set SO_KEEPALIVE: the sysctls change nothing for sockets that "
            "never enable it (and TCP_KEEPIDLE / TCP_KEEPINTVL override them per socket).",
        ],
        when_it_matters=(
            "Hosts behind a NAT gateway or load balancer with long-lived, sometimes idle connections: database "
            "pools, message brokers, HTTP keep-alive pools, gRPC channels, SSH sessions."
        ),
        remediation=(
            "Set net.ipv4.tcp_keepalive_time and net.ipv4.tcp_keepalive_intvl well below the idle timeout (for "
            "example half of it) and make sure the applications' sockets enable SO_KEEPALIVE (or set TCP_KEEPIDLE "
            "and TCP_KEEPINTVL per socket, or use application pings). Alternatively raise the middlebox idle "
            "timeout, or enable its TCP reset "
            "on idle so both ends "
            "learn of the drop."
        ),
        references=[
            Reference(
                title="Azure Load Balancer SNAT behaviour: port reuse, wrong-sequence ACK + RST (field report)",
                url="https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-idle-timeout",
            ),
            Reference(
                title="AWS NAT gateway: connection idle timeout (350 s)",
                url="https://docs.aws.amazon.com/vpc/latest/userguide/nat-gateway-troubleshooting.html",
            ),
            Reference(
                title="ip-sysctl.rst: tcp_keepalive_time / intvl / probes",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="tcp(7): SO_KEEPALIVE, TCP_KEEPIDLE", url="https://man7.org/linux/man-pages/man7/tcp.7.html"
            ),
        ],
    )

    def check(self, f: Facts):
        if f.context.nat_idle_timeout is None:
            return self.na("no NAT/load-balancer idle timeout known (give --nat-idle-timeout or --profile)")
        return super().check(f)

    def judge(self, f: Facts, v: Value):
        idle = f.context.nat_idle_timeout
        keepalive = v.int
        if keepalive is None or idle is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        intvl = f.value("net.ipv4.tcp_keepalive_intvl")
        probes = f.value("net.ipv4.tcp_keepalive_probes")
        # An idle connection with keepalive is silent for tcp_keepalive_time before the first probe, then for
        # max(time, intvl) between probes (tcp_keepalive_timer re-arms for intvl and probes again only once
        # time has passed since the last received segment).
        silence = max(keepalive, intvl.int or 0)
        if silence < idle:
            return None
        ev = {
            "tcp_keepalive_time": keepalive,
            "tcp_keepalive_time_origin": v.origin,
            "tcp_keepalive_intvl": intvl.int,
            "tcp_keepalive_probes": probes.int,
            "longest_silence_s": silence,
            "nat_idle_timeout": idle,
            "nat_idle_timeout_source": f.context.nat_idle_source,
        }
        sev, why, sockets_note = self._severity(f, idle, ev)
        target = max(1, idle // 2)
        fix = {}
        if keepalive >= idle:
            fix["net.ipv4.tcp_keepalive_time"] = str(target)
        if intvl.int is not None and intvl.int >= idle:
            fix["net.ipv4.tcp_keepalive_intvl"] = str(target)
        if keepalive >= idle:
            what = (
                f"The first keepalive probe goes out after {keepalive} s of idleness, but the NAT/load balancer "
                f"drops idle flows after {idle} s ({f.context.nat_idle_source}). Connections idle between "
                f"{idle} s and {keepalive} s are cut silently"
            )
            if intvl.int is not None and intvl.int >= idle:
                what += f"; and tcp_keepalive_intvl={intvl.int} s would leave the same gap between later probes"
        else:
            what = (
                f"The first keepalive probe goes out after {keepalive} s of idleness, in time, but the timer then "
                f"re-arms for tcp_keepalive_intvl={intvl.int} s: an idle connection stays silent that long "
                f"between probes, longer than the {idle} s after which the NAT/load balancer drops idle flows "
                f"({f.context.nat_idle_source}). The flow is forgotten right after the first probe, and the "
                "connection is cut silently"
            )
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=[f.context.describe_nat(), why],
            fix=fix,
            explanation=(
                f"{what}: later sends hit no flow (or a reused SNAT port: wrong-sequence ACK, then RST) and block "
                "for up to tcp_retries2 (~15 min) before failing; the peer keeps an orphaned ESTABLISHED "
                f"socket.{sockets_note}"
            ),
        )

    @staticmethod
    def _severity(f: Facts, idle: int, ev: dict) -> tuple[Severity, str, str]:
        """(severity, why, sentence for the explanation), per docs/severity.md: high only when the idle timeout
        was given and the socket table shows connections that rely on a keepalive slower than the timeout."""
        if not f.context.nat_idle_explicit:
            return Severity.low, "low: the idle timeout is assumed (auto-detected), not given", ""
        if f.kind != "host":
            return (
                Severity.medium,
                "medium: a configuration file does not show whether the applications' sockets use SO_KEEPALIVE "
                "(audit the host to judge)",
                "",
            )
        t = f.snapshot.sockets
        if t.source == "none":
            return Severity.medium, "medium: the socket table was not collected, so SO_KEEPALIVE use is unknown", ""
        est = with_ka = late = 0
        for s in t.rows("ESTAB"):
            if is_loopback(s.remote_addr) or s.remote_addr == s.local_addr:
                continue
            est += 1
            if s.timer == "keepalive":
                with_ka += 1
                # a keepalive timer armed further away than the idle timeout: this socket's probe period is
                # longer than the timeout (the kernel's tcp_keepalive_time/intvl unless set per socket)
                late += s.timer_ms is not None and s.timer_ms > idle * 1000
        ev["established_non_loopback"] = est
        ev["established_with_keepalive_timer"] = with_ka
        ev["keepalive_due_after_idle_timeout"] = late
        note = (
            f" Of {est} established non-loopback connections, {with_ka} show a keepalive timer "
            "(SO_KEEPALIVE on); the rest are not protected by these sysctls at all."
            if est
            else ""
        )
        if late:
            return (
                Severity.high,
                f"high: {late} established connection(s) use SO_KEEPALIVE with the next probe due later than the "
                f"{idle} s idle timeout",
                note,
            )
        if with_ka:
            return (
                Severity.medium,
                f"medium: the {with_ka} socket(s) with SO_KEEPALIVE have their next probe due within the idle "
                "timeout (they may set TCP_KEEPIDLE themselves)",
                note,
            )
        if est:
            return (
                Severity.medium,
                f"medium: no socket uses SO_KEEPALIVE, so these sysctls protect none of the {est} established "
                "connections (NAT002 judges their idle times)",
                note,
            )
        return Severity.medium, "medium: no established non-loopback connection to judge SO_KEEPALIVE use on", note
