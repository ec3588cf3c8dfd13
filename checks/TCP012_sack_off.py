"""TCP012: tcp_sack=0 - selective acknowledgements off, usually a leftover 2019 'SACK Panic' workaround."""

from __future__ import annotations

from typing import Any

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

SACK = "net.ipv4.tcp_sack"
DSACK = "net.ipv4.tcp_dsack"
ISSUE = "KI-TCP-SACK-PANIC"
# Added by 'tcp: add tcp_min_snd_mss sysctl' (5f3e2bf008c2), one of the four SACK Panic fixes that shipped together
# in 4.4.182, 4.9.182, 4.14.127, 4.19.52, 5.1.11 and 5.2 (kernel_db/issues.toml KI-TCP-SACK-PANIC, notes): a host
# that has it runs a kernel with the fixes. Its absence proves nothing (vendor backports were not checked).
FIX_EVIDENCE = "net.ipv4.tcp_min_snd_mss"


class SackOff(Rule):
    meta = RuleMeta(
        id="TCP012",
        title="tcp_sack is off: a window with several losses is repaired one loss per round trip, or by timeout",
        severity=Severity.medium,
        keys=[SACK, DSACK],
        summary=(
            "With net.ipv4.tcp_sack=0 no connection to or from the host uses selective acknowledgements. When "
            "several segments of one window are lost, the sender learns about one hole per round trip (NewReno) "
            "and Linux's RACK loss detection and tail loss probes are off, so tail losses wait for a retransmission "
            "timeout; throughput collapses on lossy or long paths. Most configs that set it copied the June 2019 "
            "workaround for 'SACK Panic' (CVE-2019-11477/11478), which kernels fixed the same day."
        ),
        mechanism=[
            "SACK is negotiated in the handshake: with tcp_sack=0 Linux neither puts SACK-permitted in its SYN / "
            "SYN-ACK (tcp_syn_options) nor accepts the peer's (tcp_parse_options), so the setting disables SACK in "
            "both directions for every connection of the host or network namespace (per netns since 4.13).",
            "Without SACK a receiver can only repeat the cumulative ACK for the first hole. Linux then runs "
            "NewReno (RFC 6582; tcp_identify_packet_loss() -> tcp_newreno_mark_lost() for non-SACK connections): "
            "it retransmits the first missing segment and learns of the next hole only when that retransmission "
            "is acknowledged, one loss per round trip, or it falls back to a retransmission timeout.",
            "RACK time-based loss detection and Tail Loss Probes are SACK-only in Linux: tcp_identify_packet_loss() "
            "uses RACK only for SACK connections and tcp_schedule_loss_probe() returns early when !tcp_is_sack(tp). "
            "A lost last segment of a request or response is then recovered only by the RTO (minimum 200 ms, "
            "often a second or more).",
            "On long-fat or lossy paths (WAN, cross-region, Wi-Fi, congested links) that turns a burst of losses "
            "into many round trips or a timeout plus slow start: throughput and tail latency degrade, nothing "
            "fails outright.",
            "tcp_sack=0 was the documented workaround for 'SACK Panic' (CVE-2019-11477, a remote kernel panic) and "
            "'SACK Slowness' (CVE-2019-11478) in Netflix's NFLX-2019-001 advisory of 2019-06-17. The fixes "
            "(3b4929f65b0d 'tcp: limit payload size of sacked skbs' and three more) were released the same day in "
            "stable 4.4.182, 4.9.182, 4.14.127, 4.19.52 and 5.1.11 and are in 5.2; on such kernels the workaround "
            "protects nothing. On an unfixed kernel it is still the right stop-gap (severity info).",
            "tcp_dsack=0 (with SACK on) only stops this host from sending duplicate-SACKs: peers cannot tell their "
            "retransmissions were spurious, so they keep congestion-window cuts they could have undone; info.",
        ],
        when_it_matters=(
            "Hosts that move data over paths with loss or long round trips: WAN and cross-region traffic, clients "
            "on Wi-Fi or mobile networks, backups and replication. Seen in 2019-era hardening and tuning files "
            "(e.g. billywhizz/dv8 'sysctl -w net.ipv4.tcp_sack=0') that outlived the kernel fix."
        ),
        remediation=(
            "Set net.ipv4.tcp_sack=1 (the default) once the kernel carries the June 2019 fixes (mainline 5.2+, "
            "stable 4.4.182 / 4.9.182 / 4.14.127 / 4.19.52 / 5.1.11+, or your distribution's 2019 security update; "
            "net.ipv4.tcp_min_snd_mss exists on such kernels). On a kernel that is still vulnerable, upgrade; keep "
            "tcp_sack=0 only until then, or drop SYNs with a tiny MSS instead (NFLX-2019-001 workaround #1). "
            "Leave net.ipv4.tcp_dsack=1."
        ),
        references=[
            Reference(
                title="Netflix NFLX-2019-001: SACK Panic / SACK Slowness, workaround 'tcp_sack set to 0'",
                url="https://github.com/Netflix/security-bulletins/blob/master/advisories/third-party/2019-001.md",
            ),
            Reference(
                title="tcp: limit payload size of sacked skbs (3b4929f65b0d, CVE-2019-11477 fix)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/commit/?id=3b4929f65b0d8249f19a50245cd88ed1a2f78cff",
            ),
            Reference(
                title="Red Hat: TCP SACK PANIC - CVE-2019-11477, CVE-2019-11478 & CVE-2019-11479",
                url="https://access.redhat.com/security/vulnerabilities/tcpsack",
            ),
            Reference(
                title="RFC 2018: TCP Selective Acknowledgment Options", url="https://www.rfc-editor.org/rfc/rfc2018"
            ),
            Reference(
                title="RFC 6582: The NewReno Modification to TCP's Fast Recovery Algorithm",
                url="https://www.rfc-editor.org/rfc/rfc6582",
            ),
            Reference(
                title="RFC 8985: The RACK-TLP Loss Detection Algorithm for TCP",
                url="https://www.rfc-editor.org/rfc/rfc8985",
            ),
            Reference(
                title="ip-sysctl.rst: tcp_sack, tcp_dsack, tcp_recovery (RACK), tcp_early_retrans (TLP)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
        ],
    )

    def check(self, f: Facts):
        sack = f.value(SACK)
        if sack.origin == "absent":
            return self.na(f"{SACK} does not exist on this kernel")
        if sack.raw is None:
            return self.unread(f, f"{SACK} value unknown")
        n = sack.int
        if n is None:
            return self.na(f"{SACK}={sack.raw!r} is not an integer (SYS002 reports it)")
        if n != 0:
            return self._dsack(f, sack)
        return self._sack_off(f, sack)

    def _sack_off(self, f: Facts, sack: Value):
        ev: dict[str, Any] = {"tcp_sack": 0, "tcp_sack_origin": sack.origin, "kernel": f.snapshot.kernel.release}
        ctx: list[str] = []
        status = f.issue(ISSUE)
        has_fix_sysctl = f.kind == "host" and f.snapshot.has_sysctl(FIX_EVIDENCE) is True
        applies = False if has_fix_sysctl else (status.applies if status is not None else None)
        if status is not None:
            ev["sack_panic_fixed"] = None if applies is None else not applies
            ev["sack_panic_status"] = status.reason
        if has_fix_sysctl:
            ev["sack_panic_fixed"] = True
            ev["sack_panic_evidence"] = f"host has {FIX_EVIDENCE}"
        parts = [
            f"tcp_sack=0 ({sack.where()}): this host neither offers nor accepts SACK, so no connection uses "
            "selective acknowledgements in either direction. When several segments of one window are lost the "
            "sender learns of one hole per round trip (NewReno) or waits for a retransmission timeout, and RACK "
            "loss detection and tail loss probes, which Linux runs only on SACK connections, are off: a lost last "
            "segment waits for the RTO (200 ms at least). Throughput and tail latency collapse on lossy or long paths."
        ]
        if applies is True:
            sev = Severity.info
            fixed_in = status.fixed_in if status is not None else None
            parts.append(
                f"Kernel {f.snapshot.kernel.release} predates the fixes for 'SACK Panic' (CVE-2019-11477, remote "
                f"kernel panic) and 'SACK Slowness' (CVE-2019-11478) ({status.reason if status else 'version table'}), "
                "and tcp_sack=0 is the documented workaround (NFLX-2019-001): keep it until the kernel is upgraded"
                + (f" (fixed in {fixed_in})" if fixed_in else "")
                + ", then turn SACK back on."
            )
            ctx.append("kernel without the SACK Panic fixes: tcp_sack=0 is a valid stop-gap, severity info")
        elif applies is None:
            sev = Severity.low
            parts.append(
                "If it was set as the June 2019 'SACK Panic' workaround (CVE-2019-11477), check whether this "
                f"kernel carries the fixes ({status.reason if status else 'kernel unknown'}); distribution kernels "
                "received them in June 2019, and net.ipv4.tcp_min_snd_mss exists on kernels that have them."
            )
            ctx.append("unknown whether this kernel has the SACK Panic fixes: severity low")
        else:
            sev = Severity.medium
            why = f"host has {FIX_EVIDENCE}" if has_fix_sysctl else (status.reason if status else "")
            parts.append(
                "The usual reason, the June 2019 'SACK Panic' workaround (CVE-2019-11477/11478, NFLX-2019-001), "
                f"does not apply: kernel {f.snapshot.kernel.release} carries the fixes ({why}); the setting "
                "costs loss recovery and protects nothing."
            )
        if f.kind == "host":
            for name in ("TcpExt.TCPRenoRecovery", "TcpExt.TCPRenoRecoveryFail", "TcpExt.TCPSackRecovery"):
                c = f.counter_evidence(name)
                if c is not None:
                    ev[name.split(".", 1)[1]] = c
            reno = ev.get("TCPRenoRecovery")
            if reno and reno["total_since_boot"]:
                fail = ev.get("TCPRenoRecoveryFail", {}).get("total_since_boot")
                parts.append(
                    f"TcpExt.TCPRenoRecovery is {reno['total_since_boot']} since boot: that many loss recoveries ran "
                    "without SACK" + (f", {fail} of them ended in a timeout (TCPRenoRecoveryFail)." if fail else ".")
                )
        else:
            ctx.append("config target: severity from the setting and the target kernel alone")
        return self.finding(
            f, severity=sev, keys=[SACK], evidence=ev, context=ctx, fix={SACK: "1"}, explanation=" ".join(parts)
        )

    def _dsack(self, f: Facts, sack: Value):
        dsack = f.value(DSACK)
        if dsack.int != 0 or (f.kind == "config" and dsack.origin != "config"):
            return None
        return self.finding(
            f,
            severity=Severity.info,
            keys=[DSACK],
            fix={DSACK: "1"},
            evidence={"tcp_sack": sack.raw, "tcp_dsack": 0, "tcp_dsack_origin": dsack.origin},
            explanation=(
                f"tcp_dsack=0 ({dsack.where()}): SACK is on but this host never sends duplicate-SACKs (RFC 2883), so "
                "a peer that retransmitted a segment needlessly (reordering, a delayed ACK, a spurious timeout) never "
                "learns it: it keeps the congestion-window cut it could have undone, and RACK cannot widen its "
                "reordering window. The cost is throughput after reordering; nothing fails."
            ),
        )
