"""TCP001: tcp_tw_recycle drops SYNs from clients behind NAT."""

from typing import Any

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


class TwRecycle(ValueRule):
    key = "net.ipv4.tcp_tw_recycle"
    meta = RuleMeta(
        id="TCP001",
        title="tcp_tw_recycle is on: SYNs from clients behind NAT are dropped at random",
        severity=Severity.critical,
        keys=["net.ipv4.tcp_tw_recycle", "net.ipv4.tcp_timestamps"],
        summary=(
            "With tcp_tw_recycle=1 the kernel remembers the last TCP timestamp seen from each peer IP address and "
            "drops any new SYN from that address whose timestamp is lower. Clients behind one NAT share an address "
            "but not a timestamp clock, so their connections fail at random; so do clients whose own kernel gives "
            "each connection a random timestamp offset (Linux 4.10, and kernels with 165573e41f2f), NAT or not."
        ),
        mechanism=[
            "tcp_tw_recycle=1 makes the kernel remember, per remote IP address, the last TCP timestamp (TSval) it "
            "saw from that address when a connection to it ended (VJ's 'per-host PAWS': tcp_remember_stamp(), "
            "tcp_tw_remember_stamp()). Kernels before 3.6 keep it in the inet_peer cache; from 3.6 on "
            "(81166dd6fa8e 'tcp: Move timestamps from inetpeer to metrics cache', so 3.10 kernels too) "
            "it is kept in the TCP metrics cache (net/ipv4/tcp_metrics.c, exported as TCP_METRICS_ATTR_TW_TSVAL and "
            "listed by `ip tcp_metrics show`).",
            "On each new SYN from that address within TCP_PAWS_MSL (60 s) of the remembered stamp, "
            "tcp_v4_conn_request() (tcp_conn_request() in later kernels) asks tcp_peer_is_proven() with the PAWS "
            "check on and drops the SYN if its TSval is lower than the remembered one (counted in "
            "TcpExt.PAWSPassive). Later kernels (a26552afe894) drop SYNs that carry no timestamp at all in that "
            "window too.",
            "Many clients behind one NAT or load balancer share a public IP, but each has its own timestamp clock; "
            "most NATs do not rewrite TCP timestamps.",
            "So whenever a client with a 'younger' clock connects soon after another client behind the same NAT, "
            "its SYNs are dropped without any RST or ICMP: connect() just times out, for some clients, some of the "
            "time.",
            "NAT is not needed when the client itself gives every connection its own random timestamp offset: its "
            "TSvals are then not monotonic across its connections to this server. Linux 4.10 clients do "
            "(95a22caee396 'tcp: randomize tcp timestamp offsets for each connection'; the breakage 4396e46187ca "
            "gives for removing tcp_tw_recycle in 4.12), until 28ee1b746f49 went back to per-host offsets (4.11 "
            "according to secondary sources, not verified here); 165573e41f2f (2026, 'tcp: secure_seq: add back "
            "ports to TS offset', queued for the 6.12 and 6.19 stable series) brings per-connection offsets back. "
            "The check reads the client's TSvals, so this server's own kernel version does not matter.",
        ],
        when_it_matters=(
            "Servers reachable from the Internet, offices, mobile networks or any NAT/load balancer that keeps "
            "timestamps, and servers with Linux clients whose kernels randomize the timestamp offset per connection "
            "(4.10, and kernels carrying 165573e41f2f), NAT or not. Harmless only when every client has its own "
            "address and sends monotonic timestamps, or when tcp_timestamps=0 on this host (then recycling does "
            "nothing at all)."
        ),
        remediation=(
            "Set net.ipv4.tcp_tw_recycle=0 and remove it from sysctl.d (the key no longer exists from 4.12 on). "
            "For TIME-WAIT pressure on a client, use tcp_tw_reuse (outgoing connections only) and connection "
            "reuse instead. Turning tcp_timestamps off on the clients is a workaround, not a fix: it disables "
            "PAWS and timestamp-based detection of spurious retransmissions on those clients, and a server whose "
            "kernel has a26552afe894 drops timestamp-less SYNs too for 60 s after a timestamped connection from "
            "the same address."
        ),
        references=[
            Reference(
                title="tcp: remove tcp_tw_recycle (Linux 4.12, commit 4396e46187ca)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=4396e46187ca5070219b81773c4e65088dac50cc",
            ),
            Reference(
                title="RFC 7323: TCP Extensions for High Performance (PAWS)",
                url="https://www.rfc-editor.org/rfc/rfc7323",
            ),
            Reference(
                title="RFC 6191: Reducing the TIME-WAIT State Using TCP Timestamps",
                url="https://www.rfc-editor.org/rfc/rfc6191",
            ),
            Reference(
                title="Papertrail: Why you should not enable tcp_tw_recycle (field report)",
                url="https://www.papertrail.com/solution/tips/why-you-should-not-enable-tcp_tw_recycle/",
            ),
            Reference(
                title="tcp: Move timestamps from inetpeer to metrics cache (3.6 cycle, 81166dd6fa8e)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=81166dd6fa8eb780b2132d32fbc77eb6ac04e44e",
            ),
            Reference(
                title="tcp: randomize tcp timestamp offsets for each connection (4.10, 95a22caee396)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=95a22caee396cef0bb2ca8fafdd82966a49367bb",
            ),
            Reference(
                title="tcp: secure_seq: add back ports to TS offset (2026, 165573e41f2f, reverts 28ee1b746f49)",
                url="https://patch.msgid.link/20260302205527.1982836-1-edumazet@google.com",
            ),
        ],
        headline=["tcp_tw_recycle", "tcp_timestamps", "clients_behind_nat", "PAWSPassive"],
    )

    def judge(self, f: Facts, v: Value):
        if v.int != 1:
            return None
        ts = f.value("net.ipv4.tcp_timestamps")
        ev: dict[str, Any] = {
            "tcp_tw_recycle": v.raw,
            "tcp_timestamps": ts.raw,
            "kernel": f.snapshot.kernel.release,
            "clients_behind_nat": f.context.clients_behind_nat,
        }
        ctx = [f"clients behind NAT: {f.context.clients_behind_nat} ({f.context.clients_source})"]
        fix = {"net.ipv4.tcp_tw_recycle": "0"}
        if ts.int == 0:
            return self.finding(
                f,
                severity=Severity.low,
                evidence=ev,
                context=ctx,
                fix=fix,
                explanation=(
                    "tcp_tw_recycle=1 but tcp_timestamps=0: recycling needs timestamps, so it does nothing here "
                    "and no SYNs are dropped by it. The setting is a trap for whoever turns timestamps back on."
                ),
            )
        paws = f.counter_evidence("TcpExt.PAWSPassive")
        if paws is not None:
            ev["PAWSPassive"] = paws
        rate = f.counter_rate("TcpExt.PAWSPassive")
        # The check compares the TSvals the *clients* send, so this host's own kernel version plays no part;
        # clients whose kernels randomize the offset per connection are hit without any NAT.
        per_conn = (
            "Linux clients whose kernels give each connection its own random timestamp offset (4.10, "
            "and kernels carrying 165573e41f2f from 2026) are dropped too, NAT or not"
        )
        if f.context.clients_behind_nat == "yes":
            sev, why = Severity.critical, "clients reach this host through NAT, so their SYNs will be dropped"
        elif f.context.clients_behind_nat == "unknown":
            sev, why = (
                Severity.high,
                (
                    "if any clients share a NAT address (offices, mobile carriers, cloud NAT, load balancers that keep "
                    f"timestamps) their SYNs will be dropped, and {per_conn}; say --clients-behind-nat no if no client "
                    "ever comes through NAT"
                ),
            )
        else:
            sev, why = (
                Severity.medium,
                (
                    f"you said no clients come through NAT, but {per_conn}, and it breaks for everyone the day a NAT "
                    "appears"
                ),
            )
        happening = ""
        if rate is not None and rate > 0:
            sev = Severity.critical
            happening = f" PAWSPassive is rising at {rate:.1f}/s: SYNs are being dropped now."
        elif paws is not None and paws["total_since_boot"] > 0:
            sev = sev if sev.at_least(Severity.high) else sev.raised()
            happening = (
                f" PAWSPassive is {paws['total_since_boot']} since boot: SYNs have been dropped by this "
                "check (use --sample to see whether it is still rising)."
            )
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx,
            fix=fix,
            explanation=(
                "tcp_tw_recycle=1 makes the kernel drop a SYN whose TCP timestamp is lower than the last one seen "
                f"from the same IP address within 60 s; {why}.{happening}"
            ),
        )
