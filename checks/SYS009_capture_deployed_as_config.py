"""SYS009: a `sysctl -a` capture deployed as a configuration file: applying it writes another host's whole state."""

import json
import re
from functools import lru_cache
from importlib import resources

from tcpaudit.lint.model import assignments_of
from tcpaudit.model import Severity
from tcpaudit.rules.base import Facts, Reference, Rule, RuleMeta

OSRELEASE = "kernel.osrelease"
# Formats that are applied as written: sysctl.d / sysctl.conf files (only *.conf names are applied by
# `sysctl --system` and systemd-sysctl, tcpaudit/lint/files.py SYSTEM_DIRS). A capture kept as a record
# (capture.txt, a sosreport file) is not applied by anything and is judged as a capture instead.
APPLIED = frozenset({"sysctl.conf"})
# Keys whose captured value names the captured machine itself: writing them renames or re-identifies this host.
IDENTITY = ("kernel.hostname", "kernel.domainname")
_FOLD = re.compile(r"^(net\.ipv[46]\.(?:conf|neigh))\.[^.]+\.(.+)$")
_SHOW = 6


def _fold(name: str) -> str:
    m = _FOLD.match(name)
    return f"{m.group(1)}.*.{m.group(2)}" if m else name


@lru_cache(maxsize=1)
def read_only_keys() -> tuple[str, frozenset[str]]:
    """(kernel the list was read on, the read-only names) from kernel_db/keys/read_only.json."""
    try:
        doc = json.loads(resources.files("tcpaudit.kernel_db").joinpath("keys/read_only.json").read_text())
    except (FileNotFoundError, ModuleNotFoundError, OSError, ValueError):
        return "", frozenset()
    return str(doc.get("kernel", "")), frozenset(doc.get("names", []))


class CaptureDeployedAsConfig(Rule):
    meta = RuleMeta(
        id="SYS009",
        title="A `sysctl -a` capture is deployed as configuration: applying it writes every key of another host",
        severity=Severity.medium,
        applies_to=["config"],
        summary=(
            "The file is the output of `sysctl -a` (it lists kernel.osrelease, which only a capture does) but "
            "sits where it is applied: a sysctl.d or sysctl.conf file. At every boot and `sysctl --system` each of "
            "its hundreds of lines is written back: the read-only keys fail one by one, and every writable key "
            "takes the captured host's value, whatever this host's kernel, memory or interfaces are."
        ),
        mechanism=[
            "A capture lists every readable sysctl: read-only ones (kernel.osrelease, kernel.version, fs.file-nr, "
            "fs.dentry-state, kernel.random.uuid, net.ipv4.tcp_available_congestion_control, "
            "net.netfilter.nf_conntrack_count ...), counters, and every tunable with the value it had there.",
            'Applied, each read-only key is an error: procps-ng `sysctl -p` prints \'sysctl: setting key "KEY": '
            "...' and goes on (measured with procps-ng 4.0.2; exit status 0), systemd-sysctl logs \"Couldn't "
            'write ..., ignoring: Permission denied" (systemd 252) - noise in every boot log that hides real '
            "errors.",
            "Every writable key is set to the captured host's value: limits computed at boot from that machine's "
            "memory (fs.file-max, kernel.threads-max, net.ipv4.tcp_mem, vm.min_free_kbytes), its host name "
            "(kernel.hostname), per-interface settings of interfaces this host may not have (net.ipv4.conf.eth0.*: "
            "'cannot stat'), and keys that exist only on the captured kernel.",
            "Nothing in the file records an intention: whoever reads it cannot tell the few values someone meant "
            "to set from the thousand that were merely captured.",
        ],
        when_it_matters=(
            "Whenever the file is installed on a host other than the one captured (images, configuration "
            "management, a copied /etc), and on that host itself after a kernel or memory change."
        ),
        remediation=(
            "Replace the file with the few settings that are meant (compare the capture with `sysctl -a` of a "
            "default host to find them) and keep the capture elsewhere (e.g. capture.txt) as a record."
        ),
        references=[
            Reference(
                title="sysctl(8) (procps-ng): -a, -p and --system",
                url="https://man7.org/linux/man-pages/man8/sysctl.8.html",
            ),
            Reference(
                title="sysctl.d(5): which files are applied at boot",
                url="https://www.freedesktop.org/software/systemd/man/latest/sysctl.d.html",
            ),
        ],
    )

    def check(self, f: Facts):
        items = [a for a in assignments_of(f) if a.value is not None and not a.is_glob]
        marker = next((a for a in items if a.key == OSRELEASE), None)
        if marker is None:
            return None  # a configuration, not a capture
        if marker.syntax not in APPLIED or not marker.location.file.lower().endswith(".conf"):
            return self.na(
                f"a `sysctl -a` capture kept as a record ({marker.location.file} is not a sysctl.d/sysctl.conf file)"
            )
        listed_on, read_only = read_only_keys()
        ro = [a.key for a in items if _fold(a.key) in read_only]
        identity = [f"{a.key} = {a.value}" for a in items if a.key in IDENTITY]
        captured = (marker.value or "").split()[0] if marker.value else "?"
        ev = {
            "captured_kernel": captured,
            "lines": len(items),
            "read_only_lines": len(ro),
            "read_only_list_from": listed_on or "unavailable",
            "read_only_examples": ro[:_SHOW],
        }
        text = (
            f"{marker.location.file} is a `sysctl -a` capture of Linux {captured} (kernel.osrelease at line "
            f"{marker.location.line}) applied as configuration: every boot and `sysctl --system` writes its "
            f"{len(items)} lines. {len(ro)} of them are read-only keys ({', '.join(ro[:_SHOW])}"
            f"{' ...' if len(ro) > _SHOW else ''}; read-only on Linux {listed_on or '?'}, where the list of "
            "read-only keys was taken), each an error in the boot log; the "
            f"other {len(items) - len(ro)} overwrite this host's values with the captured host's, including "
            "limits sized for that machine's memory."
        )
        if identity:
            ev["identity"] = identity
            text += f" It also sets {', '.join(identity)}: this host takes the captured machine's name."
        return self.finding(f, keys=[OSRELEASE], location=marker.location, evidence=ev, explanation=text)
