"""Evidence numbers of one target, for monitoring: what the Prometheus exposition publishes next to findings.

Read from the Snapshot by the audit (never by a reporter), one unit each; a number that could not be read is
absent, never 0 (an unknown is not a measurement).
"""

from __future__ import annotations

from .snapshot import Snapshot

# Names (keys of Target.measurements) and their units; tcpaudit.reporters.prometheus maps them to metrics.
USABLE_EPHEMERAL_PORTS = "usable_ephemeral_ports"  # ports: ip_local_port_range minus ip_local_reserved_ports in it
TIME_WAIT_SOCKETS = "time_wait_sockets"  # sockets in TIME-WAIT
KEEPALIVE_TIME_SECONDS = "tcp_keepalive_time_seconds"  # net.ipv4.tcp_keepalive_time, seconds
CONNTRACK_ENTRIES = "conntrack_entries"  # nf_conntrack_count
CONNTRACK_LIMIT = "conntrack_entries_limit"  # nf_conntrack_max
PAWS_PREFIX = "paws_rejects:"  # + the TcpExt counter name (PAWSActive, PAWSEstab, PAWSPassive, ...): packets


def measurements(snapshot: Snapshot) -> dict[str, float]:
    out: dict[str, float] = {}
    rng = snapshot.port_range()
    if rng is not None and rng[1] >= rng[0]:
        lo, hi = rng
        out[USABLE_EPHEMERAL_PORTS] = hi - lo + 1 - sum(1 for p in snapshot.reserved_ports() if lo <= p <= hi)
    # The socket table is the direct observation; sockstat's `tw` is the kernel's own count when the table
    # could not be read.
    if snapshot.sockets.source != "none":
        out[TIME_WAIT_SOCKETS] = snapshot.sockets.state_counts.get("TIME-WAIT", 0)
    else:
        tw = snapshot.counters.get("TCP.tw")
        if tw is not None:
            out[TIME_WAIT_SOCKETS] = tw
    keepalive = snapshot.sysctl_int("net.ipv4.tcp_keepalive_time")
    if keepalive is not None:
        out[KEEPALIVE_TIME_SECONDS] = keepalive
    if snapshot.conntrack.present:
        if snapshot.conntrack.count is not None:
            out[CONNTRACK_ENTRIES] = snapshot.conntrack.count
        if snapshot.conntrack.max is not None:
            out[CONNTRACK_LIMIT] = snapshot.conntrack.max
    # Every PAWS reject counter the kernel exports: PAWSActive, PAWSEstab and PAWSPassive are in
    # net/ipv4/proc.c snmp4_net_list at torvalds/linux 0191b625ca5a; a 6.18 kernel shows PAWSActive, PAWSEstab,
    # PAWSOldAck and PAWSTimewait and no PAWSPassive. Whatever this kernel has is published under its own name.
    for name, value in sorted(snapshot.counters.netstat.get("TcpExt", {}).items()):
        if name.startswith("PAWS"):
            out[PAWS_PREFIX + name] = value
    return out
