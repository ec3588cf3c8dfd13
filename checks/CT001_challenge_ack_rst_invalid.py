"""CT001: conntrack marks the RST after a challenge ACK invalid; NATed connects time out."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

ISSUE = "KI-CT-CHALLENGE-ACK-RST"


class ChallengeAckRstInvalid(Rule):
    meta = RuleMeta(
        id="CT001",
        title="Conntrack drops the RST after a challenge ACK: connects through NAT/REDIRECT time out",
        severity=Severity.high,
        keys=["net.netfilter.nf_conntrack_tcp_be_liberal", "net.netfilter.nf_conntrack_tcp_ignore_invalid_rst"],
        summary=(
            "On kernels that carry 'netfilter: nf_conntrack_tcp: re-init for syn packets only' (c7aab4f17021, "
            "mainline 5.18, backported by some distributions) but not the fix 'netfilter: "
            "conntrack: handle tcp challenge acks during connection reuse' (c410cb974f2b, 6.2 and 6.1.9), "
            "conntrack tags the RST a client sends in answer to a challenge ACK as INVALID. "
            "INVALID packets are not NATed and are often dropped, so the stale connection on the far side is "
            "never cleared and the client's SYNs are retried until connect() times out."
        ),
        mechanism=[
            "A new outgoing connection reuses a 4-tuple that the peer (or a local sidecar reached through "
            "DNAT/REDIRECT) still holds in FIN-WAIT-2, CLOSE-WAIT or TIME-WAIT.",
            "The peer answers the SYN with a challenge ACK carrying the old connection's sequence numbers "
            "(RFC 5961); TcpExt.TCPChallengeACK / TCPSYNChallenge rise.",
            "The client replies with a RST whose sequence number matches that ACK, which is the right thing to do, "
            "but conntrack's window check compares it with the new SYN_SENT entry, finds it out of window and "
            "marks it INVALID.",
            "An INVALID packet is not de-NATed and is dropped by rulesets that drop INVALID (kube-proxy and Istio "
            "do), so the peer never sees the RST; every SYN retransmission gets the same challenge ACK and "
            "connect() fails with a timeout after tcp_syn_retries.",
            "Mainline 6.2 (commit c410cb974f2b, backported to 6.1.9) lets such RSTs pass: it records the "
            "challenge ACK's ack_seq and skips the window check for a RST with exactly that sequence number. "
            "The fix's own message says the RST 'will fail window validation' (tcp_in_window()); only "
            "nf_conntrack_tcp_be_liberal=1 forgives that failure. nf_conntrack_tcp_ignore_invalid_rst=1 (5.14, "
            "1da4cd82dd18) does not: it only skips the separate 'invalid rst' test (a RST sequence number before "
            "the peer's highest ACK).",
        ],
        when_it_matters=(
            "Kubernetes pods with an Istio/Envoy-style sidecar (iptables REDIRECT to 15001/15006), NAT gateways, "
            "any host whose firewall drops conntrack INVALID packets and that reconnects quickly to the same peer."
        ),
        remediation=(
            "Upgrade to a kernel with the fix (6.2+, 6.1.9+, or a distro kernel that backports c410cb974f2b). "
            "Meanwhile remove the collision: fix the half-closed socket leak that leaves the peer holding the "
            "4-tuple (see CT002). net.netfilter.nf_conntrack_tcp_be_liberal=1 lets the RST through, at a cost: "
            "conntrack then marks no out-of-window TCP segment INVALID, so stray or spoofed segments are NATed and "
            "forwarded (see CT004). nf_conntrack_tcp_ignore_invalid_rst=1 does not help with this RST."
        ),
        references=[
            Reference(
                title="netfilter: conntrack: handle tcp challenge acks during connection reuse (c410cb974f2b)",
                url="https://github.com/torvalds/linux/commit/c410cb974f2ba562920ecb8492ee66945dcf88af",
            ),
            Reference(
                title="Merge of the tcp_ignore_invalid_rst sysctl series (d7fba8ff3e50; the sysctl itself is "
                "1da4cd82dd18, v5.14)",
                url="https://github.com/torvalds/linux/commit/d7fba8ff3e50fb25ffe583bf945df052f6caffa2",
            ),
            Reference(
                title="istio/istio#43301: App outbound connecting timed out (field report)",
                url="https://github.com/istio/istio/issues/43301",
            ),
            Reference(
                title="RFC 5961: Improving TCP's Robustness to Blind In-Window Attacks",
                url="https://www.rfc-editor.org/rfc/rfc5961",
            ),
        ],
    )

    def check(self, f: Facts):
        if f.kind == "host" and not f.snapshot.conntrack.present:
            return self.na("conntrack is not loaded on this host: RSTs are not tracked")
        status = f.issue(ISSUE)
        if status is None:
            return self.na("the knowledge base has no answer for this kernel")
        ignore = f.value("net.netfilter.nf_conntrack_tcp_ignore_invalid_rst")
        liberal = f.value("net.netfilter.nf_conntrack_tcp_be_liberal")
        # be_liberal forgives the failed window check this RST hits; ignore_invalid_rst does not (it only skips
        # the 'RST before the peer's max ACK' test), so it never silences this rule.
        if status.applies is False or (liberal.int is not None and liberal.int != 0):
            return None
        ctx = f.context
        if status.applies is None and not (ctx.sidecar_ports or ctx.kubernetes):
            if f.kind == "host" and f.snapshot.environment.nat_rules is None:
                return self.unknown(
                    f"unknown whether this kernel has the bug ({status.confidence} confidence: {status.reason}), "
                    "and the NAT rules could not be read (iptables -t nat needs root)"
                )
            return self.na(
                f"unknown whether this kernel has the bug ({status.confidence} confidence: "
                f"{status.reason}) and no NAT redirect or Kubernetes seen"
            )
        if ctx.sidecar_ports:
            sev, why = (
                Severity.high,
                (
                    f"NAT REDIRECT/DNAT to port(s) {', '.join(map(str, ctx.sidecar_ports[:5]))} "
                    "is in play (the sidecar pattern of the field report)"
                ),
            )
        elif ctx.kubernetes:
            sev, why = Severity.medium, "this is a Kubernetes host, whose kube-proxy rules drop INVALID packets"
        else:
            sev, why = (
                Severity.low,
                ("no NAT redirect was seen; it bites once DNAT/REDIRECT or an 'INVALID -j DROP' rule is added"),
            )
        lead = f"Kernel {f.snapshot.kernel.release} lacks the conntrack fix for challenge-ACK RSTs ({status.reason})."
        if status.applies is None:
            sev = Severity.low
            lead = (
                f"It is unknown whether kernel {f.snapshot.kernel.release} has the conntrack challenge-ACK RST "
                f"bug ({status.confidence} confidence: {status.reason}); check the distribution's kernel "
                "changelog for c410cb974f2b."
            )
        ev = {
            "kernel": f.snapshot.kernel.release,
            "issue": ISSUE,
            "applies": status.applies,
            "confidence": status.confidence,
            "fixed_in": status.fixed_in,
            "nf_conntrack_tcp_ignore_invalid_rst": ignore.raw if ignore.present else "absent on this kernel",
            "nf_conntrack_tcp_be_liberal": liberal.raw,
            "redirect_ports": ctx.sidecar_ports[:10],
        }
        for counter in ("TcpExt.TCPChallengeACK", "TcpExt.TCPSYNChallenge"):
            c = f.counter_evidence(counter)
            if c is not None:
                ev[counter.split(".")[1]] = c
        fix: dict[str, str] = {}
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            fix=fix,
            context=[why],
            explanation=(
                f"{lead} When a connect() reuses a 4-tuple the peer still holds, the peer's challenge "
                "ACK is answered with a RST that conntrack marks INVALID, so it is neither NATed nor delivered, "
                f"and the client's SYNs time out; {why}."
                + " A kernel with c410cb974f2b, or removing the collision, fixes it; "
                "nf_conntrack_tcp_be_liberal=1 works around it at the cost of all window checking"
                + (
                    ", and nf_conntrack_tcp_ignore_invalid_rst=1 (set here) does not help: this RST fails window "
                    "validation, not the 'invalid rst' test that knob skips."
                    if ignore.int == 1
                    else "; nf_conntrack_tcp_ignore_invalid_rst does not help."
                )
            ),
        )
