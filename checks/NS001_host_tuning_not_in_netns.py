"""NS001: the host tunes a per-namespace sysctl, and a container's namespace runs with what a new namespace gets."""

from __future__ import annotations

from typing import Any

from tcpaudit.kernel.db import KernelDBError
from tcpaudit.kernel.netns import NetnsDB, classify, load_netns_db
from tcpaudit.model import Severity
from tcpaudit.rules.base import CheckOutput, Facts, Reference, Rule, RuleMeta

# Keys whose value in a pod's own namespace governs the pod's own sockets. Left out on purpose:
# net.netfilter.* (the conntrack entries that matter for pod traffic - NAT, kube-proxy - live in the
# host's table, which keeps the host's values) and net.ipv4.ip_forward (a pod does not forward; a
# namespace without forwarding is intended, not lost tuning).
KEYS = [
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_retries2",
    "net.ipv4.tcp_syn_retries",
    "net.ipv4.tcp_syn_linear_timeouts",
    "net.ipv4.tcp_synack_retries",
    "net.ipv4.tcp_orphan_retries",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.tcp_tw_reuse",
    "net.ipv4.tcp_tw_reuse_delay",
    "net.ipv4.tcp_timestamps",
    "net.ipv4.tcp_sack",
    "net.ipv4.tcp_dsack",
    "net.ipv4.tcp_rfc1337",
    "net.ipv4.tcp_no_ssthresh_metrics_save",
    "net.ipv4.tcp_max_tw_buckets",
    "net.ipv4.tcp_max_syn_backlog",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.core.somaxconn",
    "net.ipv4.tcp_rmem",
    "net.ipv4.tcp_wmem",
]
# What the KB may say a new namespace gets for the keys above that can leave host tuning behind.
_LOSES_TUNING = {"default", "derived", "devconf"}


def _rules_reading(key: str) -> list[str]:
    """Ids of the other rules that judge `key`: the findings a namespace's value can trigger there."""
    from tcpaudit.rules.engine import catalogue  # loaded by then; imported late to keep checks below the engine

    return sorted(r.meta.id for r in catalogue() if key in r.meta.keys and r.meta.id != "NS001")


class HostTuningNotInNetns(Rule):
    meta = RuleMeta(
        id="NS001",
        title="Host sysctl tuning does not reach this network namespace",
        severity=Severity.medium,
        keys=KEYS,
        applies_to=["host"],
        summary=(
            "Most net.* sysctls are per network namespace. A container's or pod's namespace does not inherit the "
            "node's tuning: for most TCP keys it starts with the kernel's compiled default (tcp_keepalive_time "
            "7200, somaxconn 4096, the 32768-60999 port range), so a node tuned for its load balancer or its "
            "connection rate runs its pods untuned. This namespace runs exactly the value the kernel gives a new "
            "namespace while the host runs another."
        ),
        mechanism=[
            "Creating a network namespace runs every subsystem's pernet init: tcp_sk_init() "
            "(net/ipv4/tcp_ipv4.c) sets keepalive, retries, fin_timeout, syncookies, tw_reuse, timestamps, sack "
            "to their compiled defaults; inet_init_net() (net/ipv4/af_inet.c) sets the port range; "
            "net_defaults_init_net() sets somaxconn. Nothing copies the initial namespace's values for these.",
            "Some keys are different: tcp_rmem/tcp_wmem and the default congestion control are copied from the "
            "initial namespace at creation (4.15+), tcp_max_tw_buckets and tcp_max_syn_backlog follow the hash "
            "size chosen from the creator's tcp_child_ehash_entries (6.1+), net.ipv4.conf.* follow "
            "net.core.devconf_inherit_init_net, and host-wide keys (tcp_mem, nf_conntrack_max) have one value. "
            "kernel_db/netns.toml records which applies on which kernel, with sources.",
            "sysctl.conf, systemd-sysctl, tuned and cloud-init write /proc/sys in the namespace they run in: the "
            "host's. A pod gets per-namespace values only through its own securityContext.sysctls, a CNI tuning "
            "plugin or an init container.",
            "The application in the pod then behaves as on an untuned kernel: idle connections behind a NAT or "
            "load balancer are cut because the first keepalive comes after 7200 s, the accept queue is capped at "
            "the default somaxconn, ephemeral ports run out in the default range.",
        ],
        when_it_matters=(
            "Kubernetes nodes and container hosts where the node's sysctls were tuned for the workloads (keepalive "
            "below a cloud load balancer's idle timeout, larger port range, larger somaxconn) and the workloads run "
            "in their own network namespaces (not hostNetwork)."
        ),
        remediation=(
            "Set the keys in the namespace itself: pod securityContext.sysctls (the safe set: "
            "net.ipv4.ip_local_port_range, tcp_syncookies, ip_unprivileged_port_start, tcp_keepalive_* since "
            "Kubernetes 1.29 on 4.5+ kernels, tcp_fin_timeout, ...; others with the kubelet's "
            "--allowed-unsafe-sysctls), the CNI 'tuning' plugin, or the container runtime's --sysctl. Or set "
            "the option per socket (SO_KEEPALIVE with TCP_KEEPIDLE/TCP_KEEPINTVL, the listen() backlog)."
        ),
        references=[
            Reference(
                title="Kubernetes: using sysctls in a Kubernetes cluster (namespaced vs node-level sysctls)",
                url="https://kubernetes.io/docs/tasks/administer-cluster/sysctl-cluster/",
            ),
            Reference(
                title="CNI tuning plugin: per-interface and per-namespace sysctls",
                url="https://www.cni.dev/plugins/current/meta/tuning/",
            ),
            Reference(
                title="net/ipv4/tcp_ipv4.c: tcp_sk_init() (per-namespace TCP defaults)",
                url="https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git/tree/net/ipv4/tcp_ipv4.c",
            ),
            Reference(
                title="admin-guide/sysctl/net.rst: devconf_inherit_init_net",
                url="https://www.kernel.org/doc/html/latest/admin-guide/sysctl/net.html",
            ),
        ],
    )

    def check(self, f: Facts) -> CheckOutput:
        ns = f.snapshot.netns
        if ns is None or ns.is_host:
            return self.na("not a network namespace other than the host's (only --all-netns namespaces)")
        init = f.snapshot.init_net_sysctls
        if init is None:
            return self.unknown("the host namespace's values of the per-namespace keys were not read")
        if f.release is None:
            return self.unknown(f"kernel release {f.snapshot.kernel.release!r} not understood")
        try:
            db: NetnsDB = load_netns_db()
        except KernelDBError as exc:
            return self.unknown(f"kernel_db/netns.toml did not load: {exc}")
        own = f.snapshot.sysctls
        lost: list[dict[str, Any]] = []
        own_values: list[dict[str, Any]] = []
        no_fact: list[str] = []
        judged = 0
        for key in KEYS:
            host_value, ns_value = init.get(key), own.get(key)
            if host_value is None or ns_value is None:
                continue  # not read on one side, or not on this kernel: nothing to compare
            exp = db.expect(key, f.release, init, own)
            if exp is None:
                no_fact.append(key)
                continue
            if exp.kind == "copy_init_net":
                # copied at creation: the host's tuning reached it, unless the namespace set its own value or the
                # host changed after the namespace was created
                judged += 1
                if " ".join(ns_value.split()) != " ".join(host_value.split()):
                    own_values.append(
                        {
                            "key": key,
                            "host": " ".join(host_value.split()),
                            "namespace": " ".join(ns_value.split()),
                            "kb": exp.fact.describe() + " (set in the namespace, or changed on the host later)",
                        }
                    )
                continue
            if exp.kind not in _LOSES_TUNING:
                continue
            if exp.value is None:
                no_fact.append(key)
                continue
            judged += 1
            verdict = classify(host_value, ns_value, exp.value)
            row: dict[str, Any] = {
                "key": key,
                "host": " ".join(host_value.split()),
                "namespace": " ".join(ns_value.split()),
                "new_netns_gets": exp.value,
                "kb": exp.fact.describe(),
            }
            if verdict == "not_inherited":
                src = exp.fact.source
                row["kb_source"] = " @ ".join(x for x in (src.file, src.commit or src.tag or src.url) if x)
                row["kb_confidence"] = exp.fact.confidence
                if exp.reason:
                    row["kb_reason"] = exp.reason
                row["rules_reading_it"] = _rules_reading(key)
                lost.append(row)
            elif verdict == "own_value":
                own_values.append(row)
        if not lost:
            if not judged and no_fact:
                return self.unknown(
                    f"kernel_db/netns.toml has no usable fact for {', '.join(no_fact[:4])}"
                    f"{' ...' if len(no_fact) > 4 else ''} on kernel {f.snapshot.kernel.release}"
                )
            if not judged:
                return self.unknown("no per-namespace key was read both in the host and in this namespace")
            return None
        shown = ", ".join(f"{r['key'].rsplit('.', 1)[1]} {r['namespace']} (host {r['host']})" for r in lost[:5])
        more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
        related = sorted({rid for r in lost for rid in r["rules_reading_it"]})
        evidence: dict[str, Any] = {
            "namespace": ns.name,
            "inode": ns.inode,
            "pod": ns.pod,
            "kernel": f.snapshot.kernel.release,
            "not_inherited": lost,
            "own_values": own_values,
        }
        if no_fact:
            evidence["no_kb_fact"] = no_fact
        return self.finding(
            f,
            evidence=evidence,
            keys=[r["key"] for r in lost],
            explanation=(
                f"Namespace {ns.name} runs {shown}{more}: exactly what this kernel gives a new network namespace "
                "(kernel_db/netns.toml), not the host's tuning, which stops at the host's own namespace. "
                "Sockets in this namespace behave as on an untuned kernel"
                + (f"; the rules that judge these keys here: {', '.join(related)}." if related else ".")
                + (f" {len(own_values)} key(s) are set in the namespace itself (own values)." if own_values else "")
            ),
        )
