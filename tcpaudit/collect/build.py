"""RawCapture -> Snapshot. Parses; never judges."""

from __future__ import annotations

from itertools import compress

from .. import __version__
from ..sanitize import clean_text
from ..snapshot import (
    U64_MAX,
    ConntrackInfo,
    Counters,
    Distro,
    Environment,
    KernelInfo,
    Snapshot,
    SocketTable,
)
from .parsers import (
    SS_COLUMNS,
    ParseError,
    nat_redirect_rules,
    parse_conntrack_stat,
    parse_counter_pairs,
    parse_os_release,
    parse_proc_net_tcp,
    parse_sockstat,
    parse_ss_columns,
    parse_ss_detail_fast,
    parse_uptime,
)
from .persisted import persisted_from_items
from .raw import RawCapture

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


def _kernel_info(release: str, items: dict) -> KernelInfo:
    """The release, and what the build says of its upstream stable release (/proc/version's `uname -v` part,
    Ubuntu's /proc/version_signature), so the kernel is judged as that point release (kernel/release.py)."""
    proc_version = clean_text(items.get("proc_version", "").strip(), 400) or None
    signature = clean_text(items.get("version_signature", "").strip(), 200) or None
    version = _kernel_version(release)
    try:
        from ..kernel.release import parse_host_release

        version = parse_host_release(release, proc_version, signature).upstream
    except Exception:  # noqa: BLE001 - unparsable: the release alone (or null) as before
        pass
    return KernelInfo(release=release, version=version, proc_version=proc_version, version_signature=signature)


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
            if (
                cloud == "azure"
                and marker == "Microsoft Corporation"
                and "Virtual Machine" not in dmi.get("dmi.product_name", "")
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
    persisted = persisted_from_items(raw)
    items = raw.items

    def parse(name: str, fn, *args):
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
            if v.isascii() and v.isdigit() and len(v) <= 20 and int(v) <= U64_MAX:  # not '²', nor 5000 digits
                setattr(ct, attr, int(v))
        ct.stats_per_cpu = parse("nf_conntrack_stat", parse_conntrack_stat) or []

    sockets = SocketTable()
    cols = None
    source = "none"
    if "sock_diag" in raw.parsed:  # the local collector's netlink dump: every column, idle times included
        sockets = SocketTable.from_columns(raw.parsed["sock_diag"], source="netlink", detail="netlink")
    elif "ss" in items:
        cols = raw.parsed["ss"] if "ss" in raw.parsed else parse("ss", parse_ss_columns)
        source = "ss"
    if cols is None and ("proc-net-tcp" in items or "proc-net-tcp6" in items):
        rows = (parse("proc-net-tcp", parse_proc_net_tcp) or []) + (parse("proc-net-tcp6", parse_proc_net_tcp) or [])
        if rows:
            cols = {c: list(v) for c, v in zip(SS_COLUMNS, zip(*rows, strict=False), strict=False)}
        else:
            cols = {c: [] for c in SS_COLUMNS}
        source = "proc"
    if cols is not None:
        # Column-wise all the way: at 10^5 sockets one object per socket costs seconds (benchmarks/sockets_bench.py).
        state = cols["state"]
        n = len(state)
        lastsnd: list[int | None] = [None] * n
        lastrcv: list[int | None] = [None] * n
        detail_mode = "none"
        if "ss-detail" in items:
            estab = list(compress(range(n), map("ESTAB".__eq__, state)))
            detail = (
                raw.parsed["ss-detail"]
                if "ss-detail" in raw.parsed
                else parse("ss-detail", parse_ss_detail_fast, raw.detail_cap)
            )
            if detail is not None:
                detail_mode = "ss-i" if len(detail) >= len(estab) else "ss-i-partial"
                if detail:
                    get = detail.get
                    la, lp, ra, rp = cols["local_addr"], cols["local_port"], cols["remote_addr"], cols["remote_port"]
                    for i in estab:
                        d = get((la[i], lp[i], ra[i], rp[i]))
                        if d is not None:
                            lastsnd[i], lastrcv[i] = d
        cols["lastsnd_ms"] = lastsnd
        cols["lastrcv_ms"] = lastrcv
        sockets = SocketTable.from_columns(cols, source=source, detail=detail_mode)

    return Snapshot(
        hostname=hostname,
        collected_at=raw.collected_at,
        source=raw.source,
        collector=f"tcpaudit {__version__}",
        kernel=_kernel_info(release, items),
        distro=distro,
        uptime_s=uptime,
        sysctls=sysctls,
        sysctl_roots=raw.sysctl_roots,
        conntrack=ct,
        counters=counters,
        sockets=sockets,
        environment=_environment(raw),
        gaps=raw.gaps,
        persisted=persisted,
    )
