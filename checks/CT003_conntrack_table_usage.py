"""CT003: the conntrack table is (nearly) full: new flows are dropped ("nf_conntrack: table full")."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

MAX = "net.netfilter.nf_conntrack_max"
COUNT = "net.netfilter.nf_conntrack_count"
STATS = ("drop", "early_drop", "insert_failed", "search_restart", "invalid")


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


class ConntrackTableUsage(Rule):
    meta = RuleMeta(
        id="CT003",
        title="Conntrack table nearly full or dropping: new connections fail ('nf_conntrack: table full')",
        severity=Severity.high,
        keys=[MAX, COUNT],
        applies_to=["host"],
        summary=(
            "Every flow that passes netfilter connection tracking (NAT, stateful firewall rules, Docker and "
            "Kubernetes service routing) needs an entry in the conntrack table. When nf_conntrack_count reaches "
            "nf_conntrack_max the kernel first tries to evict a non-assured entry (IPS_ASSURED not set; for TCP a "
            "connection whose handshake conntrack has not seen complete) nearby in the hash table (early_drop), "
            "and then drops the packets of new flows ('nf_conntrack: table full, dropping packet'): new "
            "connections time out while existing ones keep working, which looks like random failures under load."
        ),
        mechanism=[
            "The first packet of a flow allocates a conntrack entry; the entry lives until its protocol timeout "
            "(for an established TCP flow nf_conntrack_tcp_timeout_established, 5 days by default).",
            "When the table holds nf_conntrack_max entries, allocation tries to evict a confirmed entry without "
            "IPS_ASSURED from the 8 hash buckets starting at the new flow's (early_drop_list(), per-CPU stat "
            "early_drop); assured entries are never evicted there, so a table full of established flows cannot "
            "make room. If nothing can be evicted the packet is dropped (stat drop) and the kernel logs "
            "'nf_conntrack: table full, dropping packet'. After such a failure the garbage collector (in the "
            "nf_conntrack_core.c read) also reaps assured TCP entries in closing states (tcp_can_early_drop()) "
            "while the table is over 95% full.",
            "The dropped packet is usually a SYN: the client retransmits after 1 s, 3 s, ... and connect() fails "
            "after tcp_syn_retries. Established flows are unaffected, so the failure is partial and load-dependent.",
            "insert_failed counts entries that lost an insertion race or clashed (typically parallel UDP DNS "
            "queries through NAT): those packets are dropped too. search_restart and invalid are reported as "
            "context.",
        ],
        when_it_matters=(
            "NAT gateways, Kubernetes and Docker hosts (every service connection is tracked), hosts with stateful "
            "firewall rules receiving many short connections, and hosts whose nf_conntrack_max was sized for "
            "less RAM or set low by hand."
        ),
        remediation=(
            "Raise net.netfilter.nf_conntrack_max (each entry costs roughly 300 bytes) and the hash size "
            "(nf_conntrack_buckets / the hashsize module parameter) with it; shorten timeouts that keep dead flows "
            "around (nf_conntrack_tcp_timeout_established, time_wait); exempt traffic that needs no tracking with "
            "NOTRACK/notrack rules in the raw table."
        ),
        references=[
            Reference(
                title="nf_conntrack-sysctl.rst: nf_conntrack_max, nf_conntrack_count, nf_conntrack_buckets",
                url="https://www.kernel.org/doc/Documentation/networking/nf_conntrack-sysctl.rst",
            ),
            Reference(
                title="net/netfilter/nf_conntrack_core.c early_drop_list(): skips IPS_ASSURED entries",
                url="https://github.com/torvalds/linux/blob/master/net/netfilter/nf_conntrack_core.c",
            ),
            Reference(
                title="conntrack(8): -S per-CPU statistics (drop, early_drop, insert_failed, ...)",
                url="https://manpages.debian.org/conntrack.8",
            ),
            Reference(
                title="Kubernetes blog: kube-proxy subtleties, debugging an intermittent connection reset",
                url="https://kubernetes.io/blog/2019/03/29/kube-proxy-subtleties-debugging-an-intermittent-connection-reset/",
            ),
        ],
    )

    def check(self, f: Facts):
        ct = f.snapshot.conntrack
        if not ct.present:
            return self.na("nf_conntrack is not loaded (no conntrack table on this host)")
        count = ct.count if ct.count is not None else f.value(COUNT).int
        cmax = ct.max if ct.max is not None else f.value(MAX).int
        if (count is None or not cmax) and not ct.stats_per_cpu:
            return self.unread(f, "conntrack count/max and statistics were not collected")
        warn = f.context.threshold("conntrack_usage_warn")
        high = f.context.threshold("conntrack_usage_high")
        ev: dict = {
            "nf_conntrack_count": count,
            "nf_conntrack_max": cmax,
            "conntrack_usage_warn": warn,
            "conntrack_usage_high": high,
        }
        usage = count / cmax if count is not None and cmax else None
        if usage is not None:
            ev["usage"] = round(usage, 3)
        totals = {k: ct.stat_total(k) for k in STATS} if ct.stats_per_cpu else {}
        if totals:
            ev["stats_total"] = {k: v for k, v in totals.items() if v is not None}
        rates: dict[str, float] = {}
        prev = f.snapshot.previous
        if totals and prev is not None and prev.interval_s > 0 and prev.conntrack_stats_per_cpu:
            for k in STATS:
                then = sum(row.get(k, 0) for row in prev.conntrack_stats_per_cpu)
                now = totals.get(k)
                if now is not None:
                    rates[k] = round((now - then) / prev.interval_s, 3)
            ev["stats_rate_per_s"] = rates
            ev["sample_interval_s"] = round(prev.interval_s, 1)
        if f.snapshot.uptime_s:
            ev["uptime_s"] = round(f.snapshot.uptime_s)

        drop, early, failed = (totals.get(k) or 0 for k in ("drop", "early_drop", "insert_failed"))
        drop_rate = rates.get("drop", 0) + rates.get("early_drop", 0)
        failed_rate = rates.get("insert_failed", 0)
        sev: Severity | None = None
        parts: list[str] = []
        if usage is not None and usage >= high:
            sev = Severity.high
            parts.append(
                f"The conntrack table holds {count} of {cmax} entries ({usage:.0%}): at 100% new flows are dropped."
            )
        elif usage is not None and usage >= warn:
            sev = Severity.medium
            parts.append(
                f"The conntrack table holds {count} of {cmax} entries ({usage:.0%}); a burst of new "
                "connections fills it."
            )
        elif usage is not None:
            parts.append(f"The table holds {count} of {cmax} entries ({usage:.0%}) right now.")
        if drop_rate > 0:
            # failing now (docs/severity.md): new flows are refused or evicted while we look, whatever the usage
            # at the moment of the snapshot
            sev = Severity.critical
            parts.append(
                f"drop/early_drop are rising at {drop_rate:.1f}/s: entries are being evicted or packets of "
                "new flows dropped right now (with a full table the kernel logs 'nf_conntrack: table full, "
                "dropping packet')."
            )
        elif drop or early:
            sev = Severity.medium if sev is None or sev.rank < Severity.medium.rank else sev
            parts.append(
                f"drop={drop}, early_drop={early} since boot: conntrack has refused new entries or evicted "
                "old ones, the usual cause being a full table (use --sample to see whether it still "
                "happens)."
            )
        if failed_rate > 0:
            sev = Severity.high if sev is None or sev.rank < Severity.high.rank else sev
            parts.append(
                f"insert_failed is rising at {failed_rate:.1f}/s: packets are dropped on insertion "
                "clashes (typically parallel UDP/DNS flows through NAT)."
            )
        elif failed:
            sev = Severity.low if sev is None else sev
            parts.append(
                f"insert_failed={failed} since boot: some packets were dropped on insertion clashes "
                "(typically parallel UDP/DNS flows through NAT), a different cause than a full table."
            )
        if sev is None:
            return None
        ctx = [f"thresholds conntrack_usage_warn={warn:.0%}, conntrack_usage_high={high:.0%}"]
        if not rates:
            ctx.append("no --sample: counters are totals since boot, severity from usage and totals")
        if f.context.kubernetes or f.snapshot.environment.nat_rules:
            ctx.append("this host NATs or routes Kubernetes service traffic, so every such connection is tracked")
        fix = {}
        if cmax and (usage is not None and usage >= warn or drop_rate > 0 or drop or early):
            fix[MAX] = str(_next_pow2(max(cmax * 2, (count or 0) * 2)))
        return self.finding(f, severity=sev, evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts))
