"""TCP001: tcp_tw_recycle drops SYNs from clients behind NAT."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


class TwRecycle(ValueRule):
    key = "net.ipv4.tcp_tw_recycle"
    meta = RuleMeta(
        id="TCP001",
        title="tcp_tw_recycle is on: SYNs from clients behind NAT are silently dropped",
        severity=Severity.critical,
        keys=["net.ipv4.tcp_tw_recycle", "net.ipv4.tcp_timestamps"],
        summary=(
            "With tcp_tw_recycle=1 the kernel remembers the last TCP timestamp seen from each peer IP address and "
            "drops any new SYN from that address whose timestamp is lower. Clients behind one NAT share an address "
            "but not a timestamp clock, so their connections fail at random."
        ),
        mechanism=[
            "tcp_tw_recycle=1 makes the kernel keep the last TCP timestamp (TSval) it saw from each remote IP in "
            "the inet_peer cache when a connection to it enters TIME-WAIT (VJ's 'per-host PAWS').",
            "On each new SYN from that IP within the PAWS window (60 s), tcp_v4_conn_request() compares the SYN's "
            "TSval with the remembered one and drops the SYN if it is lower (counted in TcpExt.PAWSPassive).",
            "Many clients behind one NAT or load balancer share a public IP, but each has its own timestamp clock; "
            "most NATs do not rewrite TCP timestamps.",
            "So whenever a client with a 'younger' clock connects soon after another client behind the same NAT, "
            "its SYNs are dropped without any RST or ICMP: connect() just times out, for some clients, some of the "
            "time. From Linux 4.10 timestamps get a random per-connection offset, so even a single client without "
            "NAT is hit; that is why 4.12 removed the option.",
        ],
        when_it_matters=(
            "Servers reachable from the Internet, offices, mobile networks or any NAT/load balancer that keeps "
            "timestamps; always on kernels 4.10 and 4.11. Harmless only when every client has its own address and "
            "the kernel is older than 4.10, or when tcp_timestamps=0 (then recycling does nothing at all)."
        ),
        remediation=(
            "Set net.ipv4.tcp_tw_recycle=0 and remove it from sysctl.d (the key no longer exists from 4.12 on). "
            "For TIME-WAIT pressure on a client, use tcp_tw_reuse (outgoing connections only) and connection "
            "reuse instead. Turning tcp_timestamps off on the clients is a workaround, not a fix: it disables "
            "PAWS and accurate RTT measurement on those clients."
        ),
        references=[
            Reference(title="tcp: remove tcp_tw_recycle (Linux 4.12, commit 4396e46187ca)",
                      url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=4396e46187ca5070219b81773c4e65088dac50cc"),
            Reference(title="RFC 7323: TCP Extensions for High Performance (PAWS)",
                      url="https://www.rfc-editor.org/rfc/rfc7323"),
            Reference(title="RFC 6191: Reducing the TIME-WAIT State Using TCP Timestamps",
                      url="https://www.rfc-editor.org/rfc/rfc6191"),
            Reference(title="Papertrail: Why you should not enable tcp_tw_recycle (field report)",
                      url="https://www.papertrail.com/solution/tips/why-you-should-not-enable-tcp_tw_recycle/"),
        ],
    )

    def judge(self, f: Facts, v: Value):
        if v.int != 1:
            return None
        ts = f.value("net.ipv4.tcp_timestamps")
        ev = {"tcp_tw_recycle": v.raw, "tcp_timestamps": ts.raw, "kernel": f.snapshot.kernel.release,
              "clients_behind_nat": f.context.clients_behind_nat}
        ctx = [f"clients behind NAT: {f.context.clients_behind_nat} ({f.context.clients_source})"]
        fix = {"net.ipv4.tcp_tw_recycle": "0"}
        if ts.int == 0:
            return self.finding(
                f, severity=Severity.low, evidence=ev, context=ctx, fix=fix,
                explanation=(
                    "tcp_tw_recycle=1 but tcp_timestamps=0: recycling needs timestamps, so it does nothing here "
                    "and no SYNs are dropped by it. The setting is a trap for whoever turns timestamps back on."
                ),
            )
        paws = f.counter_evidence("TcpExt.PAWSPassive")
        if paws is not None:
            ev["PAWSPassive"] = paws
        rate = f.counter_rate("TcpExt.PAWSPassive")
        randomized = f.kernel_at_least((4, 10))
        if randomized:
            sev, why = Severity.critical, (
                "on this kernel (4.10+) every connection gets a random timestamp offset, so SYNs from ANY client, "
                "NAT or not, are dropped whenever its new offset is lower than the last one seen"
            )
        elif f.context.clients_behind_nat == "yes":
            sev, why = Severity.critical, "clients reach this host through NAT, so their SYNs will be dropped"
        elif f.context.clients_behind_nat == "unknown":
            sev, why = Severity.high, (
                "if any clients share a NAT address (offices, mobile carriers, cloud NAT, load balancers that keep "
                "timestamps) their SYNs will be dropped; say --clients-behind-nat no if none ever do"
            )
        else:
            sev, why = Severity.low, (
                "you said no clients come through NAT, so this is latent: it breaks the day one does"
            )
        happening = ""
        if rate is not None and rate > 0:
            sev = Severity.critical
            happening = f" PAWSPassive is rising at {rate:.1f}/s: SYNs are being dropped now."
        elif paws is not None and paws["total_since_boot"] > 0:
            sev = sev if sev.at_least(Severity.high) else sev.raised()
            happening = (f" PAWSPassive is {paws['total_since_boot']} since boot: SYNs have been dropped by this "
                         "check (use --sample to see whether it is still rising).")
        return self.finding(
            f, severity=sev, evidence=ev, context=ctx, fix=fix,
            explanation=(
                "tcp_tw_recycle=1 makes the kernel drop a SYN whose TCP timestamp is lower than the last one seen "
                f"from the same IP address within 60 s; {why}.{happening}"
            ),
        )
