"""PORT001: too few ephemeral ports for the connections to one destination (EADDRNOTAVAIL)."""

from collections import Counter

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta
from tcpaudit.snapshot import is_loopback, parse_port_list

_TIME_WAIT_MS = 60_000  # TCP_TIMEWAIT_LEN (include/net/tcp.h): the timewait timer starts here and counts down
_REUSE_DELAY_MS = 1000  # before 6.14 (tcp_tw_reuse_delay): tcp_twsk_unique wants the TIME-WAIT socket >= 1 s old


def _tw_reuse_applies(tw_reuse: int | None, timestamps: int | None, remote_addr: str) -> bool:
    """Whether connect() may take over a TIME-WAIT port to this destination (tcp_twsk_unique)."""
    if timestamps == 0 or tw_reuse in (None, 0):
        return False
    return tw_reuse == 1 or (tw_reuse == 2 and is_loopback(remote_addr))


class EphemeralExhaustion(Rule):
    meta = RuleMeta(
        id="PORT001",
        title="Ephemeral ports run out for outgoing connections (connect() fails with EADDRNOTAVAIL)",
        severity=Severity.high,
        keys=["net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_tw_reuse"],
        summary=(
            "Every outgoing connection to one destination (address and port) needs its own local port from "
            "ip_local_port_range, minus ip_local_reserved_ports, and keeps it through TIME-WAIT (60 s) after an "
            "active close. A narrow range or a high connection churn to one destination exhausts it."
        ),
        mechanism=[
            "A TCP connection is identified by its 4-tuple; to the same remote address and port, each connection "
            "from one local address needs a different local port, picked by connect() from "
            "ip_local_port_range minus ip_local_reserved_ports.",
            "The side that closes first keeps the port in TIME-WAIT for a fixed 60 s (TCP_TIMEWAIT_LEN); "
            "tcp_fin_timeout does not shorten it.",
            "A client that opens and closes connections to one destination faster than (usable ports / 60 s) "
            "runs out: connect() fails with EADDRNOTAVAIL (errno 99, 'Cannot assign requested address'), or "
            "spends ever longer searching the range.",
            "tcp_tw_reuse lets connect() take over a TIME-WAIT port when timestamps prove it safe (1: for all "
            "destinations; 2, the default since Linux 4.18: loopback only), and only once the TIME-WAIT socket is "
            "at least 1 s old (tcp_tw_reuse_delay, in ms, since 6.14): with reuse a client still runs out above "
            "about (usable ports / 1 s) new connections per destination. It does nothing with tcp_timestamps=0 "
            "and nothing for incoming connections.",
            "Behind SNAT the middlebox has its own, often smaller, port budget per destination (Azure LB "
            "preallocates 1,024 SNAT ports per instance for small pools; AWS NAT Gateway allows 55,000 "
            "connections per unique destination); running out there silently drops SYNs.",
        ],
        when_it_matters=(
            "Clients with high connection churn to a few destinations: proxies, API gateways, services without "
            "connection pooling talking to one database or cache, health checkers."
        ),
        remediation=(
            "Reuse connections (pooling, HTTP keep-alive); widen net.ipv4.ip_local_port_range (e.g. 10000 65535 "
            "when no services listen in it, or reserve their ports in ip_local_reserved_ports); set "
            "net.ipv4.tcp_tw_reuse=1 on clients (outgoing connections only; needs tcp_timestamps=1); spread "
            "load over more destination addresses/ports or source addresses. Do not shrink tcp_max_tw_buckets "
            "or enable tcp_tw_recycle to 'fix' TIME-WAIT."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: ip_local_port_range, ip_local_reserved_ports, tcp_tw_reuse",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="tcp/dccp: try to not exhaust ip_local_port_range in connect() (commit 07f4c90062f8)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=07f4c90062f8fc7c8c26f8f95324cbe8fa3145a5",
            ),
            Reference(
                title="Azure: SNAT port exhaustion and preallocated ports",
                url="https://learn.microsoft.com/en-us/azure/load-balancer/load-balancer-outbound-connections",
            ),
        ],
        headline=["ip_local_port_range", "usable_ports", "destination", "ports_held", "time_wait", "usage"],
    )

    def check(self, f: Facts):
        rng = f.value("net.ipv4.ip_local_port_range")
        ints = rng.ints
        if ints is None or len(ints) != 2:
            return self.unread(f, "net.ipv4.ip_local_port_range unknown")
        lo, hi = ints
        if not 0 < lo <= hi <= 65535:
            return self.na(f"ip_local_port_range {rng.raw!r} is not a valid range (SYS002 reports invalid values)")
        reserved_v = f.value("net.ipv4.ip_local_reserved_ports")
        reserved = {p for p in parse_port_list(reserved_v.raw or "") if lo <= p <= hi}
        usable = hi - lo + 1 - len(reserved)
        tw_reuse = f.value("net.ipv4.tcp_tw_reuse").int
        timestamps = f.value("net.ipv4.tcp_timestamps").int
        delay_ms = f.value("net.ipv4.tcp_tw_reuse_delay").int or _REUSE_DELAY_MS
        ev: dict = {
            "ip_local_port_range": f"{lo} {hi}",
            "reserved_in_range": len(reserved),
            "usable_ports": usable,
            "tcp_tw_reuse": tw_reuse,
        }
        keys = ["net.ipv4.ip_local_port_range", "net.ipv4.ip_local_reserved_ports"]
        findings = []

        if f.kind == "host" and len(f.snapshot.sockets):
            worst = self._worst_destination(f, lo, hi, tw_reuse, timestamps, delay_ms)
            if worst is not None:
                (raddr, rport), held, tw, reusable = worst
                share = held / usable if usable > 0 else 1.0
                ev.update(
                    {
                        "destination": f"[{raddr}]:{rport}" if ":" in raddr else f"{raddr}:{rport}",
                        "ports_held": held,
                        "time_wait": tw,
                        "time_wait_reusable": reusable,
                        "usage": round(share, 4),
                    }
                )
                if _tw_reuse_applies(tw_reuse, timestamps, raddr):
                    ev["tw_reuse_delay_ms"] = delay_ms
                warn, high = f.context.threshold("port_usage_warn"), f.context.threshold("port_usage_high")
                if share >= warn:
                    sev = Severity.critical if share >= 0.95 else Severity.high if share >= high else Severity.medium
                    young = tw - reusable
                    reuse_note = (
                        f" {reusable:,} TIME-WAIT sockets are old enough (>= {delay_ms} ms) to be reused "
                        "via tcp_tw_reuse and are not counted"
                        + (f"; {young:,} younger ones still block their ports." if young else ".")
                        if _tw_reuse_applies(tw_reuse, timestamps, raddr)
                        else " tcp_tw_reuse does not apply to this destination (it is "
                        f"{tw_reuse}{'; timestamps off' if timestamps == 0 else ''}), so every "
                        "TIME-WAIT socket blocks its port for 60 s."
                    )
                    findings.append(
                        self.finding(
                            f,
                            severity=sev,
                            evidence=ev,
                            keys=keys + ["net.ipv4.tcp_tw_reuse"],
                            fix={"net.ipv4.ip_local_port_range": "10000 65535"} if usable < 50000 else {},
                            explanation=(
                                f"{held:,} local ports are held by connections to {ev['destination']} ({tw:,} of them "
                                f"in TIME-WAIT) against {usable:,} usable ephemeral ports ({lo}-{hi} minus "
                                f"{len(reserved)} reserved): {share:.1%} used. When it reaches 100%, connect() to this "
                                f"destination fails with EADDRNOTAVAIL until TIME-WAIT sockets expire (60 s)."
                                + reuse_note
                            ),
                        )
                    )
        if not findings and usable < f.context.threshold("min_ephemeral_ports"):
            if tw_reuse == 1 and timestamps != 0:  # every destination: a port is free again after the delay
                rate = usable * 1000 // max(1, delay_ms)
                why = f"With tcp_tw_reuse=1 a TIME-WAIT port can be taken over after {delay_ms} ms, so a"
            else:
                rate = usable // 60
                why = "With a 60 s TIME-WAIT (tcp_tw_reuse does not apply to remote destinations here), a"
            findings.append(
                self.finding(
                    f,
                    severity=Severity.medium,
                    evidence=ev,
                    keys=keys,
                    fix={
                        "net.ipv4.ip_local_port_range": "10000 65535"
                        if lo >= 10000 or hi - lo < 20000
                        else f"{lo} 65535"
                    },
                    explanation=(
                        f"Only {usable:,} ephemeral ports are usable ({lo}-{hi} minus {len(reserved)} reserved), below "
                        f"the {int(f.context.threshold('min_ephemeral_ports')):,} threshold. {why} client can sustain "
                        f"at most about {rate:,} new connection{'' if rate == 1 else 's'} per second to any one "
                        "destination before connect() fails with EADDRNOTAVAIL."
                    ),
                )
            )
        return findings or None

    @staticmethod
    def _worst_destination(f: Facts, lo: int, hi: int, tw_reuse, timestamps, delay_ms: int):
        t = f.snapshot.sockets
        listening = {p for s, p in zip(t.state, t.local_port, strict=False) if s == "LISTEN"}
        held: Counter = Counter()
        tw: Counter = Counter()
        old_tw: Counter = Counter()  # TIME-WAIT sockets past the reuse delay (age unknown: counted as past it)
        young_after_ms = _TIME_WAIT_MS - delay_ms  # remaining time above this: younger than the delay
        for state, lport, raddr, rport, timer_ms in zip(
            t.state, t.local_port, t.remote_addr, t.remote_port, t.timer_ms, strict=False
        ):
            if state == "LISTEN" or rport == 0 or not lo <= lport <= hi or lport in listening:
                continue
            key = (raddr, rport)
            held[key] += 1
            if state == "TIME-WAIT":
                tw[key] += 1
                if timer_ms is None or timer_ms <= young_after_ms:
                    old_tw[key] += 1
        if not held:
            return None
        best = None
        for key, n in held.items():
            reusable = old_tw[key] if _tw_reuse_applies(tw_reuse, timestamps, key[0]) else 0
            blocking = n - reusable
            if best is None or blocking > best[1]:
                best = (key, blocking, tw[key], reusable)
        return best
