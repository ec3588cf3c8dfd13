"""TCP010: half-closed connections pile up.

CLOSE-WAIT (the application never close()s) and FIN-WAIT-2 without a timer.
"""

from collections import Counter

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

_TOP = 5
# net/ipv4/tcp.c tcp_close(): an orphaned FIN-WAIT-2 socket becomes a TIME-WAIT mini-socket (ss shows
# timer:(timewait,...)) for tcp_fin_timeout when that is <= TCP_TIMEWAIT_LEN (60 s); above it, the full socket
# waits on the keepalive timer first.
_TIMEWAIT_LEN_S = 60


def _peer(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


class HalfClosedLeak(Rule):
    meta = RuleMeta(
        id="TCP010",
        title="Half-closed connections pile up: CLOSE-WAIT never closed, FIN-WAIT-2 held without a timer",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_fin_timeout"],
        applies_to=["host"],
        summary=(
            "A socket in CLOSE-WAIT has received the peer's FIN but the application has not called close(): the "
            "kernel never times it out, so every one is a leaked file descriptor and socket memory, and its peer "
            "waits in FIN-WAIT-2. A FIN-WAIT-2 socket without a timer belongs to an application that half-closed "
            "(shutdown(SHUT_WR), or close() while another process still holds the descriptor) and waits for a FIN "
            "that never comes: it lives until the application gives up - the half-closed proxy leak. Only "
            "orphaned FIN-WAIT-2 sockets (the application already closed) are bounded, by tcp_fin_timeout."
        ),
        mechanism=[
            "When the peer closes, its FIN moves the local socket to CLOSE-WAIT; the application sees end-of-file "
            "(read() returns 0) and is expected to close(). Until it does, the kernel keeps the socket, its "
            "descriptor and any unread data: there is no CLOSE-WAIT timeout in TCP (RFC 9293) or in Linux.",
            "An application that forgets close() on some path (error handling, a pool that never checks for EOF, a "
            "stuck worker) accumulates CLOSE-WAIT sockets until it hits its open-file limit: accept() and "
            "connect() then fail with EMFILE ('Too many open files'), while the listener keeps completing "
            "handshakes nobody serves. Recv-Q 1 on such a socket means even the FIN was never read.",
            "The peer that closed first waits in FIN-WAIT-2. If it closed the socket (orphaned; ss shows "
            "timer:(timewait,...) and ino:0) the kernel drops it after tcp_fin_timeout (60 s by default); the "
            "leaking side's eventual FIN or data is then answered with a RST.",
            "If the peer only half-closed - shutdown(SHUT_WR), or close() in one process while a forked child or a "
            "proxy's other half still holds the descriptor - its FIN-WAIT-2 socket is not orphaned, has no timer, "
            "and tcp_fin_timeout does not apply: it lives as long as the application keeps it (Istio/Envoy kept "
            "such connections for the 1-hour TCP proxy idle timeout, istio#43297).",
            "Conntrack forgets both states long before (nf_conntrack_tcp_timeout_close_wait 60 s, fin_wait 120 s); "
            "a later connection that reuses the 4-tuple - an ephemeral port redirected to a sidecar - lands on the "
            "stale socket, gets a challenge ACK and stalls (field report 003; see CT001/CT002).",
        ],
        when_it_matters=(
            "Servers and proxies with many short connections: a CLOSE-WAIT count that grows between runs is an "
            "application bug that ends in EMFILE; half-closed FIN-WAIT-2 sockets on a proxy or sidecar port hold "
            "ephemeral 4-tuples for as long as the proxy's idle timeout."
        ),
        remediation=(
            "CLOSE-WAIT: fix the application - close() the socket on every path after read() returns 0 or an "
            "error, and let pools evict connections whose peer has closed; the sockets' local port (or, on the "
            "client side, their destination) names the service, and `ss -tanp state close-wait` the process. "
            "Raising the open-file limit only postpones EMFILE. FIN-WAIT-2 without a timer: bound half-closed "
            "connections in the proxy (e.g. an idle timeout on half-closed TCP proxy connections), make sure "
            "descriptors are not inherited by children (SOCK_CLOEXEC), close() instead of shutdown() when done. "
            "tcp_fin_timeout bounds only orphaned FIN-WAIT-2 sockets; lowering it does not touch either leak."
        ),
        references=[
            Reference(
                title="RFC 9293: Transmission Control Protocol (connection state diagram, CLOSE-WAIT, FIN-WAIT-2)",
                url="https://www.rfc-editor.org/rfc/rfc9293",
            ),
            Reference(
                title="ip-sysctl.rst: tcp_fin_timeout (orphaned FIN-WAIT-2 only)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="istio/istio#43297: TCP Proxy half-closed connection leak for 1 hour in some scenarios",
                url="https://github.com/istio/istio/issues/43297",
            ),
            Reference(
                title="Cloudflare: This is strictly a violation of the TCP specification (CLOSE-WAIT, FIN-WAIT-2)",
                url="https://blog.cloudflare.com/this-is-strictly-a-violation-of-the-tcp-specification/",
            ),
        ],
    )

    def check(self, f: Facts):
        t = f.snapshot.sockets
        if t.source == "none":
            return self.unread(f, "the socket table was not collected")
        fin_timeout = f.value("net.ipv4.tcp_fin_timeout").int
        counts = t.state_counts
        if not counts.get("CLOSE-WAIT") and not counts.get("FIN-WAIT-2"):
            return None
        state = t.state
        rows = t.indices("CLOSE-WAIT", "FIN-WAIT-2")
        laddr, lport, raddr, rport = t.local_addr, t.local_port, t.remote_addr, t.remote_port
        timer, timer_ms, inode, uid, recv_q = t.timer, t.timer_ms, t.inode, t.uid, t.recv_q
        listening = {lport[i] for i in t.indices("LISTEN")}
        fin_wait2 = {(laddr[i], lport[i], raddr[i], rport[i]) for i in rows if state[i] == "FIN-WAIT-2"}

        cw: list[int] = []
        leak: list[int] = []
        orphan_ages: list[float] = []
        orphans = keepalive = 0
        for i in rows:
            if state[i] == "CLOSE-WAIT":
                cw.append(i)
                continue
            # Orphaned: no descriptor (ss ino:0); without inode numbers, the fin-wait timer gives it away.
            orphaned = inode[i] == 0 if inode[i] is not None else timer[i] in ("timewait", "keepalive")
            if not orphaned:
                if timer[i] is None:
                    leak.append(i)  # held by the application, and nothing will ever time it out
                else:
                    keepalive += 1  # SO_KEEPALIVE: probes end it only if the peer is gone
            else:
                orphans += 1
                left_ms = timer_ms[i]
                if (
                    timer[i] == "timewait"
                    and left_ms is not None
                    and fin_timeout is not None
                    and fin_timeout <= _TIMEWAIT_LEN_S
                ):
                    orphan_ages.append(max(0.0, fin_timeout - left_ms / 1000))

        def where(i: int) -> str:
            if lport[i] in listening:
                return f"local port {lport[i]} (listener)"
            return f"to {_peer(raddr[i], rport[i])}"

        def top(idx: list[int]) -> list[dict]:
            groups: Counter = Counter(where(i) for i in idx)
            uids: dict[str, set] = {}
            for i in idx:
                uids.setdefault(where(i), set()).add(uid[i])
            return [
                {"where": w, "count": n, "uids": sorted(u for u in uids[w] if u is not None)}
                for w, n in groups.most_common(_TOP)
            ]

        # CLOSE-WAIT counts come from state_counts: they cover the whole table even when the rows were capped.
        cw_total = counts.get("CLOSE-WAIT", 0)
        leak_total = len(leak)
        cw_warn, cw_high = f.context.threshold("close_wait_warn"), f.context.threshold("close_wait_high")
        fw_warn, fw_high = f.context.threshold("fin_wait2_leak_warn"), f.context.threshold("fin_wait2_leak_high")
        ev: dict = {
            "close_wait": cw_total,
            "fin_wait2_without_timer": leak_total,
            "fin_wait2_orphaned": orphans,
            "fin_wait2_half_closed_with_keepalive": keepalive,
            "tcp_fin_timeout": fin_timeout,
        }
        if orphan_ages:
            ev["fin_wait2_orphaned_oldest_s"] = round(max(orphan_ages), 1)
        parts: list[str] = []
        sev: Severity | None = None
        ctx = [
            f"thresholds: close_wait_warn={cw_warn:.0f}, close_wait_high={cw_high:.0f}, "
            f"fin_wait2_leak_warn={fw_warn:.0f}, fin_wait2_leak_high={fw_high:.0f}"
        ]
        if cw_total >= cw_warn:
            sev = Severity.high if cw_total >= cw_high else Severity.medium
            unread = sum(1 for i in cw if recv_q[i] > 0)
            peers_here = sum(1 for i in cw if (raddr[i], rport[i], laddr[i], lport[i]) in fin_wait2)
            retrans = sum(1 for i in cw if timer[i] == "on")
            groups = top(cw)
            ev.update(
                {
                    "close_wait_top": groups,
                    "close_wait_unread": unread,
                    "close_wait_peer_fin_wait2_on_this_host": peers_here,
                    "close_wait_retransmitting": retrans,
                }
            )
            shown = ", ".join(f"{g['where']}: {g['count']}" for g in groups)
            parts.append(
                f"{cw_total:,} sockets are in CLOSE-WAIT ({shown}): their peers closed and the application never "
                "called close(). The kernel never times CLOSE-WAIT out, so each one is a leaked descriptor and "
                "socket memory until the process exits; when it reaches its open-file limit, accept() and connect() "
                "fail with EMFILE."
                + (
                    f" {unread:,} still hold unread data or the unread FIN (Recv-Q > 0): the application is not even "
                    "reading them."
                    if unread
                    else ""
                )
                + (f" {peers_here:,} of their peers are on this host, stuck in FIN-WAIT-2." if peers_here else "")
            )
        if leak_total >= fw_warn:
            lsev = Severity.high if leak_total >= fw_high else Severity.medium
            sev = lsev if sev is None or lsev.rank > sev.rank else sev
            groups = top(leak)
            ev["fin_wait2_without_timer_top"] = groups
            shown = ", ".join(f"{g['where']}: {g['count']}" for g in groups)
            parts.append(
                f"{leak_total:,} FIN-WAIT-2 sockets have no timer and an open descriptor ({shown}): the "
                "application half-closed them (shutdown(SHUT_WR), or close() while another process still holds "
                "the descriptor) and the peer never sent its FIN. tcp_fin_timeout"
                + (f" ({fin_timeout} s)" if fin_timeout is not None else "")
                + " does not apply to them: they live until the application closes them - the half-closed proxy "
                "leak (istio#43297), holding 4-tuples that conntrack has long forgotten."
            )
        if sev is None:
            return None
        if orphans:
            parts.append(
                f"The {orphans:,} orphaned FIN-WAIT-2 socket(s) are harmless: the kernel drops them after "
                f"tcp_fin_timeout ({fin_timeout if fin_timeout is not None else '?'} s)"
                + (f"; the oldest is about {ev['fin_wait2_orphaned_oldest_s']:.0f} s old." if orphan_ages else ".")
            )
        if len(t) < t.total:
            ctx.append(f"the socket table was capped at {len(t):,} of {t.total:,} rows: groups cover those rows")
        return self.finding(f, severity=sev, evidence=ev, context=ctx, explanation=" ".join(parts))
