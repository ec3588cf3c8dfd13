"""CT002: half-closed sockets outlive their conntrack entries; new connects collide with them."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

ISSUE = "KI-CT-CHALLENGE-ACK-RST"
_HALF_CLOSED = {"FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK", "CLOSING"}


class HalfClosedOutlivesConntrack(Rule):
    meta = RuleMeta(
        id="CT002",
        title="Half-closed sockets on NAT-redirected ports outlive their conntrack entries",
        severity=Severity.high,
        keys=[
            "net.netfilter.nf_conntrack_tcp_timeout_close_wait",
            "net.netfilter.nf_conntrack_tcp_timeout_fin_wait",
            "net.ipv4.ip_local_port_range",
        ],
        summary=(
            "A local proxy reached through iptables REDIRECT/DNAT (a sidecar) holds half-closed connections "
            "(FIN-WAIT-2, CLOSE-WAIT) long after conntrack forgot them (nf_conntrack_tcp_timeout_close_wait is "
            "60 s by default). A new connect() that picks the same ephemeral port is redirected onto the stale "
            "socket and stalls."
        ),
        mechanism=[
            "The application's outgoing connections are redirected to a local listener (e.g. Envoy on 15001); the "
            "proxy's accepted socket is 127.0.0.1:15001 <-> POD_IP:EPHEMERAL_PORT.",
            "If the proxy leaks the connection half-closed (FIN-WAIT-2 or CLOSE-WAIT with no timer), the socket "
            "lives on, but conntrack drops its entry after nf_conntrack_tcp_timeout_close_wait / fin_wait.",
            "connect() only checks the pre-NAT 4-tuple, so it may pick the same ephemeral port again; after "
            "REDIRECT the SYN lands on the stale socket, which answers with a challenge ACK.",
            "The client's RST is marked INVALID by conntrack on kernels without the challenge-ACK fix (CT001), so "
            "the stale socket survives and every SYN retry fails: connect() times out. On fixed kernels the retry "
            "succeeds after a one-second stall.",
        ],
        when_it_matters=(
            "Pods with a sidecar proxy (Istio/Envoy REDIRECT to 15001/15006) or any local transparent proxy; "
            "proxies known to leak half-closed TCP connections (istio/istio#43297)."
        ),
        remediation=(
            "Fix or bound the half-closed leak in the proxy (e.g. Envoy idle timeouts); reserve nothing but "
            "widen the ephemeral range to make reuse rarer; on old kernels set "
            "nf_conntrack_tcp_ignore_invalid_rst=1 or upgrade (CT001). Raising "
            "nf_conntrack_tcp_timeout_close_wait to cover the leak's lifetime keeps conntrack in sync at the cost "
            "of table space."
        ),
        references=[
            Reference(
                title="istio/istio#43301: connect timed out by ephemeral port collision with 15001",
                url="https://github.com/istio/istio/issues/43301",
            ),
            Reference(
                title="istio/istio#43297: TCP proxy half-closed connection leak for 1 hour",
                url="https://github.com/istio/istio/issues/43297",
            ),
            Reference(
                title="nf_conntrack-sysctl.rst: nf_conntrack_tcp_timeout_close_wait",
                url="https://www.kernel.org/doc/Documentation/networking/nf_conntrack-sysctl.rst",
            ),
        ],
        headline=[
            "half_closed_on_redirect_ports",
            "without_timer",
            "redirect_ports",
            "nf_conntrack_tcp_timeout_close_wait",
            "examples",
        ],
    )

    def check(self, f: Facts):
        if f.kind == "config":
            return self.na(
                "needs a host's socket table and conntrack state (half-closed sockets on redirected "
                "ports), which a configuration file does not have: run `tcpaudit host`"
            )
        if not f.snapshot.conntrack.present:
            return self.na("conntrack is not loaded on this host")
        ports = set(f.context.sidecar_ports)
        if not ports:
            if f.snapshot.environment.nat_rules is None:
                return self.unknown(
                    "the NAT rules could not be read (iptables -t nat needs root), so whether traffic is "
                    "redirected to a local sidecar port is unknown; rerun as root or give --profile istio"
                )
            return self.na("no NAT REDIRECT/DNAT to a local port seen (and no sidecar profile given)")
        t = f.snapshot.sockets
        if t.source == "none":
            return self.unknown("the socket table was not collected")
        rng = f.value("net.ipv4.ip_local_port_range").ints or [32768, 60999]
        lo, hi = rng[0], rng[-1]
        leaked, untimed = 0, 0
        examples: list[str] = []
        for s in t.rows(*_HALF_CLOSED):
            if s.state in _HALF_CLOSED and s.local_port in ports and lo <= s.remote_port <= hi:
                leaked += 1
                untimed += s.timer is None
                if len(examples) < 5:
                    examples.append(
                        f"{s.state} {s.local_addr}:{s.local_port} <- {s.remote_addr}:{s.remote_port}"
                        + ("" if s.timer else " (no timer: lives until the proxy closes it)")
                    )
        if not leaked:
            return None
        close_wait = f.value("net.netfilter.nf_conntrack_tcp_timeout_close_wait")
        fin_wait = f.value("net.netfilter.nf_conntrack_tcp_timeout_fin_wait")
        status = f.issue(ISSUE)
        unfixed = status is not None and status.applies is not False
        ignore = f.value("net.netfilter.nf_conntrack_tcp_ignore_invalid_rst").int == 1
        sev = Severity.high if unfixed and not ignore else Severity.low
        ev = {
            "half_closed_on_redirect_ports": leaked,
            "without_timer": untimed,
            "redirect_ports": sorted(ports),
            "nf_conntrack_tcp_timeout_close_wait": close_wait.int,
            "nf_conntrack_tcp_timeout_fin_wait": fin_wait.int,
            "examples": examples,
            "kernel_has_challenge_ack_fix": None if status is None else status.applies is False,
        }
        outcome = (
            "the client's RST is marked INVALID on this kernel, so such connects time out"
            if sev is Severity.high
            else "on this kernel the retry gets through after a ~1 s stall"
        )
        why = (
            "high: this kernel marks the client's RST INVALID (no challenge-ACK fix) and "
            "nf_conntrack_tcp_ignore_invalid_rst is off"
            if sev is Severity.high
            else "low: "
            + ("nf_conntrack_tcp_ignore_invalid_rst=1" if ignore else "this kernel has the challenge-ACK fix")
            + ", so a colliding connect() only stalls ~1 s"
        )
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=[why],
            explanation=(
                f"{leaked} half-closed socket(s) on redirected port(s) {', '.join(map(str, sorted(ports)))} hold "
                f"4-tuples whose remote port lies in the ephemeral range {lo}-{hi}; conntrack forgets them after "
                f"{close_wait.int or '?'} s (close_wait) / {fin_wait.int or '?'} s (fin_wait) while {untimed} have "
                "no timer at all. A new connect() from the same address that picks one of those ports is "
                f"redirected onto the stale socket and gets a challenge ACK; {outcome}."
            ),
        )
