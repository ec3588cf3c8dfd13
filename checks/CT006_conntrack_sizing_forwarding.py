"""CT006: a forwarding/NAT box's conntrack table: entries for the flows it must hold, and buckets for those entries."""

from __future__ import annotations

from typing import Any

from tcpaudit.model import Location, Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

MAX = "net.netfilter.nf_conntrack_max"
LEGACY_MAX = "net.nf_conntrack_max"  # same variable, initial netns only (kernel_db)
BUCKETS = "net.netfilter.nf_conntrack_buckets"
COUNT = "net.netfilter.nf_conntrack_count"
CT_EST = "net.netfilter.nf_conntrack_tcp_timeout_established"
IP_FORWARD = "net.ipv4.ip_forward"
ALL_FORWARDING = "net.ipv4.conf.all.forwarding"
CHAIN_ISSUE = "KI-CT-CHAINLEN-LIMIT"

# Kernel facts, with their sources in kernel_db/sysctls.toml (nf_conntrack_max, nf_conntrack_buckets) and
# kernel_db/issues.toml (KI-CT-CHAINLEN-LIMIT):
# - nf_conntrack_init_start(): buckets = RAM / 16384 / sizeof(hlist_head); since 5.15 (d532bcd0b269) 65536 above
#   1 GiB, 262144 above 4 GiB on 64-bit, at least 1024, max = buckets; before, 16384 above 1 GiB, 65536 above 4 GiB
#   (4.x-era code), at least 32, max = 4 x buckets. So 262144 is what the kernel itself picks on a 64-bit machine
#   with more than 4 GiB in both eras.
LARGE_MACHINE_MAX = 262144
LARGEST_BUCKETS = {True: 262144, False: 65536}  # the largest automatic hash size: 5.15+ / before
# - nf_conntrack-sysctl.rst: nf_conntrack_tcp_timeout_established "default 432000 (5 days)".
DEFAULT_ESTABLISHED = 432000
# - Every entry is hashed twice (original and reply tuple): load factor = 2 x entries / buckets, the average chain.
#   c77737b736ce measured the random chain-length limit: 16 is reached at load factor 3 (the 8..31 limit of
#   5.15..6.3), 50 at load factor 24 (the 50..79 limit since). Pre-5.15 defaults (max = 4 x buckets) give 8.
LF_LIMIT_AFFECTED = 3.0
LF_LIMIT_FIXED = 24.0
LF_OLD_DEFAULT = 8.0
GIB = 1 << 30


def auto_size(ram_bytes: int, pointer_bytes: int, modern: bool) -> tuple[int, int]:
    """(buckets, nf_conntrack_max) the kernel picks when no hashsize is given (before page rounding)."""
    buckets = ram_bytes // 16384 // pointer_bytes
    if modern:
        if pointer_bytes >= 8 and ram_bytes > 4 * GIB:
            buckets = 262144
        elif ram_bytes > GIB:
            buckets = 65536
        buckets = max(buckets, 1024)
        return buckets, buckets
    if ram_bytes > 4 * GIB:
        buckets = 65536
    elif ram_bytes > GIB:
        buckets = 16384
    buckets = max(buckets, 32)
    return buckets, 4 * buckets


def _next_pow2(n: int) -> int:
    p = 1
    while p < n:
        p <<= 1
    return p


def _forwarding(f: Facts) -> list[str]:
    """Why this box forwards or NATs (empty: nothing shows it does)."""
    why = []
    for key, label in ((IP_FORWARD, "ip_forward"), (ALL_FORWARDING, "conf.all.forwarding")):
        v = f.value(key)
        if v.int is not None and v.int != 0:
            why.append(f"{label}={v.int} ({v.where()})")
    if f.snapshot.environment.nat_rules:
        why.append(f"{len(f.snapshot.environment.nat_rules)} iptables NAT rule(s)")
    if f.context.kubernetes:
        why.append("Kubernetes node (kube-proxy DNATs/SNATs service traffic)")
    return why


def _established(f: Facts) -> tuple[int, str]:
    v = f.value(CT_EST)
    if v.int is not None:
        return v.int, f"nf_conntrack_tcp_timeout_established={v.int} s ({v.where()})"
    return DEFAULT_ESTABLISHED, f"nf_conntrack_tcp_timeout_established={DEFAULT_ESTABLISHED} s (documented default)"


def _is_capture(f: Facts) -> bool:
    """A `sysctl -a` capture linted as config: its values are a live host's, not settings someone chose."""
    return f.kind == "config" and ("kernel.osrelease" in f.configured or COUNT in f.configured)


def _worse(a: Severity | None, b: Severity) -> Severity:
    return b if a is None or b.rank > a.rank else a


def _fill_rate(cmax: int, est: int) -> str:
    rate = cmax / est
    return f"{rate:.1f}" if rate >= 0.1 else f"{rate:.3f}"


class ConntrackSizingForwarding(Rule):
    meta = RuleMeta(
        id="CT006",
        title="Conntrack table sized for a forwarding/NAT box: nf_conntrack_max vs the flows it must hold, hash "
        "buckets vs nf_conntrack_max",
        severity=Severity.medium,
        keys=[MAX, BUCKETS, CT_EST, IP_FORWARD],
        summary=(
            "On a router, NAT gateway, container or Kubernetes host every forwarded or NATed flow holds a conntrack "
            "entry, and an established TCP flow keeps it for nf_conntrack_tcp_timeout_established (5 days by "
            "default) after its last packet. nf_conntrack_max bounds those flows; a full table drops new flows. "
            "The hash table (nf_conntrack_buckets) is sized once from RAM and is not raised with nf_conntrack_max, "
            "so a raised max makes every lookup walk longer chains, and on kernels 5.15 to 6.3 a chain longer "
            "than a random 8..31 entries makes the kernel refuse the insert and drop the packet long before the "
            "table is full."
        ),
        mechanism=[
            "The first packet of every forwarded, NATed or statefully filtered flow allocates a conntrack entry; an "
            "established TCP entry lives until nf_conntrack_tcp_timeout_established seconds after the flow's last "
            "packet (432000 s by default), so a client that disappears without FIN or RST keeps its entry that "
            "long. At nf_conntrack_max entries new flows are dropped ('nf_conntrack: table full, dropping packet').",
            "Without a setting, the kernel sizes the table from RAM: nf_conntrack_buckets = RAM / 16384 / pointer "
            "size (at least 1024, 65536 above 1 GiB, 262144 above 4 GiB on 64-bit) and nf_conntrack_max = buckets "
            "since 5.15 (4 x buckets before) -- about 8192 entries on a 64-bit board with 1 GiB.",
            "Each entry is hashed twice (original and reply tuple), so a full table has an average chain of "
            "2 x nf_conntrack_max / nf_conntrack_buckets entries (2 with 5.15+ defaults). Raising "
            "nf_conntrack_max alone leaves the hash size, and every packet's lookup walks longer chains.",
            "Since 5.15 an insert into an over-long chain is refused: the packet is dropped and counted in "
            "insert_failed and chaintoolong ('chainlength' in /proc/net/stat/nf_conntrack). Until the 6.3 fix "
            "c77737b736ce (stable 5.15.103) the limit was a random 8..31: chains of 8 occur below load factor 0.5 "
            "and a limit of 16 is reached at about 3, so flows fail with the table far from full; since the fix "
            "it is 50..79, reached around load factor 24.",
        ],
        when_it_matters=(
            "NAT gateways and home/edge routers (OpenWrt, a Raspberry Pi doing NAT), Docker/Kubernetes nodes, VPN "
            "gateways and load balancers: boxes with ip_forward=1 or NAT rules whose clients open many flows or "
            "vanish without closing them, and boxes whose nf_conntrack_max was raised without the hash size."
        ),
        remediation=(
            "Size nf_conntrack_max for the flows the box must hold: peak concurrent flows plus the flows abandoned "
            "per second times nf_conntrack_tcp_timeout_established -- or shorten that timeout (OpenWrt uses 7440 s). "
            "Mind the memory: one entry is one nf_conn object (a few hundred bytes; /proc/slabinfo shows the size "
            "on the box), so a small router cannot take the 262144 a big server gets. Raise the hash size with it "
            "(net.netfilter.nf_conntrack_buckets, or `options nf_conntrack hashsize=N` in modprobe.d) so that "
            "buckets >= nf_conntrack_max; one bucket costs one pointer. On kernels from 5.15 without the 6.3 fix "
            "(stable 5.15.103 has it) upgrade, and watch chaintoolong in `conntrack -S`."
        ),
        references=[
            Reference(
                title="nf_conntrack-sysctl.rst: nf_conntrack_max, nf_conntrack_buckets, "
                "nf_conntrack_tcp_timeout_established",
                url="https://www.kernel.org/doc/Documentation/networking/nf_conntrack-sysctl.rst",
            ),
            Reference(
                title="netfilter: conntrack: sanitize table size default settings (d532bcd0b269, 5.15)",
                url="https://lore.kernel.org/all/20210826135422.31063-2-fw@strlen.de/",
            ),
            Reference(
                title="netfilter: conntrack: adopt safer max chain length (c77737b736ce, 6.3; 6.2.y backport)",
                url="https://lore.kernel.org/all/20230315115742.824111283@linuxfoundation.org/",
            ),
            Reference(
                title="netfilter: conntrack: make max chain length random (c9c3b6811f74, 5.15)",
                url="https://lore.kernel.org/all/20210924221113.348767-5-pablo@netfilter.org/",
            ),
            Reference(
                title="OpenWrt sysctl-nf-conntrack.conf: nf_conntrack_tcp_timeout_established=7440",
                url="https://github.com/openwrt/openwrt/blob/main/package/kernel/linux/files/sysctl-nf-conntrack.conf",
            ),
        ],
        headline=["nf_conntrack_max", "nf_conntrack_buckets", "load_factor_at_max", "nf_conntrack_count", "forwarding"],
    )

    def check(self, f: Facts):
        if f.kind == "config" and not _is_capture(f):
            return self._config(f)
        return self._live(f)

    # -- shared pieces ------------------------------------------------------------------------
    def _chain_status(self, f: Facts) -> Any:
        return f.issue(CHAIN_ISSUE)

    @staticmethod
    def _capacity(cmax: int, where: str, est: int, est_desc: str) -> str:
        return (
            f"nf_conntrack_max={cmax} ({where}) caps the conntrack table at {cmax} entries. Every tracked flow "
            f"-- each one a router forwards or NATs -- holds one, and an established TCP flow keeps it for "
            f"{est_desc} after its last packet, so clients that vanish without FIN or RST (a phone leaving "
            f"Wi-Fi, a powered-off PC) hold theirs that long: if more than {cmax} / {est} s = "
            f"{_fill_rate(cmax, est)} flows per second are abandoned, they alone fill the table, and a full "
            "table drops new flows ('nf_conntrack: table full, dropping packet')."
        )

    @staticmethod
    def _chain_text(status: Any, lf: float | None, what: str) -> str:
        text = (
            f"This kernel refuses an insert whose hash chain is longer than a random 8..31 entries "
            f"({status.reason}): the packet is dropped and counted in insert_failed and chaintoolong. The fix "
            "(c77737b736ce) found buckets often reaching 8 entries below a load factor (2 x entries / buckets) "
            "of 0.5 and a limit of 16 reached at about 3"
        )
        if lf is not None:
            text += f"; {what} is {lf:.1f}"
        return text + ", so some new flows fail while the table is far from full, and more as it fills."

    # -- config files -------------------------------------------------------------------------
    def _config(self, f: Facts):
        fwd = _forwarding(f)
        max_key = MAX if MAX in f.configured else LEGACY_MAX if LEGACY_MAX in f.configured else None
        cmax: int | None = None
        if max_key == MAX:
            cmax = f.value(MAX).int
        elif max_key == LEGACY_MAX:
            raw, legacy_loc = f.configured[LEGACY_MAX]
            cmax = Value(LEGACY_MAX, raw, "config", legacy_loc).int
        if cmax is None and not fwd:
            return self.na(
                "nothing here sets nf_conntrack_max or shows that this box forwards or NATs (ip_forward, "
                "conf.all.forwarding, a Kubernetes context): the kernel's RAM-based default applies and "
                "there is no forwarded load to size it for"
            )
        buckets = f.value(BUCKETS).int if BUCKETS in f.configured else None
        est, est_desc = _established(f)
        modern_q = f.kernel_at_least((5, 15))
        modern = True if modern_q is None else modern_q
        status = self._chain_status(f)
        applies = status.applies if status is not None else None
        ev: dict[str, Any] = {"nf_conntrack_tcp_timeout_established": est, "forwarding": fwd}
        ctx = (
            ["this box forwards or NATs: " + "; ".join(fwd)]
            if fwd
            else ["nothing in this file shows forwarding or NAT: the limit applies to every flow the box tracks"]
        )
        if f.context.kubernetes:
            ctx.append(
                "kube-proxy sets nf_conntrack_max at start-up (max(--conntrack-min 131072, 32768 x cores) by "
                "default), so a value set here may not be the one in effect"
            )
        if status is not None:
            ev["chain_limit_issue"] = {"applies": applies, "reason": status.reason}

        one_gib = auto_size(GIB, 8, modern)[1]
        if cmax is None:
            ev["nf_conntrack_max"] = None
            note_sev = Severity.info
            parts = [
                f"This box forwards or NATs -- {'; '.join(fwd)} -- so every forwarded flow takes a conntrack entry, "
                "but nf_conntrack_max is not set here: the kernel sizes it from RAM -- "
                + (
                    "nf_conntrack_buckets = RAM / 16384 / pointer size (at least 1024, 65536 above 1 GiB, 262144 "
                    "above 4 GiB on 64-bit) and nf_conntrack_max = buckets"
                    if modern
                    else "nf_conntrack_buckets = RAM / 16384 / pointer size (at least 32, 16384 above 1 GiB, "
                    "65536 above "
                    "4 GiB) and nf_conntrack_max = 4 x buckets"
                )
                + f", about {one_gib} entries on a 64-bit board with 1 GiB of RAM. An established flow keeps its "
                f"entry for {est_desc} after its last packet, so {one_gib} / {est} s = {_fill_rate(one_gib, est)} "
                "abandoned flows per second fill such a table, and a full table drops new flows ('nf_conntrack: "
                "table full, dropping packet'). Check nf_conntrack_max and nf_conntrack_count on the box itself "
                "(tcpaudit host) against the flows it forwards.",
            ]
            ev["default_max_1gib_64bit"] = one_gib
            if applies is True:
                note_sev = Severity.low
                parts.append(self._chain_text(status, 2.0, "the load factor of a full default-sized table"))
            return self.finding(
                f,
                severity=note_sev,
                evidence=ev,
                context=ctx,
                explanation=" ".join(parts),
                keys=[k for k in (IP_FORWARD, ALL_FORWARDING) if k in f.configured] + [MAX, BUCKETS],
            )

        where = (
            f.value(MAX).where()
            if max_key == MAX
            else (f"set as {LEGACY_MAX} in {f.configured[LEGACY_MAX][1].file}:{f.configured[LEGACY_MAX][1].line}")
        )
        assumed = buckets or LARGEST_BUCKETS[modern]
        lf = 2 * cmax / assumed
        ev.update(
            {
                "nf_conntrack_max": cmax,
                "nf_conntrack_buckets": buckets,
                "buckets_assumed": assumed,
                "load_factor_at_max": round(lf, 2),
                "abandoned_flows_per_s_to_fill": round(cmax / est, 3),
            }
        )
        sev: Severity | None = None
        parts = [self._capacity(cmax, where, est, est_desc)]
        if cmax < LARGE_MACHINE_MAX:
            sev = Severity.low
            big = (
                f"The kernel itself picks {LARGE_MACHINE_MAX} on a 64-bit machine with more than 4 GiB"
                if modern
                else f"4.x-era kernels pick {LARGE_MACHINE_MAX} (4 x 65536 buckets) on a machine with more than "
                "4 GiB (older 3.x code stopped at 4 x 16384 = 65536)"
            )
            parts.append(
                f"{big}, so there this line lowers the limit; on a small router it raises it (the automatic size "
                f"scales with RAM: about {one_gib} with 1 GiB on 64-bit) -- size it for the flows the box must hold "
                "and the memory it has."
            )
        hash_fix: dict[str, str] = {}
        bucket_words = (
            f"nf_conntrack_buckets={buckets} gives"
            if buckets
            else f"nf_conntrack_buckets is not set, and even the largest automatic hash ({assumed} buckets) gives"
        )
        if applies is True:
            sev = _worse(sev, Severity.low)
            parts.append(self._chain_text(status, lf, f"{bucket_words} a load factor at max that"))
            if lf > 2:
                hash_fix = {BUCKETS: str(_next_pow2(cmax))}
        elif modern and lf >= LF_LIMIT_FIXED:
            sev = _worse(sev, Severity.low)
            parts.append(
                f"{bucket_words} an average chain of {lf:.1f} entries at a full table: since 6.3 the kernel "
                "refuses inserts into chains longer than a random 50..79 entries, reached around load "
                "factor 24 (c77737b736ce), so new flows are dropped before the table is full."
            )
            hash_fix = {BUCKETS: str(_next_pow2(cmax))}
        elif lf > 2 and buckets is None:
            sev = _worse(sev, Severity.info)
            parts.append(
                f"The hash table is not raised with it: {bucket_words} an average chain of {lf:.1f} entries "
                f"at a full table instead of the 2 the kernel's own sizing keeps (fewer buckets on a smaller "
                f"box make it longer); every packet's lookup walks that chain. Set nf_conntrack_buckets "
                f"(or the hashsize module parameter) to about {cmax}."
            )
            hash_fix = {BUCKETS: str(_next_pow2(cmax))}
        elif lf > LF_OLD_DEFAULT:
            sev = _worse(sev, Severity.info)
            parts.append(
                f"{bucket_words} an average chain of {lf:.1f} entries at a full table, longer than even the "
                "pre-5.15 default ratio (8): every packet's lookup walks that chain."
            )
            hash_fix = {BUCKETS: str(_next_pow2(cmax))}
        elif buckets is None and cmax < LARGE_MACHINE_MAX:
            small_buckets = auto_size(GIB, 8, modern)[0]
            parts.append(
                f"nf_conntrack_buckets is not set, and a smaller box gets fewer automatic buckets: a full "
                f"table has average chains of 2 x {cmax} / buckets ({2 * cmax / small_buckets:.0f} with the "
                f"{small_buckets} buckets of 1 GiB on 64-bit); set it to about {cmax} with this line."
            )
        if sev is None:
            return None
        loc: Location | None = f.configured[LEGACY_MAX][1] if max_key == LEGACY_MAX else None
        return self.finding(
            f, severity=sev, evidence=ev, context=ctx, fix=hash_fix, location=loc, explanation=" ".join(parts)
        )

    # -- a live host, or a `sysctl -a` capture of one ------------------------------------------
    def _live(self, f: Facts):
        ct = f.snapshot.conntrack
        mv = f.value(MAX)
        cmax = ct.max if ct.max is not None else mv.int
        if cmax is None:
            cmax = f.value(LEGACY_MAX).int
        if f.kind == "host" and not ct.present and mv.origin != "host":
            return self.na("nf_conntrack is not loaded (no conntrack table on this host)")
        if cmax is None:
            return self.unknown("nf_conntrack_max could not be read (nf_conntrack present but not readable)")
        fwd = _forwarding(f)
        if not fwd and f.snapshot.environment.nat_rules is None:
            return self.unknown(
                "ip_forward is off and not Kubernetes, but the NAT rules could not be read (iptables -t nat "
                "needs root): whether this host NATs is unknown"
            )
        if not fwd:
            return self.na(
                "this host does not forward or NAT (ip_forward=0, no NAT rules, not Kubernetes): it "
                "tracks only its own connections, whose table usage CT003 judges"
            )
        buckets = f.value(BUCKETS).int
        count = ct.count if ct.count is not None else f.value(COUNT).int
        est, est_desc = _established(f)
        status = self._chain_status(f)
        applies = status.applies if status is not None else None
        ev: dict[str, Any] = {
            "nf_conntrack_max": cmax,
            "nf_conntrack_buckets": buckets,
            "nf_conntrack_count": count,
            "nf_conntrack_tcp_timeout_established": est,
            "abandoned_flows_per_s_to_fill": round(cmax / est, 3),
            "forwarding": fwd,
        }
        if status is not None:
            ev["chain_limit_issue"] = {"applies": applies, "reason": status.reason}
        chain_ev = f.counter_evidence("conntrack.chainlength")
        failed = f.counter("conntrack.insert_failed")
        if chain_ev is not None:
            ev["chainlength"] = chain_ev
            if failed is not None:
                ev["insert_failed_total"] = failed
        if f.snapshot.uptime_s:
            ev["uptime_s"] = round(f.snapshot.uptime_s)
        lf = 2 * cmax / buckets if buckets else None
        lf_now = 2 * count / buckets if buckets and count is not None else None
        if lf is not None:
            ev["load_factor_at_max"] = round(lf, 2)
        if lf_now is not None:
            ev["load_factor_now"] = round(lf_now, 2)
        modern = bool(f.kernel_at_least((5, 15)))
        sev: Severity | None = None
        parts: list[str] = []
        fix: dict[str, str] = {}
        chain_total = chain_ev["total_since_boot"] if chain_ev else 0
        chain_rate = chain_ev.get("rate_per_s", 0) if chain_ev else 0
        if chain_rate > 0 or chain_total > 0:
            sev = Severity.high if chain_rate > 0 else Severity.medium
            now = (
                f"and still rising at {chain_rate:.1f}/s"
                if chain_rate > 0
                else "since boot (use --sample to see whether it still happens)"
            )
            parts.append(
                f"The kernel refused {chain_total} conntrack inserts because a hash chain was too long "
                f"(chainlength in /proc/net/stat/nf_conntrack) {now}: each refusal dropped the first packet "
                "of a flow, counted in insert_failed as well, with the table not necessarily full."
            )
        if applies is True:
            sev = _worse(sev, Severity.medium if lf_now is not None and lf_now >= LF_LIMIT_AFFECTED else Severity.low)
            parts.append(
                self._chain_text(
                    status,
                    lf_now if lf_now is not None else lf,
                    "the load factor now (2 x nf_conntrack_count / buckets)"
                    if lf_now is not None
                    else "the load factor at max",
                )
            )
        elif applies is None and status is not None and lf is not None and lf >= LF_LIMIT_AFFECTED and modern:
            sev = _worse(sev, Severity.info)
            parts.append(
                f"Whether this vendor kernel carries the 8..31 random chain limit or its fix is unknown "
                f"({status.reason}); with a load factor of {lf:.1f} at max it would refuse inserts before "
                "the table is full -- the chainlength column of /proc/net/stat/nf_conntrack shows it."
            )
        if lf is not None and modern and lf >= LF_LIMIT_FIXED:
            sev = _worse(sev, Severity.low)
            parts.append(
                f"nf_conntrack_max={cmax} over {buckets} buckets is an average chain of {lf:.1f} entries at a "
                "full table: inserts are refused around load factor 24 even with the 6.3 fix, so flows are "
                "dropped before the table is full."
            )
            fix = {BUCKETS: str(_next_pow2(cmax))}
        elif lf is not None and lf > LF_OLD_DEFAULT:
            sev = _worse(sev, Severity.info)
            parts.append(
                f"nf_conntrack_max={cmax} over {buckets} buckets is an average chain of {lf:.1f} entries at a "
                "full table (the kernel's own sizing keeps 2 since 5.15, 8 before): the hash size was not "
                "raised with the max, and every packet's lookup walks those chains."
            )
            fix = {BUCKETS: str(_next_pow2(cmax))}
        if sev is None:
            return None
        if (chain_total or applies is True) and lf is not None and lf > 2:
            fix = {BUCKETS: str(_next_pow2(cmax))}
        parts.append(self._capacity(cmax, "on the host" if f.kind == "host" else "in the capture", est, est_desc))
        ctx = ["this host forwards or NATs: " + "; ".join(fwd)]
        if chain_ev is not None and "rate_per_s" not in chain_ev:
            ctx.append("no --sample: chainlength is a total since boot")
        return self.finding(f, severity=sev, evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts))
