"""RawCapture: what a collector read, before any parsing.

The local collector fills it by reading files; the SSH collector fills it from the
framed output of the remote shell script. `build_snapshot` turns either into the
same Snapshot, so a host audited locally and over SSH gives the same findings.

Item names (the remote script frames exactly these):
  hostname, osrelease, os-release, uptime, netstat, snmp, sockstat, sockstat6,
  nf_conntrack_stat, ss, ss-detail, proc-net-tcp, proc-net-tcp6,
  dmi.sys_vendor, dmi.product_name, dmi.bios_vendor, dmi.chassis_asset_tag, dmi.board_vendor,
  cgroup, iptables-nat, marker.dockerenv, marker.containerenv, marker.k8s-serviceaccount,
  env.kubernetes
and the sysctls, which arrive already as a name -> value mapping.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any

from ..snapshot import CollectionGap, GapReason, Source

SYSCTL_ROOTS = ("net.ipv4", "net.ipv6", "net.core", "net.netfilter")

# Secrets among the sysctls: never read, never copied into a snapshot, never listed as a gap (reading them
# as non-root fails with EACCES, and an unset IPv6 stable_secret answers EIO). No rule needs their values.
SECRET_SYSCTL_FILES = ("stable_secret", "tcp_fastopen_key", "netdev_rss_key")


def is_secret_sysctl(name: str) -> bool:
    """net.ipv6.conf.*.stable_secret, net.ipv4.tcp_fastopen_key, net.core.netdev_rss_key."""
    return name.rpartition(".")[2] in SECRET_SYSCTL_FILES


@dataclass
class RawCapture:
    source: Source
    collected_at: _dt.datetime
    items: dict[str, str] = field(default_factory=dict)
    sysctls: dict[str, str] = field(default_factory=dict)
    sysctl_roots: list[str] = field(default_factory=list)
    gaps: list[CollectionGap] = field(default_factory=list)
    # how many established sockets the ss detail pass covered at most (None: no cap applied)
    detail_cap: int | None = None
    # parse results a collector already has for an item ("ss", "ss-detail"): exactly what parsing
    # items[name] gives; the local collector parses while ss prints. build_snapshot uses them as they are.
    parsed: dict[str, Any] = field(default_factory=dict)

    def gap(self, item: str, reason: GapReason | str, detail: str = "") -> None:
        self.gaps.append(CollectionGap(item=item, reason=GapReason(reason), detail=detail[:300]))
