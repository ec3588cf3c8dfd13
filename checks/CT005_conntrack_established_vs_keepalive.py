"""CT005: conntrack forgets idle established flows before the first TCP keepalive could refresh them."""

from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta, Value

CT_EST = "net.netfilter.nf_conntrack_tcp_timeout_established"
KA_TIME = "net.ipv4.tcp_keepalive_time"
KA_INTVL = "net.ipv4.tcp_keepalive_intvl"
KA_PROBES = "net.ipv4.tcp_keepalive_probes"

# Used only for config targets when the knowledge base has no default for the target's kernel:
#   nf_conntrack-sysctl.rst (stored mainline copy 2c55d703391a): nf_conntrack_tcp_timeout_established
#     "default 432000 (5 days)"
#   include/net/tcp.h (stored mainline copy 003e07a1e48e): TCP_KEEPALIVE_TIME (120*60*HZ), TCP_KEEPALIVE_PROBES 9,
#     TCP_KEEPALIVE_INTVL (75*HZ); ip-sysctl.rst: tcp_keepalive_time "Default: 2hours".
_DOCUMENTED = {CT_EST: 432000, KA_TIME: 7200, KA_INTVL: 75, KA_PROBES: 9}


def _int(f: Facts, name: str) -> tuple[int | None, str]:
    """The value and a description of where it came from; documented defaults only for config targets."""
    v: Value = f.value(name)
    if v.int is not None:
        return v.int, v.describe()
    if f.kind == "config" and v.origin in ("unknown", "default") and name in _DOCUMENTED:
        return _DOCUMENTED[name], f"{name}={_DOCUMENTED[name]} (documented kernel default)"
    return None, v.describe()


def _forwarding_reasons(f: Facts) -> list[str]:
    why = []
    fwd = f.value("net.ipv4.ip_forward")
    if fwd.int == 1:
        why.append(f"ip_forward=1 ({fwd.where()})")
    if f.snapshot.environment.nat_rules:
        why.append(f"{len(f.snapshot.environment.nat_rules)} iptables NAT rule(s)")
    if f.context.kubernetes:
        why.append("Kubernetes node (kube-proxy NATs service traffic)")
    return why


class ConntrackEstablishedVsKeepalive(Rule):
    meta = RuleMeta(
        id="CT005",
        title="Conntrack established timeout <= tcp_keepalive_time: idle flows are forgotten before the first "
        "keepalive",
        severity=Severity.medium,
        keys=[CT_EST, KA_TIME],
        summary=(
            "nf_conntrack_tcp_timeout_established is how long conntrack keeps an idle established TCP flow. If it "
            "is not longer than tcp_keepalive_time, an idle connection loses its conntrack entry before the first "
            "keepalive probe could refresh it. On a box that NATs or forwards, the next packet of that connection "
            "finds no entry: it is INVALID and dropped, or picked up as a new flow with a different NAT mapping, "
            "and the peer answers with a RST."
        ),
        mechanism=[
            "Every packet of a tracked flow resets its timer to nf_conntrack_tcp_timeout_established (default "
            "432000 s, 5 days, per nf_conntrack-sysctl.rst); an idle flow's entry is deleted when it runs out.",
            "TCP keepalive (sockets with SO_KEEPALIVE) sends its first probe after tcp_keepalive_time seconds of "
            "idleness (default 7200 s), then every tcp_keepalive_intvl seconds.",
            "If the conntrack timeout is <= tcp_keepalive_time, the entry is gone by the time the first probe is "
            "sent, so keepalive cannot protect the flow; sockets without keepalive are lost even sooner in effect.",
            "When either side sends again, there is no entry: with nf_conntrack_tcp_loose=0 or rules dropping "
            "INVALID the packet is dropped (the sender retransmits until tcp_retries2); otherwise conntrack "
            "adopts it as a new flow, and SNAT/MASQUERADE may pick a different source port, or a reply-direction "
            "packet is not de-NATed, so the peer sees an unknown 4-tuple and answers with a RST.",
        ],
        when_it_matters=(
            "NAT gateways, routers, Kubernetes and Docker hosts (ip_forward=1, MASQUERADE/DNAT) carrying long-lived "
            "connections that may sit idle: database pools, message brokers, SSH. On a plain host it only affects "
            "stateful firewall rules for its own connections."
        ),
        remediation=(
            "Keep nf_conntrack_tcp_timeout_established above tcp_keepalive_time + tcp_keepalive_intvl * "
            "tcp_keepalive_probes (OpenWrt ships 7440 for the 7200 s default keepalive), or lower "
            "tcp_keepalive_time (and enable SO_KEEPALIVE in the applications) well below the conntrack timeout."
        ),
        references=[
            Reference(
                title="nf_conntrack-sysctl.rst: nf_conntrack_tcp_timeout_established (default 432000 s)",
                url="https://www.kernel.org/doc/Documentation/networking/nf_conntrack-sysctl.rst",
            ),
            Reference(
                title="ip-sysctl.rst: tcp_keepalive_time (2 hours), tcp_keepalive_intvl, tcp_keepalive_probes",
                url="https://www.kernel.org/doc/Documentation/networking/ip-sysctl.rst",
            ),
            Reference(
                title="OpenWrt sysctl-nf-conntrack.conf: nf_conntrack_tcp_timeout_established=7440",
                url="https://github.com/openwrt/openwrt/blob/main/package/kernel/linux/files/sysctl-nf-conntrack.conf",
            ),
            Reference(
                title="Kubernetes blog: kube-proxy subtleties, debugging an intermittent connection reset",
                url="https://kubernetes.io/blog/2019/03/29/kube-proxy-subtleties-debugging-an-intermittent-connection-reset/",
            ),
        ],
    )

    def check(self, f: Facts):
        ct_v = f.value(CT_EST)
        if f.kind == "host" and ct_v.origin == "absent":
            return self.na("nf_conntrack is not loaded (no nf_conntrack_tcp_timeout_established)")
        ct, ct_desc = _int(f, CT_EST)
        ka, ka_desc = _int(f, KA_TIME)
        if ct is None or ka is None:
            return self.unread(f, "conntrack established timeout or tcp_keepalive_time unknown")
        if ct > ka:
            return None
        intvl, _ = _int(f, KA_INTVL)
        probes, _ = _int(f, KA_PROBES)
        fwd = _forwarding_reasons(f)
        ev: dict = {
            "nf_conntrack_tcp_timeout_established": ct,
            "tcp_keepalive_time": ka,
            "tcp_keepalive_intvl": intvl,
            "tcp_keepalive_probes": probes,
            "established_origin": ct_desc,
            "keepalive_origin": ka_desc,
            "forwarding": fwd,
        }
        if fwd:
            sev = Severity.medium
            ctx = ["this box forwards or NATs: " + "; ".join(fwd)]
            effect = (
                "this box NATs/forwards (" + "; ".join(fwd) + "), so the next packet of such a connection "
                "finds no entry: it is dropped as INVALID, or adopted as a new flow with a different NAT "
                "mapping and answered by the peer with a RST."
            )
        else:
            sev = Severity.low
            ctx = [
                "nothing shows this box forwards or NATs (ip_forward, NAT rules, Kubernetes): only its own "
                "stateful firewall rules are affected"
            ]
            effect = (
                "on this box that only matters to its own stateful firewall rules (a rule dropping INVALID "
                "drops the next packet); on a NAT/forwarding box it breaks the connection."
            )
        margin = ka + (intvl or 0) * (probes or 0) + 60
        ev["suggested_minimum"] = margin
        return self.finding(
            f,
            severity=sev,
            evidence=ev,
            context=ctx,
            fix={CT_EST: str(margin)},
            explanation=(
                f"Conntrack forgets an idle established flow after {ct} s ({ct_desc}), but the first keepalive "
                f"probe only goes out after {ka} s of idleness ({ka_desc}), so keepalive can never refresh the "
                f"entry in time and every connection idle for {ct} s loses it; {effect}"
            ),
        )
