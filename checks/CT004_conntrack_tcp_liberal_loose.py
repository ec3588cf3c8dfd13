"""CT004: conntrack TCP tracking loosened (be_liberal=1) or mid-stream pickup disabled (loose=0)."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

LIBERAL = "net.netfilter.nf_conntrack_tcp_be_liberal"
LOOSE = "net.netfilter.nf_conntrack_tcp_loose"
IGNORE_RST = "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst"


def forwarding_reasons(f: Facts) -> list[str]:
    """Why this target routes/NATs other hosts' traffic through conntrack (empty if nothing says so)."""
    why = []
    fwd = f.value("net.ipv4.ip_forward")
    if fwd.int == 1:
        why.append(f"ip_forward=1 ({fwd.where()})")
    if f.snapshot.environment.nat_rules:
        why.append(f"{len(f.snapshot.environment.nat_rules)} iptables NAT rule(s)")
    if f.context.kubernetes:
        why.append("Kubernetes node (kube-proxy NATs service traffic)")
    return why


class ConntrackTcpLiberalLoose(Rule):
    meta = RuleMeta(
        id="CT004",
        title="Conntrack TCP tracking loosened (tcp_be_liberal=1) or mid-stream pickup off (tcp_loose=0)",
        severity=Severity.low,
        keys=[LIBERAL, LOOSE],
        summary=(
            "Two conntrack TCP switches change which packets are INVALID. nf_conntrack_tcp_be_liberal=1 lets every "
            "segment that fails the window check through; only a RST below what the peer has already acknowledged "
            "is still INVALID. It is the known workaround for Kubernetes 'connection reset by peer' (out-of-window "
            "packets marked INVALID escape NAT), but it also hides the window problems that cause them. "
            "nf_conntrack_tcp_loose=0 forbids picking up connections mid-stream, so after "
            "a conntrack flush, a failover or an entry lost to a full table, every existing connection's packets "
            "are INVALID and dropped or left un-NATed."
        ),
        mechanism=[
            "Conntrack checks every TCP segment against the sequence/ack window it has tracked; a segment outside "
            "it is marked INVALID (nf_conntrack-sysctl.rst). Recent kernels pass a few of these unmarked instead "
            "(retransmissions of already acknowledged data, overly delayed ACKs: NFCT_TCP_IGNORE); in 5.14 "
            "(1da4cd82dd18) every failing segment was INVALID.",
            "INVALID packets match no NAT mapping: a ruleset that drops INVALID drops them, and one that does not "
            "passes them un-translated, so the receiver answers with a RST that kills the connection (the "
            "kube-proxy 'connection reset by peer' case).",
            "be_liberal=1: tcp_in_window() accepts every segment that fails the window check (in current kernels "
            "nf_tcp_log_invalid() returns ACCEPT for a liberal connection; in 5.14 the same test sits at the end of "
            "tcp_in_window()), so late retransmissions, overlong segments and window-probe oddities pass. The "
            "separate RST check in nf_conntrack_tcp_packet() still runs -- a RST whose sequence number is below "
            "the peer's highest ACK is 'invalid rst' -- which is what nf_conntrack-sysctl.rst means by 'we mark "
            "only out of window RST segments as INVALID'. Connections survive, but the root cause (e.g. a "
            "middlebox breaking window scaling, or asymmetric routing) stays invisible and the stateful firewall "
            "accepts any in-flow segment.",
            "nf_conntrack_tcp_ignore_invalid_rst=1 (5.14+, 1da4cd82dd18) acts on different packets: it skips only "
            "that RST check (RST sequence before the peer's highest ACK). It does nothing for out-of-window data "
            "and ACK segments -- the kube-proxy case -- and a RST that fails tcp_in_window() is still INVALID; the "
            "RST answering a challenge ACK during 4-tuple reuse (KI-CT-CHALLENGE-ACK-RST) is such a RST, which "
            "only be_liberal (or a kernel with c410cb974f2b) lets through. It is not a narrower be_liberal.",
            "loose=0: a packet of an established connection that has no conntrack entry (entries flushed with "
            "'conntrack -F', lost in a failover, evicted from a full table, or expired while idle) cannot create "
            "one mid-stream; it is INVALID, so the connection dies although both endpoints are fine.",
        ],
        when_it_matters=(
            "NAT gateways, Kubernetes/Docker nodes and stateful firewalls: be_liberal where it was set as a "
            "workaround and forgotten, loose=0 on any box whose conntrack state can be lost (HA pairs with "
            "conntrackd, hosts that flush conntrack on firewall reloads, tables that fill up)."
        ),
        remediation=(
            "Leave nf_conntrack_tcp_loose=1 (default) unless the firewall really must not adopt unknown flows. "
            "Treat nf_conntrack_tcp_be_liberal=1 as a documented workaround: fix or confirm the source of the "
            "out-of-window packets, or make the ruleset drop INVALID packets explicitly (-m conntrack --ctstate "
            "INVALID -j DROP) so they never leak un-NATed. Where be_liberal was set for the challenge-ACK RST "
            "(KI-CT-CHALLENGE-ACK-RST), a kernel with c410cb974f2b (6.2, 6.1.9) lets it go. "
            "nf_conntrack_tcp_ignore_invalid_rst (5.14+) does not replace it: it only stops RSTs below the peer's "
            "ACK from being INVALID and leaves out-of-window data, ACK and RST segments INVALID."
        ),
        references=[
            Reference(
                title="nf_conntrack-sysctl.rst: nf_conntrack_tcp_be_liberal (default 0), nf_conntrack_tcp_loose "
                "(default 1), nf_conntrack_tcp_ignore_invalid_rst",
                url="https://www.kernel.org/doc/Documentation/networking/nf_conntrack-sysctl.rst",
            ),
            Reference(
                title="Kubernetes blog: kube-proxy subtleties, debugging an intermittent connection reset",
                url="https://kubernetes.io/blog/2019/03/29/kube-proxy-subtleties-debugging-an-intermittent-connection-reset/",
            ),
            Reference(
                title="netfilter: conntrack: add new sysctl to disable RST check (1da4cd82dd18, merged for 5.14 "
                "via d7fba8ff3e50): nf_conntrack_tcp_ignore_invalid_rst",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=1da4cd82dd180224503e745ccf3220e3490d8897",
            ),
            Reference(
                title="net/netfilter/nf_conntrack_proto_tcp.c: tcp_in_window(), nf_conntrack_tcp_packet() "
                "('invalid rst')",
                url="https://github.com/torvalds/linux/blob/master/net/netfilter/nf_conntrack_proto_tcp.c",
            ),
        ],
    )

    def check(self, f: Facts):
        lib, loose = f.value(LIBERAL), f.value(LOOSE)
        if lib.raw is None and loose.raw is None:
            if "absent" in (lib.origin, loose.origin):
                return self.na("nf_conntrack is not loaded (no net.netfilter.nf_conntrack_tcp_* sysctls)")
            return self.unread(f, "nf_conntrack_tcp_be_liberal / nf_conntrack_tcp_loose unknown")
        fwd = forwarding_reasons(f)
        invalid = f.snapshot.conntrack.stat_total("invalid") if f.kind == "host" else None
        out = []
        if lib.int is not None and lib.int != 0:
            ev: dict = {"nf_conntrack_tcp_be_liberal": lib.raw, "origin": lib.origin, "forwarding": fwd}
            ignore = f.value(IGNORE_RST)
            if ignore.raw is not None:
                ev["nf_conntrack_tcp_ignore_invalid_rst"] = ignore.raw
            if invalid is not None:
                ev["conntrack_invalid_total"] = invalid
            if fwd:
                sev = Severity.info
                ctx = [
                    "this box NATs/forwards (" + "; ".join(fwd) + "), where be_liberal is the documented "
                    "workaround for INVALID packets escaping NAT"
                ]
            else:
                sev = Severity.low
                ctx = ["nothing shows this box NATs or forwards, so there is no known reason for the workaround"]
            narrower = (
                " This kernel has nf_conntrack_tcp_ignore_invalid_rst, but that is not a narrower "
                "be_liberal: it only stops RSTs below the peer's ACK from being INVALID and leaves out-of-window "
                "data, ACKs and RSTs (the challenge-ACK reuse case included) INVALID."
                if ignore.raw is not None
                else ""
            )
            out.append(
                self.finding(
                    f,
                    severity=sev,
                    keys=[LIBERAL],
                    evidence=ev,
                    context=ctx,
                    fix={LIBERAL: "0"},
                    explanation=(
                        f"nf_conntrack_tcp_be_liberal={lib.raw} ({lib.where()}): conntrack lets every segment that "
                        "fails "
                        "its window check through and marks only RSTs below the peer's acknowledged sequence INVALID. "
                        "That keeps connections "
                        "alive where INVALID packets would otherwise escape NAT and trigger RSTs (the kube-proxy "
                        "'connection reset by peer' workaround), but it hides whatever produces the out-of-window "
                        f"packets and weakens the stateful firewall.{narrower}"
                    ),
                )
            )
        if loose.int == 0:
            ev = {"nf_conntrack_tcp_loose": loose.raw, "origin": loose.origin, "forwarding": fwd}
            if invalid is not None:
                ev["conntrack_invalid_total"] = invalid
            nat = (
                (
                    " On this box (" + "; ".join(fwd) + ") such packets are also left un-NATed, so the peer sees "
                    "foreign addresses and answers with RSTs."
                )
                if fwd
                else ""
            )
            out.append(
                self.finding(
                    f,
                    severity=Severity.low,
                    keys=[LOOSE],
                    evidence=ev,
                    context=["latent: it breaks connections only after conntrack state is lost"],
                    fix={LOOSE: "1"},
                    explanation=(
                        f"nf_conntrack_tcp_loose=0 ({loose.where()}): conntrack will not adopt a TCP connection "
                        "mid-stream. Whenever an entry is lost (conntrack -F on a firewall reload, a failover, "
                        "eviction "
                        "from a full table, expiry while idle), every further packet of that connection is INVALID and "
                        f"is dropped by rules that drop INVALID: the connection hangs although both ends are fine.{nat}"
                    ),
                )
            )
        return out or None
