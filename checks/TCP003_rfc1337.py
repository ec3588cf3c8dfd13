"""TCP003: tcp_rfc1337=1 ignores RSTs in TIME-WAIT, so reused NAT ports keep failing."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


class Rfc1337(ValueRule):
    key = "net.ipv4.tcp_rfc1337"
    meta = RuleMeta(
        id="TCP003",
        title="tcp_rfc1337=1: RSTs are ignored in TIME-WAIT, so a client reusing a NAT port can fail to connect "
        "until TIME-WAIT ends",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_rfc1337"],
        summary=(
            "With tcp_rfc1337=1 a socket in TIME-WAIT ignores an in-window RST instead of closing. When a NAT reuses "
            "a source port for a new client while the server still holds the old connection in TIME-WAIT, a new "
            "SYN that does not look newer than the old connection (sequence number or timestamp) is answered with "
            "an ACK of the old connection; the client's RST that would clear it is dropped, and the new client's "
            "connects fail until TIME-WAIT ends (60 s, restarted by every SYN that fails PAWS)."
        ),
        mechanism=[
            "After the server closes a connection first, it keeps the 4-tuple in TIME-WAIT for 60 s.",
            "A NAT with a short port quarantine hands the same public address and port to another client, whose "
            "SYN arrives for that 4-tuple with an unrelated sequence number and timestamp clock.",
            "tcp_timewait_state_process() (net/ipv4/tcp_minisocks.c) accepts such a SYN as a new connection on the "
            "4-tuple only if it passes PAWS and its sequence number is after the old connection's rcv_nxt or its "
            "timestamp is newer than the last one seen (RFC 6191) -- true for some new clients and not for others. "
            "Any other SYN is answered with a duplicate ACK of the old connection (tcp_v4_timewait_ack(), "
            "rate-limited by tcp_invalid_ratelimit; not an RFC 5961 challenge ACK), and a SYN that fails PAWS also "
            "restarts the 60 s TIME-WAIT timer.",
            "The client, in SYN-SENT, receives an ACK that does not acknowledge its SYN and answers with a RST "
            "whose sequence number is that ACK's acknowledgement number (RFC 793), i.e. exactly the TIME-WAIT "
            "socket's rcv_nxt.",
            "With tcp_rfc1337=0 (the default) that in-window RST kills the TIME-WAIT socket and the client's next "
            "SYN retransmission reaches the listener. With tcp_rfc1337=1 the RST is ignored (RFC 1337's defence "
            "against TIME-WAIT assassination; only real TIME-WAIT sockets are affected, FIN-WAIT-2 timewait "
            "sockets still die on a RST), so every retry meets the same ACK until TIME-WAIT ends: the client sees "
            "connect() hang or time out.",
        ],
        when_it_matters=(
            "Servers whose clients arrive through NAT or carrier-grade NAT and that close connections first "
            "(HTTP servers with keep-alive limits, proxies). Some hardening baselines require tcp_rfc1337=1; the "
            "protection is against a rare old-duplicate-RST hazard, the cost is this NAT failure."
        ),
        remediation=(
            "Set net.ipv4.tcp_rfc1337=0 (the kernel default) on servers that may see clients through NAT. If a "
            "baseline requires 1, record a waiver with the reason (clients never come through NAT)."
        ),
        references=[
            Reference(
                title="RFC 1337: TIME-WAIT Assassination Hazards in TCP", url="https://www.rfc-editor.org/rfc/rfc1337"
            ),
            Reference(
                title="ip-sysctl.rst: tcp_rfc1337",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="RFC 6191: Reducing the TIME-WAIT State Using TCP Timestamps",
                url="https://www.rfc-editor.org/rfc/rfc6191",
            ),
            Reference(
                title="net/ipv4/tcp_minisocks.c tcp_timewait_state_process(): SYN, ACK and RST in TIME-WAIT",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_minisocks.c",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        if v.int != 1:
            return None
        nat = f.context.clients_behind_nat
        sev = {"yes": Severity.medium, "unknown": Severity.low, "no": Severity.info}[nat]
        why = {
            "yes": "clients reach this host through NAT, so port reuse by the NAT will hit TIME-WAIT sockets",
            "unknown": "whether clients come through NAT is unknown (say --clients-behind-nat)",
            "no": "you said clients never come through NAT, so this stays latent",
        }[nat]
        return self.finding(
            f,
            severity=sev,
            fix={"net.ipv4.tcp_rfc1337": "0"},
            evidence={"tcp_rfc1337": v.raw, "clients_behind_nat": nat},
            context=[f"clients behind NAT: {nat} ({f.context.clients_source})"],
            explanation=(
                "tcp_rfc1337=1 makes TIME-WAIT sockets ignore RSTs. When a NAT reuses a source port while this "
                "host still holds the previous connection in TIME-WAIT, a new client's SYN that does not look newer "
                "(sequence number or timestamp) gets a duplicate ACK for the old connection, the client's RST is "
                "ignored, and its retries fail until TIME-WAIT expires (60 s, restarted by each SYN that fails "
                f"PAWS); {why}."
            ),
        )
