"""RawCapture -> Snapshot. Parses; never judges."""

from __future__ import annotations

from .. import __version__
from ..snapshot import (
    ConntrackInfo,
    Counters,
    Distro,
    Environment,
    KernelInfo,
    Snapshot,
    SocketTable,
)
from .parsers import (
    ParseError,
    nat_redirect_rules,
    parse_conntrack_stat,
    parse_counter_pairs,
    parse_os_release,
    parse_proc_net_tcp,
    parse_sockstat,
    parse_ss_detail,
    parse_ss_table,
    parse_uptime,
)
from .raw import RawCapture
from ..sanitize import clean_text

# DMI strings that name a cloud (sys_vendor / product_name / bios_vendor / chassis_asset_tag / board_vendor).
_CLOUD_MARKERS = (
    ("Amazon EC2", "aws"),
    ("Google Compute Engine", "gcp"),
    ("Google", "gcp"),
    ("7783-7084-3265-9085-8269-3286-77", "azure"),  # Azure's chassis asset tag
    ("Microsoft Corporation", "azure"),
    ("Alibaba Cloud", "alibaba"),
    ("DigitalOcean", "digitalocean"),
    ("Hetzner", "hetzner"),
    ("OpenStack", "openstack"),
    ("Oracle Cloud", "oci"),
)


def _kernel_version(release: str) -> str | None:
    try:
        from ..kernel.release import parse_release

        return parse_release(release).upstream
    except Exception:  # noqa: BLE001 - an unparsable release is recorded as null, not fatal
        return None


def _environment(raw: RawCapture) -> Environment:
    env = Environment()
    items = raw.items
    dmi = {k: items[k].strip() for k in items if k.startswith("dmi.")}
    for marker, cloud in _CLOUD_MARKERS:
        hit = next((k for k, v in dmi.items() if marker in v), None)
        if hit:
            if cloud == "azure" and marker == "Microsoft Corporation" and "Virtual Machine" not in dmi.get(
                "dmi.product_name", ""
            ):
                continue
            env.cloud = cloud
            env.hints.append(f"cloud={cloud} from {hit}={clean_text(dmi[hit])!r}")
            break
    cgroup = items.get("cgroup", "")
    if "marker.dockerenv" in items:
        env.container = "docker"
        env.hints.append("container=docker from /.dockerenv")
    elif "marker.containerenv" in items:
        env.container = "podman"
        env.hints.append("container=podman from /run/.containerenv")
    elif "kubepods" in cgroup:
        env.container = "kubernetes"
        env.hints.append("container=kubernetes from /proc/1/cgroup")
    elif any(w in cgroup for w in ("/docker/", "/lxc/", "libpod")):
        env.container = "docker" if "docker" in cgroup else "lxc" if "lxc" in cgroup else "podman"
        env.hints.append(f"container={env.container} from /proc/1/cgroup")
    if "iptables-nat" in items:
        env.nat_rules = nat_redirect_rules(items["iptables-nat"])
        if env.nat_rules:
            env.hints.append(f"{len(env.nat_rules)} NAT REDIRECT/DNAT rule(s) from iptables-save -t nat")
    k8s_reasons = []
    if "marker.k8s-serviceaccount" in items:
        k8s_reasons.append("a Kubernetes service-account mount")
    if "env.kubernetes" in items:
        k8s_reasons.append("KUBERNETES_SERVICE_HOST")
    if "iptables-nat" in items and "KUBE-SERVICES" in items["iptables-nat"]:
        k8s_reasons.append("kube-proxy KUBE-SERVICES chain")
    if env.container == "kubernetes":
        k8s_reasons.append("kubepods cgroup")
    env.kubernetes = bool(k8s_reasons)
    if k8s_reasons:
        env.hints.append("kubernetes from " + ", ".join(k8s_reasons))
    return env


def build_snapshot(raw: RawCapture) -> Snapshot:
    items = raw.items

    def parse(name: str, fn, *args):  # type: ignore[no-untyped-def]
        if name not in items:
            return None
        try:
            return fn(items[name], name, *args)
        except ParseError as exc:
            raw.gap(name, "error", str(exc))
            return None

    release = clean_text(items.get("osrelease", "").strip(), 200) or "unknown"
    hostname = clean_text(items.get("hostname", "").strip(), 253) or "unknown"
    distro = parse("os-release", parse_os_release) or Distro()
    uptime = parse("uptime", parse_uptime)

    counters = Counters(
        netstat=parse("netstat", parse_counter_pairs) or {},
        snmp=parse("snmp", parse_counter_pairs) or {},
        sockstat={**(parse("sockstat", parse_sockstat) or {}), **(parse("sockstat6", parse_sockstat) or {})},
    )

    sysctls = raw.sysctls
    ct = ConntrackInfo()
    if "net.netfilter.nf_conntrack_max" in sysctls or "nf_conntrack_stat" in items:
        ct.present = True
        for attr, key in (("count", "net.netfilter.nf_conntrack_count"), ("max", "net.netfilter.nf_conntrack_max")):
            v = sysctls.get(key, "")
            if v.isdigit():
                setattr(ct, attr, int(v))
        ct.stats_per_cpu = parse("nf_conntrack_stat", parse_conntrack_stat) or []

    sockets = SocketTable()
    rows = None
    source = "none"
    if "ss" in items:
        rows = parse("ss", parse_ss_table)
        source = "ss"
    if rows is None and ("proc-net-tcp" in items or "proc-net-tcp6" in items):
        rows = (parse("proc-net-tcp", parse_proc_net_tcp) or []) + (parse("proc-net-tcp6", parse_proc_net_tcp) or [])
        source = "proc"
    if rows is not None:
        detail_mode = "none"
        if "ss-detail" in items:
            established = sum(1 for r in rows if r.state == "ESTAB")
            detail = parse("ss-detail", parse_ss_detail, raw.detail_cap)
            if detail is not None:
                detail_mode = "ss-i" if len(detail) >= established else "ss-i-partial"
                if detail:
                    rows = [
                        r._replace(lastsnd_ms=d[0], lastrcv_ms=d[1])
                        if r.state == "ESTAB" and (d := detail.get((r.local_addr, r.local_port,
                                                                    r.remote_addr, r.remote_port)))
                        else r
                        for r in rows
                    ]
        sockets = SocketTable.from_rows(rows, source=source, detail=detail_mode)

    return Snapshot(
        hostname=hostname,
        collected_at=raw.collected_at,
        source=raw.source,
        collector=f"tcpaudit {__version__}",
        kernel=KernelInfo(release=release, version=_kernel_version(release)),
        distro=distro,
        uptime_s=uptime,
        sysctls=sysctls,
        sysctl_roots=raw.sysctl_roots,
        conntrack=ct,
        counters=counters,
        sockets=sockets,
        environment=_environment(raw),
        gaps=raw.gaps,
    )
