"""TCP004: tcp_fin_timeout lowered to shorten TIME-WAIT, which it does not touch."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, RuleMeta, Value, ValueRule

# include/net/tcp.h (stored mainline copy 003e07a1e48e): "#define TCP_TIMEWAIT_LEN (60*HZ)" and
# "#define TCP_FIN_TIMEOUT TCP_TIMEWAIT_LEN". Used only when the knowledge base has no default.
TCP_TIMEWAIT_LEN_S = 60
TCP_FIN_TIMEOUT_S = TCP_TIMEWAIT_LEN_S


def _default(f: Facts, name: str, documented: int) -> tuple[int, str]:
    if f.kdb is not None and f.release is not None:
        fact = f.kdb.sysctl(name)
        if fact is not None:
            raw = fact.default_in(f.release)
            if raw is not None and str(raw).strip().isdigit():
                return int(raw), "kernel knowledge base"
    return documented, "include/net/tcp.h TCP_FIN_TIMEOUT"


class FinTimeoutNotTimeWait(ValueRule):
    key = "net.ipv4.tcp_fin_timeout"
    meta = RuleMeta(
        id="TCP004",
        title="tcp_fin_timeout was lowered, but it does not shorten TIME-WAIT (ineffective tuning)",
        severity=Severity.info,
        keys=["net.ipv4.tcp_fin_timeout"],
        summary=(
            "tcp_fin_timeout is often lowered in the belief that it shortens TIME-WAIT and frees ports sooner. It "
            "only bounds how long an orphaned connection (already closed by the application) waits in FIN-WAIT-2 "
            "for the peer's FIN. TIME-WAIT is a compile-time constant of 60 s (TCP_TIMEWAIT_LEN), so the port "
            "pressure the change was meant to relieve is untouched."
        ),
        mechanism=[
            "After close() the active closer sends FIN and enters FIN-WAIT-1, then FIN-WAIT-2 once the FIN is "
            "acknowledged; it waits there for the peer's FIN.",
            "If the application no longer holds the socket (orphan), the kernel gives up after tcp_fin_timeout "
            "seconds (ip-sysctl.rst: 'The length of time an orphaned ... connection will remain in the FIN_WAIT_2 "
            "state before it is aborted'). Sockets still held by the application are not affected at all.",
            "When the peer's FIN arrives the socket enters TIME-WAIT for TCP_TIMEWAIT_LEN = 60*HZ (include/net/tcp.h), "
            "independent of any sysctl: the 4-tuple stays locked for 60 s whatever tcp_fin_timeout says.",
            "So a lowered tcp_fin_timeout leaves TIME-WAIT counts, EADDRNOTAVAIL on busy clients and TIME-WAIT "
            "pressure on servers exactly as they were; the real levers are connection reuse (keep-alive/pooling), "
            "tcp_tw_reuse for outgoing connections (needs timestamps), a wider ip_local_port_range, or letting the "
            "client close first.",
        ],
        when_it_matters=(
            "Whenever the setting was made to fight TIME-WAIT or port exhaustion: the problem it was meant to fix is "
            "still there. The lower value itself is mostly harmless (it only cuts off peers that are slow to close "
            "a connection this host has already abandoned)."
        ),
        remediation=(
            "Drop the setting (or leave it: it is harmless) and address TIME-WAIT pressure with connection reuse, "
            "tcp_tw_reuse=1 for outgoing connections with tcp_timestamps=1, or a wider ip_local_port_range. Do not "
            "use tcp_tw_recycle (removed in 4.12) and do not lower tcp_max_tw_buckets (see TCP005)."
        ),
        references=[
            Reference(
                title="include/net/tcp.h: #define TCP_TIMEWAIT_LEN (60*HZ), TCP_FIN_TIMEOUT = TCP_TIMEWAIT_LEN "
                "(stored mainline copy 003e07a1e48e)",
                url="https://github.com/torvalds/linux/blob/master/include/net/tcp.h",
            ),
            Reference(
                title="ip-sysctl.rst: tcp_fin_timeout (orphaned FIN_WAIT_2 only, default 60 s)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="Vincent Bernat: Coping with the TCP TIME-WAIT state on busy Linux servers",
                url="https://vincent.bernat.ch/en/blog/2014-tcp-time-wait-state-linux",
            ),
        ],
    )

    def judge(self, f: Facts, v: Value):
        n = v.int
        if n is None:
            return self.na(f"{self.key}={v.raw!r} is not an integer")
        default, default_source = _default(f, self.key, TCP_FIN_TIMEOUT_S)
        if n >= default:
            return None
        ev: dict = {
            "tcp_fin_timeout": n,
            "tcp_fin_timeout_origin": v.origin,
            "kernel_default": default,
            "kernel_default_source": default_source,
            "time_wait_length_s": TCP_TIMEWAIT_LEN_S,
        }
        observed = ""
        if f.kind == "host":
            tw = f.snapshot.counters.get("TCP.tw")
            fw2 = f.snapshot.sockets.state_counts.get("FIN-WAIT-2")
            if tw is not None:
                ev["time_wait_sockets"] = tw
            if fw2 is not None:
                ev["fin_wait_2_sockets"] = fw2
            if tw:
                observed = f" The {tw} TIME-WAIT sockets on this host each still live the full {TCP_TIMEWAIT_LEN_S} s."
        where = v.describe()
        return self.finding(
            f,
            severity=Severity.info,
            evidence=ev,
            context=["severity info: the setting is ineffective for TIME-WAIT, not harmful"],
            fix={self.key: str(default)},
            explanation=(
                f"{where} is below the kernel default of {default} s, but it only limits how long an orphaned "
                f"connection waits in FIN-WAIT-2 for the peer's FIN. TIME-WAIT is fixed at {TCP_TIMEWAIT_LEN_S} s "
                "(TCP_TIMEWAIT_LEN in include/net/tcp.h), so if this was meant to free ports or shrink the TIME-WAIT "
                f"count sooner, it does nothing.{observed}"
            ),
        )
