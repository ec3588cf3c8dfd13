"""TCP009: tcp_syn_retries / tcp_synack_retries so low that one lost packet fails the connection."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

SYN = "net.ipv4.tcp_syn_retries"
SYNACK = "net.ipv4.tcp_synack_retries"
LOW = 2  # <= 2 retries: the whole handshake budget is under ~7 s
# include/net/tcp.h (stored mainline copy 003e07a1e48e): TCP_TIMEOUT_INIT = 1*HZ (initial RTO), doubled on
# every retransmission; TCP_SYN_RETRIES 6, TCP_SYNACK_RETRIES 5 (ip-sysctl.rst: 6 -> 127 s, 5 -> 63 s).
_INIT_RTO_S = 1
_DOCUMENTED = {SYN: 6, SYNACK: 5}


def give_up_after(retries: int) -> int:
    """Seconds until the handshake is abandoned: the initial timeout plus one doubled timeout per retry."""
    return sum(_INIT_RTO_S << k for k in range(retries + 1))


def _default(f: Facts, name: str) -> int:
    if f.kdb is not None and f.release is not None:
        fact = f.kdb.sysctl(name)
        raw = fact.default_in(f.release) if fact is not None else None
        if raw is not None and str(raw).strip().isdigit():
            return int(raw)
    return _DOCUMENTED[name]


def _judged(f: Facts, v: Value) -> int | None:
    if f.kind == "config" and v.origin != "config":
        return None
    return v.int


class SynRetriesLow(Rule):
    meta = RuleMeta(
        id="TCP009",
        title="tcp_syn_retries / tcp_synack_retries very low: a single lost handshake packet fails the connection",
        severity=Severity.medium,
        keys=[SYN, SYNACK],
        summary=(
            "tcp_syn_retries is how often connect() retransmits its SYN, tcp_synack_retries how often a server "
            "retransmits its SYN-ACK. Each retransmission waits twice as long as the previous one, starting at "
            "1 s, so 1 retry means connect() gives up after 3 s and 2 retries after 7 s. Set that low, one or two "
            "lost packets, a brief SNAT-port or accept-queue shortage, or a slow peer turn into connection "
            "failures that look random."
        ),
        mechanism=[
            "connect() sends a SYN and arms a 1 s timer (TCP_TIMEOUT_INIT); each unanswered timeout retransmits "
            "and doubles the timer, and after tcp_syn_retries retransmissions the attempt fails with ETIMEDOUT "
            "(ip-sysctl.rst: the default of 6 gives up after 127 s).",
            "With tcp_syn_retries=1 the timeline is SYN at 0 s, retry at 1 s, failure at 3 s; with 2: 0, 1, 3 s, "
            "failure at 7 s. Losing the SYN and its single retransmission (packet loss, a full SYN/accept queue on "
            "the server, a NAT gateway out of ports that drops SYNs) is enough.",
            "On the server, tcp_synack_retries bounds how long a half-open request waits for the client's ACK "
            "(default 5: 63 s). If the client's ACK is lost and the request expires first, the client, which "
            "already considers itself connected, has its first data answered with a RST, or waits forever for a "
            "server-speaks-first greeting (SMTP, MySQL, SSH).",
            "The settings are usually made to 'fail fast'; per-socket connect timeouts in the application do that "
            "without making the kernel give up on packet loss it would otherwise recover from.",
        ],
        when_it_matters=(
            "Any host on lossy or congested paths, behind SNAT gateways whose port allocation can stall, or talking "
            "to servers that drop SYNs during bursts. Seen in tuning files (clay-wangzhi, HXHGTS: both set to 1) "
            "and Helm init containers that run 'sysctl -w net.ipv4.tcp_syn_retries=1'."
        ),
        remediation=(
            "Restore the defaults (tcp_syn_retries=6, tcp_synack_retries=5) or at least 3 to 4, and set connect "
            "timeouts in the application (or TCP_SYNCNT per socket) where a fast failure is wanted."
        ),
        references=[
            Reference(
                title="ip-sysctl.rst: tcp_syn_retries (6 -> 127 s), tcp_synack_retries (5 -> 63 s)",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="include/net/tcp.h: TCP_TIMEOUT_INIT (1 s), TCP_SYN_RETRIES, TCP_SYNACK_RETRIES",
                url="https://github.com/torvalds/linux/blob/master/include/net/tcp.h",
            ),
            Reference(
                title="RFC 6298: Computing TCP's Retransmission Timer (1 s initial RTO)",
                url="https://www.rfc-editor.org/rfc/rfc6298",
            ),
        ],
    )

    def check(self, f: Facts):
        syn_v, synack_v = f.value(SYN), f.value(SYNACK)
        syn, synack = _judged(f, syn_v), _judged(f, synack_v)
        if f.kind == "host" and syn is None and synack is None:
            return self.na("tcp_syn_retries and tcp_synack_retries unknown")
        syn_low = syn is not None and syn <= LOW
        synack_low = synack is not None and synack <= LOW
        if not (syn_low or synack_low):
            return None
        ev: dict = {
            "tcp_syn_retries": syn_v.raw,
            "tcp_syn_retries_origin": syn_v.origin,
            "tcp_synack_retries": synack_v.raw,
            "tcp_synack_retries_origin": synack_v.origin,
        }
        parts: list[str] = []
        fix: dict[str, str] = {}
        keys: list[str] = []
        if syn_low and syn is not None:
            t = give_up_after(syn)
            ev["connect_gives_up_after_s"] = t
            ev["connect_gives_up_after_s_default"] = give_up_after(_default(f, SYN))
            keys.append(SYN)
            fix[SYN] = str(_default(f, SYN))
            parts.append(
                f"tcp_syn_retries={syn} ({syn_v.where()}): connect() sends the SYN, retransmits it {syn} "
                f"time(s) at 1 s, 2 s ... intervals and fails with ETIMEDOUT after {t} s (default: "
                f"{ev['connect_gives_up_after_s_default']} s). Losing {syn + 1} packet(s) in a row, or a server or "
                "NAT gateway that drops SYNs for a few seconds, fails the connection."
            )
        if synack_low:
            t = give_up_after(synack)  # type: ignore[arg-type]
            ev["half_open_request_expires_after_s"] = t
            keys.append(SYNACK)
            fix[SYNACK] = str(_default(f, SYNACK))
            parts.append(
                f"tcp_synack_retries={synack} ({synack_v.where()}): a half-open request is dropped after "
                f"{t} s; if the client's final ACK was lost by then, the client (already 'connected') gets a RST "
                "on its first data, or waits forever for a server-speaks-first greeting."
            )
        sev = Severity.medium if syn_low else Severity.low
        ctx = [f"'very low' means <= {LOW} retries (handshake budget <= {give_up_after(LOW)} s)"]
        if not syn_low:
            ctx.append("only the server side is short: clients still retransmit their SYN, so severity low")
        if f.context.nat_idle_timeout is not None or f.context.kubernetes:
            ctx.append(
                "behind NAT/Kubernetes a SYN can be dropped while a SNAT port or conntrack entry is "
                "unavailable, which makes a short retry budget fail more often"
            )
        return self.finding(f, severity=sev, keys=keys, evidence=ev, context=ctx, fix=fix, explanation=" ".join(parts))
