"""PORT003: ip_local_port_range starts so low that outgoing connections take well-known service ports."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.snapshot import parse_port_list

RANGE = "net.ipv4.ip_local_port_range"
RESERVED = "net.ipv4.ip_local_reserved_ports"

# Ports commonly bound by services after boot (IANA registrations or the product's documented default).
SERVICE_PORTS: dict[int, str] = {
    1433: "mssql",
    1521: "oracle",
    2181: "zookeeper",
    2379: "etcd",
    2380: "etcd-peer",
    3000: "grafana/node apps",
    3306: "mysql",
    4369: "epmd (rabbitmq/erlang)",
    5000: "registry/flask",
    5432: "postgresql",
    5672: "amqp",
    5900: "vnc",
    6379: "redis",
    6443: "kube-apiserver",
    7000: "cassandra",
    8000: "http-alt",
    8080: "http-alt",
    8443: "https-alt",
    8500: "consul",
    9000: "minio/php-fpm",
    9042: "cassandra-cql",
    9090: "prometheus",
    9092: "kafka",
    9100: "node_exporter",
    9200: "elasticsearch",
    9300: "elasticsearch-transport",
    10250: "kubelet",
    11211: "memcached",
    15001: "istio outbound",
    15006: "istio inbound",
    27017: "mongodb",
}
_SHOW = 25


def _parity_matters(f: Facts) -> bool:
    """True only when the knowledge base says this kernel has the parity preference (unknown builds stay quiet)."""
    status = f.issue("KI-TCP-CONNECT-EVEN-PORTS")
    return status is not None and status.applies is True


class PortRangeStartsLow(Rule):
    meta = RuleMeta(
        id="PORT003",
        title="ip_local_port_range starts low or has same-parity ends: ephemeral ports collide with services",
        severity=Severity.low,
        keys=[RANGE, RESERVED],
        summary=(
            "Widening the ephemeral range downwards (1024-65535 is a popular 'tuning') puts well-known service "
            "ports such as 3306, 5432, 6379, 8080 and 9200 into the pool connect() draws from. Any outgoing "
            "connection may then sit on a port a service wants to bind, and that service fails to (re)start with "
            "EADDRINUSE until the connection and its TIME-WAIT are gone."
        ),
        mechanism=[
            "connect() without bind() and bind() to port 0 pick a local port from ip_local_port_range, skipping "
            "only ports in ip_local_reserved_ports and ports already bound by listeners.",
            "A service that is not running at that moment (restart, deploy, crash loop, started after the clients) "
            "does not protect its port, so a busy host hands it to an outgoing connection.",
            "The service's bind() then fails with EADDRINUSE for as long as that connection lives, plus 60 s of "
            "TIME-WAIT if this host closed it; the failure depends on which ports happened to be in use, so it "
            "looks random.",
            "Ports below the range are never handed out automatically; the kernel default range is 32768-60999 "
            "(ip-sysctl.rst), above every service port this rule checks.",
        ],
        when_it_matters=(
            "Hosts that run services on well-known ports and also make many outgoing connections: application "
            "servers with local databases or caches, Kubernetes nodes (kubelet 10250, NodePorts), sidecars "
            "(istio 15001/15006)."
        ),
        remediation=(
            "Start the range at 10000 or above (the default is 32768-60999), or list the service ports in "
            "net.ipv4.ip_local_reserved_ports so they are never used for automatic port assignment. Prefer start "
            "and end values of different parity (one even, one odd)."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: ip_local_port_range (default 32768 60999, parity), ip_local_reserved_ports",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/sysctl_net_ipv4.c set_local_port_range(): 'ip_local_port_range: prefer "
                "different parity for start/end values.'",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/sysctl_net_ipv4.c",
            ),
            Reference(
                title="tcp/dccp: try to not exhaust ip_local_port_range in connect() (07f4c90062f8, 2015): "
                "connect() and bind() prefer ports of opposite parity",
                url="https://github.com/torvalds/linux/commit/07f4c90062f8fc7c8c26f8f95324cbe8fa3145a5",
            ),
        ],
    )

    def check(self, f: Facts):
        v = f.value(RANGE)
        if v.origin == "absent":
            return self.na(f.absent_reason(RANGE))
        rng = v.ints
        if v.raw is None:
            return self.unread(f, f"{RANGE} value unknown")
        if not rng or len(rng) != 2 or rng[1] < rng[0]:
            return self.na(f"{RANGE}={v.raw!r} is not a 'low high' pair")
        if f.kind == "config" and v.origin != "config":
            return None
        lo, hi = rng
        limit = int(f.context.threshold("low_port_range_start"))
        both_same = (lo ^ hi) & 1 == 0
        parity_applies = _parity_matters(f)
        same_parity = both_same and parity_applies
        parity_note = (
            f"Both ends of {lo}-{hi} are {'even' if lo % 2 == 0 else 'odd'}: connect() and bind(0) search ports "
            "of opposite parity (commit 07f4c90062f8), which works best when the range has one even and one odd "
            "end, and recent kernels log 'ip_local_port_range: prefer different parity for start/end values.' "
            "(net/ipv4/sysctl_net_ipv4.c)."
        )
        ev: dict = {
            "ip_local_port_range": f"{lo} {hi}",
            "origin": v.origin,
            "low_port_range_start": limit,
            "same_parity": both_same,
        }
        if both_same and not parity_applies:
            ev["parity_preference_applies"] = False
        if lo >= limit:
            if not same_parity:
                return None
            return self.finding(
                f,
                severity=Severity.info,
                keys=[RANGE],
                evidence=ev,
                context=["only the parity preference is affected; the range itself is fine"],
                fix={RANGE: f"{lo} {hi - 1 if hi > lo + 1 else hi}"},
                explanation=parity_note,
                remediation="Make one end odd and the other even, e.g. by lowering the end by one.",
            )
        reserved_v = f.value(RESERVED)
        reserved = parse_port_list(reserved_v.raw or "")
        wanted = dict(SERVICE_PORTS)
        for p in f.context.sidecar_ports:
            wanted.setdefault(p, "sidecar/redirect target")
        inside = sorted(p for p in wanted if lo <= p <= hi)
        exposed = [p for p in inside if p not in reserved]
        protected = [p for p in inside if p in reserved]
        ev["service_ports_in_range"] = [f"{p} ({wanted[p]})" for p in exposed[:_SHOW]]
        ev["service_ports_in_range_count"] = len(exposed)
        if protected:
            ev["service_ports_reserved"] = protected[:_SHOW]
        ev["ports_below_threshold_in_range"] = max(0, min(hi, limit - 1) - lo + 1)
        listeners: list[str] = []
        if f.kind == "host":
            seen = set()
            for s in f.snapshot.sockets.rows("LISTEN"):
                if (
                    s.state == "LISTEN"
                    and lo <= s.local_port < limit
                    and s.local_port not in reserved
                    and s.local_port not in seen
                ):
                    seen.add(s.local_port)
                    listeners.append(str(s.local_port))
            if listeners:
                ev["listeners_below_threshold_in_range"] = listeners[:_SHOW]
        named = ", ".join(f"{p} ({wanted[p]})" for p in exposed[:10]) + (" ..." if len(exposed) > 10 else "")
        parts = [
            f"ip_local_port_range={lo} {hi} ({v.where()}) starts below {limit}, so outgoing connections "
            f"draw from {ev['ports_below_threshold_in_range']} ports below {limit} as well."
        ]
        if exposed:
            parts.append(
                f"{len(exposed)} common service port(s) are inside it and not reserved: {named}. A service "
                "(re)started while an outgoing connection holds its port fails with EADDRINUSE."
            )
        else:
            parts.append(
                "None of the common service ports checked are exposed"
                + (" (they are in ip_local_reserved_ports)." if protected else ".")
            )
        if listeners:
            parts.append(f"Services listen on {', '.join(listeners[:10])} here, inside the range (see PORT002).")
        if same_parity:
            parts.append(parity_note)
        new_lo = limit if (limit ^ hi) & 1 else limit + 1
        ctx = [
            f"threshold low_port_range_start={limit}",
            "severity low: it fails only when a service binds while its port is taken",
        ]
        if f.kind == "config":
            ctx.append("config target: common service ports assumed, no listener data")
        return self.finding(
            f,
            severity=Severity.low,
            evidence=ev,
            context=ctx,
            fix={RANGE: f"{new_lo} {hi}"},
            explanation=" ".join(parts),
        )
