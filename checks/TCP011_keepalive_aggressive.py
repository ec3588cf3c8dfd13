"""TCP011: keepalive so aggressive that it kills healthy idle connections, or costs more than it protects."""

from __future__ import annotations

import math
from typing import Any

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value
from tcpaudit.snapshot import is_loopback

TIME = "net.ipv4.tcp_keepalive_time"
INTVL = "net.ipv4.tcp_keepalive_intvl"
PROBES = "net.ipv4.tcp_keepalive_probes"
# include/net/tcp.h (stored mainline copy 003e07a1e48e): TCP_KEEPALIVE_TIME 7200 s, TCP_KEEPALIVE_INTVL 75 s,
# TCP_KEEPALIVE_PROBES 9 - used when the knowledge base cannot give the default for the target kernel.
_DOCUMENTED = {TIME: 7200, INTVL: 75, PROBES: 9}

# Thresholds, and why (repeated in the metadata and in each finding's context):
# - dead-peer window = intvl * probes, the time the peer has to answer once probing started
#   (ip-sysctl.rst: "Multiplied by tcp_keepalive_probes it is time to kill not responding connection").
VERY_SHORT_WINDOW_S = 10  # a VRRP/keepalived failover (3 x 1 s adverts + skew), an ARP re-resolution or a
#                           few seconds of congestion loss - routine events - outlast it: medium
SHORT_WINDOW_S = 30  # under a third of the 100 s RFC 1122 asks TCP to keep retrying a connection that has data
#                      outstanding (ip-sysctl.rst, tcp_retries2 >= 8): an idle connection dies faster than a busy
#                      one would: low. 30..100 s is common in tuning guides (600/15/3 = 45 s) and left alone.
AGGRESSIVE_IDLE_S = 60  # first probe sooner than any middlebox profile needs (shortest: AWS ALB 60 s; NAT
#                         gateways 240-1200 s): probes and wake-ups that keep nothing alive: info.
RECOMMENDED_WINDOW_S = 60
RECOMMENDED_IDLE_S = 120  # half of the shortest common NAT-gateway idle timeout (Azure 240 s)


def _origins(*values: Value) -> str:
    """'time, intvl set in a.conf (lines 3, 4); probes kernel default' - where each of the values came from
    ('(line 3)' for one line)."""
    groups: dict[str, list[tuple[str, int | None]]] = {}
    for v in values:
        where = f"set in {v.location.file}" if v.origin == "config" and v.location else v.where()
        groups.setdefault(where, []).append((v.name.rsplit("_", 1)[-1], v.location.line if v.location else None))
    out = []
    for where, items in groups.items():
        lines = [str(line) for _, line in items if line is not None]
        at = f" ({'line' if len(lines) == 1 else 'lines'} {', '.join(lines)})" if lines else ""
        out.append(f"{', '.join(n for n, _ in items)} {where}{at}")
    return "; ".join(out)


def _default(f: Facts, name: str) -> int:
    if f.kdb is not None and f.release is not None:
        fact = f.kdb.sysctl(name)
        raw = fact.default_in(f.release) if fact is not None else None
        if raw is not None and str(raw).strip().isdigit():
            return int(raw)
    return _DOCUMENTED[name]


def _effective(f: Facts, name: str) -> tuple[int | None, Value, bool]:
    """(value in effect, where it came from, whether a configured value is rejected and the default stays)."""
    v = f.value(name)
    n = v.int
    if n is not None:
        return n, v, False
    if v.origin == "config":  # the write fails with EINVAL (SYS002 reports it); the kernel keeps its default
        return _default(f, name), v, True
    return None, v, False


class KeepaliveAggressive(Rule):
    meta = RuleMeta(
        id="TCP011",
        title="TCP keepalive so aggressive that it kills healthy idle connections or costs more than it protects",
        severity=Severity.medium,
        keys=[TIME, INTVL, PROBES],
        summary=(
            "Keepalive probes an idle connection after tcp_keepalive_time seconds, every tcp_keepalive_intvl seconds, "
            "and aborts it with ETIMEDOUT after tcp_keepalive_probes unanswered probes. Tuning guides shorten all "
            "three. A short tcp_keepalive_time only costs packets and wake-ups; a short intvl x probes (the time the "
            "peer has to answer) turns a brief network blip or failover into dead connections between two healthy "
            "hosts, and a single probe (or none) kills connections on one lost packet."
        ),
        mechanism=[
            "tcp_keepalive_timer() (net/ipv4/tcp_timer.c) does nothing while data is in flight or queued: keepalive "
            "only acts on idle connections, and only on sockets that set SO_KEEPALIVE (per-socket TCP_KEEPIDLE, "
            "TCP_KEEPINTVL, TCP_KEEPCNT override the three sysctls; TCP_USER_TIMEOUT replaces the probe count).",
            "Once nothing has been received for tcp_keepalive_time seconds it sends a probe and re-arms after "
            "tcp_keepalive_intvl; every answer resets the probe count, so a healthy idle connection sends one probe "
            "and gets one ACK every tcp_keepalive_time seconds.",
            "When the timer fires with tcp_keepalive_probes probes unanswered, the kernel sends a RST and reports "
            "ETIMEDOUT (tcp_write_err). The peer therefore has intvl x probes seconds to answer (ip-sysctl.rst: 'it "
            "is time to kill not responding connection, after probes started'; default 75 x 9 = 675 s).",
            "A path outage, routing or VRRP failover, or loss burst longer than that window kills every idle "
            "keepalive connection whose probe falls into it - all of them once it lasts tcp_keepalive_time + "
            "window - although both hosts are healthy. Without keepalive an idle connection survives any outage, "
            "and one with data in flight is retried for tcp_retries2 (about 15 min by default).",
            "Pure ACKs are not retransmitted, so one lost probe or ACK proves nothing: RFC 9293 (MUST-29) forbids "
            "treating the failure to answer any specific probe as a dead connection. tcp_keepalive_probes=1 does "
            "exactly that, and tcp_keepalive_probes=0 (or intvl 0) resets every idle keepalive connection when the "
            "timer first fires, without waiting for any answer.",
            "A short tcp_keepalive_time alone breaks nothing: it adds a probe and an ACK per idle connection every "
            "tcp_keepalive_time seconds. Below 60 s that is more than any common NAT or load balancer needs "
            "(idle timeouts: AWS ALB 60 s, Azure 240 s, AWS NAT gateway 350 s, GCP Cloud NAT 1200 s).",
            "Thresholds: intvl x probes < 30 s is low (under a third of the 100 s RFC 1122 wants before a busy "
            "connection is given up), < 10 s or probes = 1 is medium (routine failovers of a few seconds kill "
            "connections), probes or intvl = 0 is high; tcp_keepalive_time < 60 s alone is info, and is not "
            "reported when a known NAT/LB idle timeout is at most 4x the value.",
        ],
        when_it_matters=(
            "Hosts with long-lived, mostly idle connections that enable SO_KEEPALIVE (database and broker clients, "
            "connection pools, SSH, load-balancer backends) on paths with failovers: VRRP/keepalived pairs, "
            "L4 load balancers, routed networks, cloud live migration. Seen in tuning files that set "
            "tcp_keepalive_time=30 (clay-wangzhi, HXHGTS, akoscomp) or 30/5/10 (an L2 DSR load balancer)."
        ),
        remediation=(
            "Keep tcp_keepalive_probes at 3 or more and tcp_keepalive_intvl x tcp_keepalive_probes at 60 s or more "
            "(e.g. intvl 15-30 s, probes 4-5). Set tcp_keepalive_time just under the shortest NAT/LB idle timeout "
            "on the path (NAT001 checks it when given --nat-idle-timeout), typically 120-300 s, not 30 s. "
            "Applications that need fast failure detection should set TCP_KEEPIDLE/TCP_KEEPINTVL/TCP_KEEPCNT or "
            "TCP_USER_TIMEOUT on their own sockets, or use application heartbeats, instead of the host-wide knobs."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_keepalive_time / tcp_keepalive_probes / tcp_keepalive_intvl",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp_timer.c: tcp_keepalive_timer() and tcp_write_err() (ETIMEDOUT)",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_timer.c",
            ),
            Reference(
                title="RFC 9293 section 3.8.4: TCP Keep-Alives (MUST-28 two hours, MUST-29 one probe)",
                url="https://www.rfc-editor.org/rfc/rfc9293#section-3.8.4",
            ),
            Reference(
                title="RFC 5798 (VRRPv3): Master_Down_Interval = 3 x Master_Adver_Interval + Skew_Time",
                url="https://www.rfc-editor.org/rfc/rfc5798",
            ),
            Reference(
                title="tcp(7): SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_USER_TIMEOUT",
                url="https://man7.org/linux/man-pages/man7/tcp.7.html",
            ),
        ],
    )

    def check(self, f: Facts):
        (k, kv, k_rej), (i, iv, i_rej), (p, pv, p_rej) = (_effective(f, n) for n in (TIME, INTVL, PROBES))
        if kv.origin == "absent":
            return self.na(f"{TIME} does not exist on this kernel")
        if k is None or i is None or p is None:
            missing = [v.name for n, v in ((k, kv), (i, iv), (p, pv)) if n is None]
            return self.unread(f, f"keepalive settings unknown: {', '.join(missing)}")
        if min(k, i, p) < 0:
            return self.na("negative keepalive values (SYS002 reports invalid values)")
        window = i * p
        nat = f.context.nat_idle_timeout
        justified = nat is not None and k * 4 >= nat
        keys: list[str] = []
        parts: list[str] = []
        ctx: list[str] = []
        severities: list[Severity] = []
        fix: dict[str, str] = {}
        if p == 0 or i == 0:
            severities.append(Severity.high)
            keys += [PROBES] if p == 0 else [INTVL]
            if p == 0:
                parts.append(
                    f"tcp_keepalive_probes=0: the first time the keepalive timer fires, after {k} s of idleness, "
                    "the kernel finds 0 >= 0 probes unanswered and resets the connection with ETIMEDOUT - without "
                    "sending a single probe, however healthy the peer is."
                )
            else:
                parts.append(
                    f"tcp_keepalive_intvl=0: all {p} probes go out back to back and the connection is aborted at the "
                    f"next timer tick, before any answer can arrive: every idle keepalive connection is reset after "
                    f"{k} s of idleness."
                )
        elif p == 1:
            severities.append(Severity.medium)
            keys.append(PROBES)
            parts.append(
                f"tcp_keepalive_probes=1: a single lost probe or lost ACK is enough - the connection is aborted "
                f"{i} s after its only probe with ETIMEDOUT. Pure ACKs are never retransmitted, and RFC 9293 "
                "(MUST-29) forbids treating one unanswered probe as a dead peer."
            )
        if p > 0 and i > 0 and window < SHORT_WINDOW_S:
            severities.append(Severity.medium if window < VERY_SHORT_WINDOW_S else Severity.low)
            keys += [k_ for k_ in (INTVL, PROBES) if k_ not in keys]
            parts.append(
                f"Once probing starts the peer has only intvl x probes = {i} x {p} = {window} s to answer: a path "
                f"outage, failover or loss burst longer than {window} s kills every idle keepalive connection whose "
                f"probe falls into it, and all of them once it lasts {k + window} s, with ETIMEDOUT although both "
                "ends are healthy. Without keepalive the same idle connection would survive the outage, and one with "
                "data in flight would be retried for tcp_retries2 (about 15 minutes by default)."
            )
        if k < AGGRESSIVE_IDLE_S and not justified:
            severities.append(Severity.info)
            keys.insert(0, TIME)
            parts.append(
                f"With tcp_keepalive_time={k} s every idle keepalive connection sends a probe and gets an "
                f"ACK every {k} s ({3600 // max(k, 1)} probes an hour each), packets and timer wake-ups that keep no "
                f"middlebox entry alive that a {RECOMMENDED_IDLE_S} s interval would not (common NAT/LB idle "
                "timeouts are 60-1200 s)."
                + (
                    ""
                    if window < SHORT_WINDOW_S
                    else f" It also means an outage longer than {window} s catches idle connections mid-probe: all of "
                    f"them once it lasts {k + window} s."
                )
            )
            if nat is not None:
                fix[TIME] = str(max(AGGRESSIVE_IDLE_S, min(nat // 2, 7200)))
                ctx.append(f"{f.context.describe_nat()}: {k} s is less than a quarter of it")
            else:
                fix[TIME] = str(RECOMMENDED_IDLE_S)
        elif k < AGGRESSIVE_IDLE_S and justified:
            ctx.append(
                f"tcp_keepalive_time={k} s is justified by the {nat} s NAT/LB idle timeout "
                f"({f.context.nat_idle_source})"
            )
        if not severities:
            return None
        sev = max(severities, key=lambda s: s.rank)

        if p < 3 or window < SHORT_WINDOW_S:
            new_p = p if p >= 3 else 5
            new_i = max(i, math.ceil(RECOMMENDED_WINDOW_S / new_p))
            if new_p != p:
                fix[PROBES] = str(new_p)
            if new_i != i:
                fix[INTVL] = str(new_i)

        ev: dict[str, Any] = {
            "tcp_keepalive_time": k,
            "tcp_keepalive_time_origin": kv.origin,
            "tcp_keepalive_intvl": i,
            "tcp_keepalive_intvl_origin": iv.origin,
            "tcp_keepalive_probes": p,
            "tcp_keepalive_probes_origin": pv.origin,
            "dead_peer_window_s": window,
            "idle_until_abort_s": k + window,
        }
        rejected = [v.name for v, r in ((kv, k_rej), (iv, i_rej), (pv, p_rej)) if r]
        if rejected:
            ev["rejected_values"] = {v.name: v.raw for v, r in ((kv, k_rej), (iv, i_rej), (pv, p_rej)) if r}
            ctx.append(
                f"{', '.join(rejected)}: the configured value is not an integer, the kernel rejects the "
                "write and keeps its default (SYS002)"
            )
        if nat is not None:
            ev["nat_idle_timeout"] = nat

        lead = (
            f"Keepalive in effect: tcp_keepalive_time={k} s, tcp_keepalive_intvl={i} s, "
            f"tcp_keepalive_probes={p} ({_origins(kv, iv, pv)}); it applies only to idle sockets that enable "
            "SO_KEEPALIVE."
        )
        if f.kind == "host":
            sev = self._host_evidence(f, ev, parts, ctx, sev, path_independent=p == 0 or i == 0)
        else:
            ctx.append("config target: severity from the settings alone (no socket table)")
        ctx.append(
            f"thresholds: intvl x probes < {SHORT_WINDOW_S} s low, < {VERY_SHORT_WINDOW_S} s or probes = 1 "
            f"medium, probes or intvl = 0 high; tcp_keepalive_time < {AGGRESSIVE_IDLE_S} s info"
        )
        return self.finding(
            f, severity=sev, keys=keys, evidence=ev, context=ctx, fix=fix, explanation=" ".join([lead, *parts])
        )

    def _host_evidence(
        self, f: Facts, ev: dict[str, Any], parts: list[str], ctx: list[str], sev: Severity, path_independent: bool
    ) -> Severity:
        """Counters and the socket table. Loopback connections see no path outages, so unless the settings kill
        connections without any outage (probes or intvl 0) only keepalive sockets to other hosts are exposed."""
        for name in ("TcpExt.TCPKeepAlive", "TcpExt.TCPAbortOnTimeout"):
            c = f.counter_evidence(name)
            if c is not None:
                ev[name.split(".", 1)[1]] = c
        t = f.snapshot.sockets
        if not len(t):
            return sev
        est = with_ka = remote = 0
        for state, raddr, timer in zip(t.state, t.remote_addr, t.timer, strict=True):
            if state != "ESTAB":
                continue
            est += 1
            if timer == "keepalive":
                with_ka += 1
                remote += not is_loopback(raddr)
        ev["established"] = est
        ev["established_with_keepalive_timer"] = with_ka
        ev["established_with_keepalive_timer_non_loopback"] = remote
        exposed = with_ka if path_independent else remote
        if est and not exposed:
            which = "" if path_independent else " to another host"
            parts.append(
                f"None of the {est} established connections{which} has a keepalive timer now "
                f"({with_ka} in all), so the setting is latent until an application enables SO_KEEPALIVE."
            )
            ctx.append(f"host: no established connection{which} uses SO_KEEPALIVE right now, severity lowered one step")
            return sev.lowered()
        if with_ka:
            parts.append(
                f"{with_ka} of the {est} established connections have a keepalive timer ({remote} of them "
                "to other hosts) and are exposed."
            )
        return sev
