"""PORT002: services listen on ports that connect() may hand out as ephemeral ports."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.snapshot import is_loopback, parse_port_list

_SHOW = 20


def _ranges(ports: list[int]) -> str:
    out: list[str] = []
    start: int | None = None
    prev: int | None = None
    for p in sorted(ports):
        if start is None:
            start = prev = p
        elif prev is not None and p == prev + 1:
            prev = p
        else:
            out.append(f"{start}-{prev}" if start != prev else str(start))
            start = prev = p
    if start is not None:
        out.append(f"{start}-{prev}" if start != prev else str(start))
    return ",".join(out)


class ListenerInEphemeralRange(Rule):
    meta = RuleMeta(
        id="PORT002",
        title="Listening ports inside ip_local_port_range without a reservation",
        severity=Severity.medium,
        keys=["net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports"],
        applies_to=["host"],
        summary=(
            "A service listens on a port inside the ephemeral range that is not in ip_local_reserved_ports. While "
            "it is down (restart, deploy, crash loop) any outgoing connection may take that port, and the service "
            "then fails to start with EADDRINUSE; sidecars and port-forwarders that listen in the range collide "
            "with live connections of their own pod."
        ),
        mechanism=[
            "connect() and bind(0) pick local ports from ip_local_port_range, skipping only ports in "
            "ip_local_reserved_ports and ports currently bound with bind().",
            "While the listener runs, its bind() protects the port; as soon as it stops, the port is just another "
            "free ephemeral port.",
            "A busy host hands it to an outgoing connection within seconds; the service's next bind() fails with "
            "EADDRINUSE ('Address already in use') for as long as that connection, then its TIME-WAIT, lives.",
            "Where NAT redirects traffic to a local listener (a sidecar proxy on 15001/15006), a new outgoing "
            "connection can pick a port whose redirected 4-tuple is still held by an old half-closed socket of "
            "the listener: the SYN is answered with a challenge ACK and the connect times out (field report 003).",
        ],
        when_it_matters=(
            "Hosts running services on high ports (NodePorts, Java/Go services on 3xxxx-6xxxx, exporters, proxies) "
            "alongside outgoing traffic; containers sharing a network namespace with a sidecar."
        ),
        remediation=(
            "Add the listening ports to net.ipv4.ip_local_reserved_ports (comma-separated list or ranges), or move "
            "the ephemeral range away from them, or move the services below the range."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: ip_local_reserved_ports",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="istio/istio#43301: connect timed out, ephemeral port collides with the 15001 listener",
                url="https://github.com/istio/istio/issues/43301",
            ),
        ],
    )

    def check(self, f: Facts):
        rng = f.value("net.ipv4.ip_local_port_range").ints
        if not rng or len(rng) != 2:
            return self.unread(f, "net.ipv4.ip_local_port_range unknown")
        lo, hi = rng
        t = f.snapshot.sockets
        if t.source == "none":
            return self.unread(f, "the socket table was not collected")
        reserved_raw = f.value("net.ipv4.ip_local_reserved_ports").raw or ""
        reserved = parse_port_list(reserved_raw)
        listen_addrs: dict[int, set[str]] = {}
        for state, addr, port in zip(t.state, t.local_addr, t.local_port, strict=False):
            if state == "LISTEN" and lo <= port <= hi and port not in reserved:
                listen_addrs.setdefault(port, set()).add(addr)
        if not listen_addrs:
            return None
        listen = sorted(listen_addrs)
        ports = set(listen)
        loopback_only = sorted(p for p, addrs in listen_addrs.items() if all(is_loopback(a) for a in addrs))
        # SYN-SENT sockets are always outgoing: one on a listener's port is a live collision.
        collisions = sum(1 for s, p in zip(t.state, t.local_port, strict=False) if s == "SYN-SENT" and p in ports)
        # A listener bound to loopback only conflicts only with outgoing connections from loopback.
        sev = Severity.high if collisions else Severity.low if len(loopback_only) == len(listen) else Severity.medium
        new_reserved = ",".join(x for x in [reserved_raw.strip(), _ranges(listen)] if x)
        ev = {
            "listening_ports_in_range": listen[:_SHOW],
            "count": len(listen),
            "loopback_only": len(loopback_only),
            "ip_local_port_range": f"{lo} {hi}",
            "ip_local_reserved_ports": reserved_raw,
            "outgoing_collisions": collisions,
        }
        shown = ", ".join(map(str, listen[:_SHOW])) + (" ..." if len(listen) > _SHOW else "")
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            fix={"net.ipv4.ip_local_reserved_ports": new_reserved},
            explanation=(
                f"{len(listen)} listening port(s) ({shown}) lie inside the ephemeral range {lo}-{hi} and are not "
                "reserved. When one of these services restarts, an outgoing connection can take its port first, "
                "and the service fails to bind with EADDRINUSE."
                + (
                    f" {len(loopback_only)} of them listen on loopback only, where only outgoing connections from "
                    "a loopback address can take the port."
                    if loopback_only
                    else ""
                )
                + (
                    f" {collisions} outgoing SYN-SENT socket(s) are using listener ports right now."
                    if collisions
                    else ""
                )
            ),
        )
