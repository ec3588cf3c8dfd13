"""NAT003: after a NAT/LB forgot an idle flow, a send retransmits for tcp_retries2 (~15 min) before failing."""

from tcpaudit.context import load_profiles
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule

# include/net/tcp.h (stored mainline copy 003e07a1e48e): TCP_RTO_MIN = HZ/5 (200 ms), TCP_RTO_MAX = 120*HZ.
# ip-sysctl.rst (stored mainline copy 0326074ff465), tcp_retries2: "a hypothetical TCP connection following
# exponential backoff with an initial RTO of TCP_RTO_MIN would retransmit N times before killing the
# connection at the (N+1)th RTO. The default value of 15 yields a hypothetical timeout of 924.6 seconds".
_RTO_MIN_S = 0.2
_RTO_MAX_S = 120.0
_RFC1122_MIN = 8  # ip-sysctl.rst: "RFC 1122 recommends at least 100 seconds ... a value of at least 8"
_DEFAULT = 15


def hypothetical_timeout(retries2: int) -> float:
    """ip-sysctl.rst's lower bound: N retransmissions, killed at the (N+1)th RTO, RTO doubling from 200 ms to 120 s."""
    return round(sum(min(_RTO_MIN_S * (1 << k), _RTO_MAX_S) for k in range(retries2 + 1)), 1)


def _resetting_profile(f: Facts) -> str | None:
    """The profile that set the idle timeout, if it sends an RST when the flow expires."""
    profiles = load_profiles()
    for pid in f.context.profiles:
        p = profiles.get(pid)
        if p is not None and p.idle_timeout == f.context.nat_idle_timeout and p.sends_reset_on_idle is True:
            return pid
    return None


class Retries2BehindIdleTimeout(ValueRule):
    key = "net.ipv4.tcp_retries2"
    meta = RuleMeta(
        id="NAT003",
        title="tcp_retries2 behind a NAT/LB idle timeout: a send on a silently dropped flow hangs ~15 minutes",
        severity=Severity.low,
        keys=["net.ipv4.tcp_retries2"],
        summary=(
            "When a NAT gateway or load balancer drops an idle flow without telling the endpoints, the connection "
            "is still ESTABLISHED on this host. The next send() is retransmitted into the void until tcp_retries2 "
            "is exhausted: with the default of 15 that is at least 924.6 s (~15 minutes). Until then a blocking "
            "read or write hangs and the application sees no error (field report 000, section 2.1.3)."
        ),
        mechanism=[
            "An idle connection outlives the middlebox's idle timeout (no keepalive, or keepalive slower than the "
            "timeout, see NAT001/NAT002); the NAT/LB removes the flow and, unless it sends RSTs on expiry, tells "
            "nobody.",
            "The application then writes a request: the segment has no flow on the middlebox and is dropped (or, "
            "with SNAT port reuse, lands on a new unrelated flow and is ignored or answered with a RST).",
            "The kernel retransmits with exponential backoff from the current RTO (at least 200 ms) up to "
            "TCP_RTO_MAX (120 s) and gives up after tcp_retries2 retransmissions; ip-sysctl.rst gives 924.6 s for "
            "the default of 15 as a lower bound for the effective timeout.",
            "Until then send() succeeds into the socket buffer, a thread blocked in recv() waiting for the reply "
            "hangs, a thread blocked in send() hangs once the buffer fills, and connection pools keep handing out "
            "the dead connection. The error finally surfaces as ETIMEDOUT.",
        ],
        when_it_matters=(
            "Hosts behind cloud NAT gateways or load balancers (Azure LB 4 min, AWS NLB/NAT 350 s, GCP Cloud NAT "
            "20 min) with long-lived, sometimes idle connections: database and cache pools, message brokers, "
            "RPC channels. Only when the middlebox drops the flow silently."
        ),
        remediation=(
            "First keep flows alive: TCP keepalive below the idle timeout on these connections (see NAT001/NAT002) "
            "or application heartbeats. Then bound the damage: TCP_USER_TIMEOUT or application-level read "
            "timeouts on the affected sockets, or lower net.ipv4.tcp_retries2 host-wide (8 gives ~102 s, the "
            "RFC 1122 minimum of 100 s) accepting that every connection then gives up sooner during real outages."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_retries2 (15 -> 924.6 s hypothetical timeout; RFC 1122 >= 8)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="include/net/tcp.h: TCP_RTO_MIN (200 ms), TCP_RTO_MAX (120 s), TCP_RETR2 15",
                url="https://github.com/torvalds/linux/blob/master/include/net/tcp.h",
            ),
            Reference(title="tcp(7): tcp_retries2", url="https://man7.org/linux/man-pages/man7/tcp.7.html"),
            Reference(
                title="Azure Load Balancer: TCP idle timeout and TCP reset on idle (the middlebox of field report 000)",
                url="https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-tcp-idle-timeout",
            ),
        ],
    )

    def check(self, f: Facts):
        if f.context.nat_idle_timeout is None:
            return self.na("no NAT/load-balancer idle timeout known (give --nat-idle-timeout or --profile)")
        return super().check(f)

    def judge(self, f: Facts, v: Value):
        n = v.int
        if n is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        if n <= _RFC1122_MIN:
            return None
        idle = f.context.nat_idle_timeout
        hang = hypothetical_timeout(n)
        ev: dict = {
            "tcp_retries2": n,
            "tcp_retries2_origin": v.origin,
            "retransmission_timeout_s": hang,
            "retransmission_timeout_s_at_8": hypothetical_timeout(_RFC1122_MIN),
            "nat_idle_timeout": idle,
            "nat_idle_timeout_source": f.context.nat_idle_source,
            "nat_idle_explicit": f.context.nat_idle_explicit,
        }
        ctx = [f.context.describe_nat()]
        if f.context.nat_idle_explicit and n >= _DEFAULT:
            sev = Severity.medium
            ctx.append(f"the idle timeout was given (not guessed) and tcp_retries2={n} keeps the default-length hang")
        else:
            sev = Severity.low
            if not f.context.nat_idle_explicit:
                ctx.append("the idle timeout is assumed from auto-detection, not given")
        resetting = _resetting_profile(f)
        tail = ""
        if resetting:
            sev = sev.lowered()
            ev["middlebox_sends_reset"] = resetting
            ctx.append(f"profile {resetting} sends an RST when the flow expires, which ends the hang early")
            tail = (
                f" Profile {resetting} says the middlebox answers with an RST after expiry, so most sends fail "
                "fast instead; the hang remains where the RST is lost or filtered."
            )
        ka = f.value("net.ipv4.tcp_keepalive_time").int
        if ka is not None:
            ev["tcp_keepalive_time"] = ka
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx,
            fix={self.key: str(_RFC1122_MIN)},
            explanation=(
                f"The NAT/load balancer forgets flows idle for {idle} s. A connection that was idle longer and "
                f"then sends is retransmitted into a flow that no longer exists, and with {v.describe()} the "
                f"kernel keeps retrying for at least {hang:.1f} s (~{hang / 60:.0f} min) "
                "before reporting ETIMEDOUT: a thread blocked on that connection hangs that long and pools keep "
                f"handing it out.{tail}"
            ),
        )
