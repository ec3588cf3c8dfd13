"""TCP008: orphaned sockets near tcp_max_orphans: the kernel resets connections ("too many orphaned sockets")."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

KEY = "net.ipv4.tcp_max_orphans"
# net/ipv4/tcp_timer.c tcp_out_of_resources(): shift++ when the peer has not opened its window / nothing
# was sent for 2*TCP_RTO_MAX, shift++ again after a soft ICMP error; tcp_check_oom(sk, shift) then compares
# orphans << shift with tcp_max_orphans, so stalled orphans are reset at max/2 or max/4.
_MAX_SHIFT = 2
_ORPHAN_BYTES = 64 * 1024  # ip-sysctl.rst: "each orphan eats up to ~64K of unswappable memory"


class OrphanLimit(Rule):
    meta = RuleMeta(
        id="TCP008",
        title="Orphaned TCP sockets near tcp_max_orphans: connections are reset ('too many orphaned sockets')",
        severity=Severity.medium,
        keys=[KEY],
        applies_to=["host"],
        summary=(
            "An orphan is a connection the application has closed but the kernel is still finishing (FIN-WAIT, "
            "CLOSING, LAST-ACK with unsent or unacknowledged data). When their number exceeds tcp_max_orphans, the "
            "kernel stops finishing them gracefully and resets them, and for stalled connections it does so at "
            "half or a quarter of the limit. Peers see connection resets and truncated responses."
        ),
        mechanism=[
            "close() on a socket with data still queued, or before the peer acknowledged the FIN, leaves an orphan "
            "that the kernel keeps retransmitting (tcp_orphan_retries) and counts in /proc/net/sockstat 'orphan'.",
            "tcp_check_oom() (net/ipv4/tcp.c) declares 'too many orphaned sockets' when orphans << shift exceeds "
            "tcp_max_orphans; on close and on every retransmission timeout such a connection is aborted with a "
            "RST and TcpExt.TCPAbortOnMemory is incremented.",
            "tcp_out_of_resources() (net/ipv4/tcp_timer.c) raises shift by one when the peer sent nothing or kept "
            "its window closed for 2*TCP_RTO_MAX (240 s) and by one more after an ICMP soft error, so stalled "
            "orphans are already reset at tcp_max_orphans/2 or /4.",
            "The peer sees the response cut short by a RST instead of a FIN: truncated downloads, 'connection reset "
            "by peer' on the last write, at random and only under load.",
            "TCPAbortOnMemory also counts aborts for TCP memory exhaustion ('out of memory -- consider tuning "
            "tcp_mem'): with few orphans the counter points at tcp_mem instead.",
        ],
        when_it_matters=(
            "Busy front ends and proxies that close many connections to slow or vanished clients (mobile networks, "
            "L7 floods), and hosts where tcp_max_orphans was lowered or is small because the host has little RAM."
        ),
        remediation=(
            "Raise net.ipv4.tcp_max_orphans (each orphan costs up to ~64 KB of unswappable memory, per "
            "ip-sysctl.rst) and find why so many connections are orphaned: clients that stop reading, huge send "
            "buffers at close, tcp_orphan_retries too high. Do not lower the limit to 'protect' the host."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_max_orphans, tcp_orphan_retries",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp.c tcp_check_oom(): 'too many orphaned sockets'",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp.c",
            ),
            Reference(
                title="net/ipv4/tcp_timer.c tcp_out_of_resources(): shift and LINUX_MIB_TCPABORTONMEMORY",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_timer.c",
            ),
        ],
    )

    def check(self, f: Facts):
        v = f.value(KEY)
        if v.origin == "absent":
            return self.na(f.absent_reason(KEY))
        limit_max = v.int
        if limit_max is None:
            return self.unread(f, f"{KEY} value unknown")
        orphans = f.snapshot.counters.get("TCP.orphan")
        aborts = f.counter_evidence("TcpExt.TCPAbortOnMemory")
        if orphans is None and aborts is None:
            return self.na("no /proc/net/sockstat orphan count or TCPAbortOnMemory counter collected")
        warn = f.context.threshold("orphans_warn")
        ratio = (orphans / limit_max) if orphans is not None and limit_max > 0 else None
        ev: dict = {
            "tcp_max_orphans": limit_max,
            "orphans": orphans,
            "orphans_warn": warn,
            "effective_limit_for_stalled_orphans": limit_max >> _MAX_SHIFT,
        }
        if ratio is not None:
            ev["orphan_ratio"] = round(ratio, 3)
        if aborts is not None:
            ev["TCPAbortOnMemory"] = aborts
        rate = f.counter_rate("TcpExt.TCPAbortOnMemory")
        aborted = aborts is not None and aborts["total_since_boot"] > 0
        rising = rate is not None and rate > 0
        quarter = ratio is not None and ratio >= 1 / (1 << _MAX_SHIFT)

        if not ((ratio is not None and ratio >= warn) or rising or (aborted and quarter)):
            if aborted:
                return self.finding(
                    f,
                    severity=Severity.low,
                    evidence=ev,
                    context=[
                        f"orphans are only {ratio:.0%} of tcp_max_orphans"
                        if ratio is not None
                        else "orphan count unknown"
                    ],
                    explanation=(
                        f"TcpExt.TCPAbortOnMemory is {aborts['total_since_boot']} since boot, but with {orphans} "  # type: ignore[index]
                        f"orphans against tcp_max_orphans={limit_max} the orphan limit is not what triggered it: "
                        "the same counter counts aborts for TCP memory exhaustion ('out of memory -- consider "
                        "tuning tcp_mem'). Check net.ipv4.tcp_mem against /proc/net/sockstat 'mem'."
                    ),
                    remediation="Compare /proc/net/sockstat 'TCP ... mem' with net.ipv4.tcp_mem and raise tcp_mem or "
                    "reduce per-socket buffers.",
                )
            return None

        if (ratio is not None and ratio >= 1) or rising:
            sev = Severity.high
        else:
            sev = Severity.medium
        parts = [
            f"{orphans} orphaned sockets against tcp_max_orphans={limit_max} ({v.where()})"
            + (f", {ratio:.0%} of the limit." if ratio is not None else ".")
        ]
        if ratio is not None and ratio >= 1:
            parts.append(
                "The limit is exceeded: every orphan reaching close or a retransmission timeout is reset "
                "('too many orphaned sockets')."
            )
        else:
            parts.append(
                f"Orphans that stalled (no progress for 240 s, or after an ICMP error) are already reset at "
                f"{limit_max >> 1} or {limit_max >> _MAX_SHIFT}, because the kernel shifts the orphan count by up "
                "to two before comparing it with the limit."
            )
        if rising:
            parts.append(f"TcpExt.TCPAbortOnMemory is rising at {rate:.1f}/s: connections are being reset now.")
        elif aborted:
            parts.append(
                f"TcpExt.TCPAbortOnMemory is {aborts['total_since_boot']} since boot: connections have "  # type: ignore[index]
                "been reset for this reason."
            )
        parts.append("Peers see responses cut off by a RST instead of a clean FIN.")
        new = max(limit_max * 2, (orphans or 0) * 4)
        ctx = [f"threshold orphans_warn={warn:.0%} of tcp_max_orphans"]
        if orphans is not None:
            ctx.append(
                f"raising the limit to {new} may cost up to {new * _ORPHAN_BYTES // (1 << 20)} MiB if all "
                "are used (~64 KB per orphan)"
            )
        return self.finding(f, severity=sev, evidence=ev, context=ctx, fix={KEY: str(new)}, explanation=" ".join(parts))
