"""TCP002: tcp_timestamps=0 trades PAWS, timestamp-based loss recovery and tcp_tw_reuse for very little."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule


class TimestampsOff(ValueRule):
    key = "net.ipv4.tcp_timestamps"
    meta = RuleMeta(
        id="TCP002",
        title="tcp_timestamps is off: no PAWS, no timestamp-based undo of spurious retransmissions, and tcp_tw_reuse "
        "silently does nothing",
        severity=Severity.medium,
        keys=["net.ipv4.tcp_timestamps", "net.ipv4.tcp_tw_reuse"],
        summary=(
            "tcp_timestamps=0 removes the RFC 7323 timestamp option from every connection. That disables PAWS "
            "(protection against old duplicate segments once the sequence space wraps), takes away the timestamp "
            "echo that lets Linux detect spurious retransmissions and take an RTT sample when only retransmitted "
            "data is acknowledged (the sender still times every ACK of never-retransmitted data), and makes "
            "tcp_tw_reuse a no-op because reuse of a TIME-WAIT port is only allowed for connections that carried "
            "timestamps. It is set "
            "as a 'hardening' measure and as a client-side workaround for servers running tcp_tw_recycle."
        ),
        mechanism=[
            "With tcp_timestamps=0 Linux neither offers nor accepts the timestamp option, so no connection on this "
            "host has TSval/TSecr.",
            "PAWS (RFC 7323 section 5) rejects segments whose timestamp is older than the last one seen; without it "
            "the only defence against an old duplicate segment is the sequence window. At 1 Gbit/s the 32-bit "
            "sequence space wraps every ~34 s, at 10 Gbit/s every ~3.4 s, well within a segment's possible "
            "lifetime, so a delayed duplicate can be accepted as new data.",
            "RTT sampling itself goes on: tcp_clean_rtx_queue() times every ACK that covers never-retransmitted "
            "data from the segments' send timestamps, and tcp_ack_update_rtt() prefers that to the timestamp echo. "
            "What is lost is the rest of what TS-ECR gives: an RTT sample when an ACK covers retransmitted data "
            "(Karn's rule forbids the send-time sample then), and the Eifel-style detection of spurious "
            "retransmissions (tcp_packet_delayed() and tcp_skb_spurious_retrans() compare TS-ECR with the "
            "retransmission time), so after a spurious timeout or fast retransmit the cwnd cut is undone only if "
            "D-SACK (needs SACK) or, for a timeout, F-RTO catches it. The receiver's own RTT estimate for "
            "receive-buffer autotuning falls back to one sample per window (tcp_rcv_rtt_measure()).",
            "tcp_twsk_unique() (net/ipv4/tcp_ipv4.c) lets connect() take over a TIME-WAIT 4-tuple only when the "
            "TIME-WAIT socket recorded a peer timestamp (tw_ts_recent_stamp). Without timestamps none does, so "
            "tcp_tw_reuse=1 does nothing and a client with heavy connection churn keeps every port locked for the "
            "full 60 s TIME-WAIT: connect() fails with EADDRNOTAVAIL once the ephemeral range is used up.",
            "The usual motivations are weak: the 'uptime leak' through timestamps is gone since Linux 4.10 "
            "(tcp_timestamps=1 adds a random offset: per connection in 4.10, 95a22caee396; per source/destination "
            "address pair after 28ee1b746f49; per connection again with 165573e41f2f (2026); ip-sysctl.rst says "
            "'for each connection'), and turning timestamps off on a client only "
            "to get through to a peer that still runs tcp_tw_recycle (field report 004) works around that peer's "
            "bug at the cost of every other connection.",
        ],
        when_it_matters=(
            "Clients that open many short connections to the same service (tcp_tw_reuse would have helped), fast "
            "long-lived transfers (PAWS), paths with reordering or delay spikes (undo of spurious retransmissions). "
            "Set by hardening baselines such "
            "as dev-sec os_hardening and by tuning scripts that also set tcp_tw_recycle/tcp_tw_reuse."
        ),
        remediation=(
            "Set net.ipv4.tcp_timestamps=1 (random offsets, the default). If timestamps were turned off to reach a "
            "server that runs tcp_tw_recycle, get that server fixed (the option was removed in Linux 4.12) or "
            "confine the workaround to the one container or network namespace that talks to it. If it came from a "
            "hardening baseline, override it: on 4.10+ kernels timestamps do not reveal uptime."
        ),
        references=[
            Reference(
                title="RFC 7323: TCP Extensions for High Performance (timestamps, PAWS)",
                url="https://www.rfc-editor.org/rfc/rfc7323",
            ),
            Reference(
                title="ip-sysctl.rst (stored mainline copy 0326074ff465): tcp_timestamps 0/1/2, tcp_tw_reuse",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="net/ipv4/tcp_ipv4.c tcp_twsk_unique(): reuse requires tw_ts_recent_stamp",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_ipv4.c",
            ),
            Reference(
                title="net/ipv4/tcp_input.c: tcp_ack_update_rtt() (Karn, TS-ECR fallback), tcp_packet_delayed()",
                url="https://github.com/torvalds/linux/blob/master/net/ipv4/tcp_input.c",
            ),
            Reference(
                title="tcp: allow to turn tcp timestamp randomization off (v4.10, 25429d7b7dca)",
                url="https://github.com/torvalds/linux/commit/25429d7b7dca01dc4f17205de023a30ca09390d0",
            ),
            Reference(
                title="dev-sec ansible os_hardening defaults (sets net.ipv4.tcp_timestamps: 0)",
                url="https://github.com/dev-sec/ansible-collection-hardening/blob/master/roles/os_hardening/defaults/main.yml",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        if v.int != 0:
            return None
        reuse = f.value("net.ipv4.tcp_tw_reuse")
        recycle = f.value("net.ipv4.tcp_tw_recycle")
        ev: dict = {
            "tcp_timestamps": v.raw,
            "tcp_timestamps_origin": v.origin,
            "tcp_tw_reuse": reuse.raw,
            "kernel": f.snapshot.kernel.release,
        }
        if recycle.raw is not None:
            ev["tcp_tw_recycle"] = recycle.raw
        ctx: list[str] = []
        sev = Severity.low
        parts = [
            "tcp_timestamps=0: no connection here carries TCP timestamps, so PAWS is off (old duplicate segments "
            "are only kept out by the sequence window, which wraps in ~34 s at 1 Gbit/s), spurious "
            "retransmissions can no longer be recognised from the timestamp echo (only D-SACK or F-RTO can undo "
            "the cwnd cut), and ACKs of retransmitted data give no RTT sample."
        ]
        if reuse.int == 1:
            sev = Severity.medium
            parts.append(
                f"tcp_tw_reuse=1 ({reuse.where()}) was clearly meant to let connect() reuse TIME-WAIT ports, but "
                "the kernel only reuses a TIME-WAIT socket that recorded a peer timestamp, so with timestamps off it "
                "never does: every closed outgoing connection still locks its port for 60 s."
            )
            ctx.append("tcp_tw_reuse=1 is set, so the configuration relies on TIME-WAIT reuse that cannot happen")
        elif reuse.int == 2:
            parts.append("tcp_tw_reuse=2 (loopback only) is likewise inert without timestamps.")
        if f.kind == "host":
            tw = f.snapshot.counters.get("TCP.tw")
            eph = f.usable_ephemeral_ports()
            ports = eph[2] if eph else None
            if tw is not None:
                ev["time_wait_sockets"] = tw
            if ports:
                ev["usable_ephemeral_ports"] = ports
            if tw is not None and ports and tw >= f.context.threshold("port_usage_warn") * ports:
                sev = Severity.medium
                parts.append(
                    f"There are {tw} TIME-WAIT sockets against {ports} usable ephemeral ports; without timestamps "
                    "none of them can be reused early, so a client with this much churn runs into EADDRNOTAVAIL."
                )
                ctx.append(
                    f"{tw} TIME-WAIT sockets >= {f.context.threshold('port_usage_warn'):.0%} of the usable "
                    "ephemeral ports"
                )
        if recycle.int == 1:
            parts.append(
                "tcp_tw_recycle=1 is set too: with timestamps off it is inert, so whoever turns timestamps back on "
                "also arms tw_recycle (see TCP001)."
            )
        else:
            parts.append(
                "If this was set so that connections get through to a server that still runs tcp_tw_recycle (field "
                "report 004), it does work, but it trades this host's PAWS and timestamp-based loss recovery for "
                "that server's bug; "
                "limit it to the network namespace that needs it."
            )
        if f.kernel_at_least((4, 10)):
            parts.append(
                "On this kernel (4.10+) timestamps carry a random offset, so leaving them "
                "on does not reveal the uptime, the reason hardening baselines give for turning them off."
            )
        ctx.append(f"severity {sev.value}: the cost is lost protection and accuracy, not an outright failure")
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx,
            explanation=" ".join(parts),
            fix={"net.ipv4.tcp_timestamps": "1"},
        )
