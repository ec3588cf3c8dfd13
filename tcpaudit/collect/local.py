"""The local collector: reads /proc and /sys directly, runs `ss` when present.

Works unprivileged: whatever it cannot read becomes a CollectionGap in the
Snapshot, never an exception and never a silent omission. It only reads.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import shutil
import subprocess
import time

from ..snapshot import CounterSample, Counters, GapReason, Snapshot, Source
from .build import build_snapshot
from .parsers import fold_value, parse_conntrack_stat, parse_counter_pairs, parse_sockstat, ParseError
from .raw import SYSCTL_ROOTS, RawCapture

DEFAULT_DETAIL_CAP = 50_000
COMMAND_TIMEOUT_S = 20.0

FILES = {
    "hostname": "/proc/sys/kernel/hostname",
    "osrelease": "/proc/sys/kernel/osrelease",
    "uptime": "/proc/uptime",
    "netstat": "/proc/net/netstat",
    "snmp": "/proc/net/snmp",
    "sockstat": "/proc/net/sockstat",
    "sockstat6": "/proc/net/sockstat6",
    "nf_conntrack_stat": "/proc/net/stat/nf_conntrack",
    "dmi.sys_vendor": "/sys/class/dmi/id/sys_vendor",
    "dmi.product_name": "/sys/class/dmi/id/product_name",
    "dmi.bios_vendor": "/sys/class/dmi/id/bios_vendor",
    "dmi.chassis_asset_tag": "/sys/class/dmi/id/chassis_asset_tag",
    "dmi.board_vendor": "/sys/class/dmi/id/board_vendor",
    "cgroup": "/proc/1/cgroup",
}
MARKERS = {
    "marker.dockerenv": "/.dockerenv",
    "marker.containerenv": "/run/.containerenv",
    "marker.k8s-serviceaccount": "/var/run/secrets/kubernetes.io/serviceaccount",
}
# Items whose absence is normal and not worth a gap (no DMI in VMs without it, no conntrack module).
OPTIONAL = {"nf_conntrack_stat", "sockstat6"} | {k for k in FILES if k.startswith("dmi.")}

_ERRNO_REASON = {
    errno.EACCES: GapReason.permission_denied,
    errno.EPERM: GapReason.permission_denied,
    errno.ENOENT: GapReason.missing,
    errno.ENOTDIR: GapReason.missing,
}


def _reason(exc: OSError) -> GapReason:
    return _ERRNO_REASON.get(exc.errno or 0, GapReason.error)


def _read(path: str, limit: int = 16 << 20) -> str:
    # Small reads: procfs/sysfs handlers may kmalloc the requested size and fail with ENOMEM on huge ones.
    chunks = []
    size = 0
    with open(path, "rb", buffering=0) as f:
        while size < limit:
            chunk = f.read(min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    return b"".join(chunks).decode("utf-8", "replace")


def read_sysctls(raw: RawCapture, proc_sys: str = "/proc/sys") -> None:
    """Every sysctl under net.ipv4, net.ipv6, net.core and net.netfilter."""
    unset_secrets = 0
    for root in SYSCTL_ROOTS:
        top = os.path.join(proc_sys, *root.split("."))
        if not os.path.isdir(top):
            if root != "net.netfilter":  # no conntrack module loaded: normal
                raw.gap(f"sysctl:{root}", GapReason.missing, f"{top} does not exist")
            continue
        raw.sysctl_roots.append(root)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            rel = os.path.relpath(dirpath, proc_sys)
            prefix = ".".join(p.replace(".", "/") for p in rel.split(os.sep))
            for fn in sorted(filenames):
                name = f"{prefix}.{fn.replace('.', '/')}"
                path = os.path.join(dirpath, fn)
                try:
                    if not os.stat(path).st_mode & 0o444:
                        continue  # write-only triggers such as route.flush hold no setting
                except OSError:
                    pass
                try:
                    with open(path, "rb") as f:
                        raw.sysctls[name] = fold_value(f.read(65536).decode("utf-8", "replace"))
                except OSError as exc:
                    if fn == "stable_secret" and exc.errno == errno.EIO:
                        unset_secrets += 1  # reading an unset IPv6 stable_secret fails with EIO by design
                        continue
                    raw.gap(f"sysctl:{name}", _reason(exc), exc.strerror or str(exc))
    if unset_secrets:
        raw.gap("sysctl:net.ipv6.conf.*.stable_secret", GapReason.missing,
                f"unset on {unset_secrets} interface(s): the kernel answers EIO until a secret is written")


def _run(argv: list[str], raw: RawCapture, item: str, limit_lines: int | None = None) -> str | None:
    exe = shutil.which(argv[0])
    if exe is None:
        raw.gap(item, GapReason.missing, f"{argv[0]} not installed")
        return None
    try:
        if limit_lines is None:
            proc = subprocess.run([exe, *argv[1:]], capture_output=True, timeout=COMMAND_TIMEOUT_S,
                                  stdin=subprocess.DEVNULL)
            out = proc.stdout.decode("utf-8", "replace")
            if proc.returncode != 0:
                err = proc.stderr.decode("utf-8", "replace").strip().splitlines()
                detail = err[-1] if err else f"exit {proc.returncode}"
                reason = GapReason.permission_denied if "ermission" in detail else GapReason.error
                raw.gap(item, reason, f"{' '.join(argv)}: {detail}")
                return None
            return out
        # Stream and stop reading after limit_lines: huge tables do not get shipped whole.
        p = subprocess.Popen([exe, *argv[1:]], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL)
        assert p.stdout is not None
        lines = []
        for n, line in enumerate(p.stdout):
            if n >= limit_lines:
                raw.gap(item, GapReason.truncated, f"stopped after {limit_lines} lines")
                break
            lines.append(line)
        p.kill()
        p.wait()
        return b"".join(lines).decode("utf-8", "replace")
    except subprocess.TimeoutExpired:
        raw.gap(item, GapReason.timeout, f"{' '.join(argv)} took longer than {COMMAND_TIMEOUT_S:.0f}s")
    except OSError as exc:
        raw.gap(item, _reason(exc), f"{argv[0]}: {exc.strerror or exc}")
    return None


def capture_local(detail_cap: int = DEFAULT_DETAIL_CAP, proc_sys: str = "/proc/sys") -> RawCapture:
    raw = RawCapture(source=Source.local, collected_at=_dt.datetime.now(_dt.timezone.utc), detail_cap=detail_cap)
    for item, path in FILES.items():
        try:
            raw.items[item] = _read(path)
        except OSError as exc:
            if item in OPTIONAL and _reason(exc) is GapReason.missing:
                continue
            raw.gap(item, _reason(exc), f"{path}: {exc.strerror or exc}")
    for item, path in (("os-release", "/etc/os-release"), ("os-release", "/usr/lib/os-release")):
        if item in raw.items:
            break
        try:
            raw.items[item] = _read(path)
        except OSError:
            continue
    else:
        if "os-release" not in raw.items:
            raw.gap("os-release", GapReason.missing, "no /etc/os-release or /usr/lib/os-release")
    for item, path in MARKERS.items():
        if os.path.exists(path):
            raw.items[item] = ""
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        raw.items["env.kubernetes"] = ""
    read_sysctls(raw, proc_sys)

    ss = _run(["ss", "-tanoeH"], raw, "ss")
    if ss is not None:
        raw.items["ss"] = ss
        established = sum(1 for line in ss.splitlines() if line.startswith("ESTAB"))
        if established:
            detail = _run(["ss", "-tinH", "state", "established"], raw, "ss-detail",
                          limit_lines=2 * detail_cap + 2)
            if detail is not None:
                raw.items["ss-detail"] = detail
    else:
        for item, path in (("proc-net-tcp", "/proc/net/tcp"), ("proc-net-tcp6", "/proc/net/tcp6")):
            try:
                raw.items[item] = _read(path, limit=1 << 30)
            except OSError as exc:
                if not (item == "proc-net-tcp6" and _reason(exc) is GapReason.missing):
                    raw.gap(item, _reason(exc), f"{path}: {exc.strerror or exc}")

    if shutil.which("iptables-save"):
        if os.geteuid() == 0:
            nat = _run(["iptables-save", "-t", "nat"], raw, "iptables-nat")
            if nat is not None:
                raw.items["iptables-nat"] = nat
        else:
            raw.gap("iptables-nat", GapReason.permission_denied, "reading NAT rules needs root")
    return raw


def sample_counters() -> CounterSample | None:
    """The counters alone, for the first of two samples."""
    try:
        counters = Counters(
            netstat=parse_counter_pairs(_read("/proc/net/netstat"), "/proc/net/netstat"),
            snmp=parse_counter_pairs(_read("/proc/net/snmp"), "/proc/net/snmp"),
            sockstat=parse_sockstat(_read("/proc/net/sockstat"), "/proc/net/sockstat"),
        )
    except (OSError, ParseError):
        return None
    try:
        ct = parse_conntrack_stat(_read("/proc/net/stat/nf_conntrack"), "/proc/net/stat/nf_conntrack")
    except (OSError, ParseError):
        ct = []
    return CounterSample(interval_s=0.0, counters=counters, conntrack_stats_per_cpu=ct)


def collect_local(detail_cap: int = DEFAULT_DETAIL_CAP, sample_s: float = 0.0) -> Snapshot:
    """Snapshot of this machine. With sample_s > 0 the counters are sampled twice, sample_s apart."""
    first = None
    if sample_s > 0:
        first = sample_counters()
        t0 = time.monotonic()
        time.sleep(sample_s)
    snap = build_snapshot(capture_local(detail_cap))
    if first is not None:
        first.interval_s = time.monotonic() - t0
        snap.previous = first
    return snap
