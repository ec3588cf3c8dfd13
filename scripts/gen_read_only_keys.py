#!/usr/bin/env python3
"""Generate kernel_db/keys/read_only.json: the sysctls that are read-only (no write bit) on the running kernel.

A `sysctl -a` capture lists every readable key, including the read-only ones (kernel.osrelease, fs.file-nr,
net.ipv4.tcp_available_congestion_control ...). Deployed as a configuration file, applying it tries to write each
of them: procps-ng `sysctl -p` prints 'setting key "KEY": ...' per key, systemd-sysctl logs "Couldn't write ...,
ignoring: Permission denied" (both measured: procps-ng 4.0.2, systemd 252). SYS009 counts them with this list.

    python3 scripts/gen_read_only_keys.py   # in the initial namespaces: a child network namespace shows
                                            # global keys such as net.core.rmem_max as read-only

Only modes are read (os.stat), nothing is written. Interface and neighbour directories are folded to `*`
(net.ipv4.conf.*.mc_forwarding), as in kernel_db/keys/index.json.
"""

from __future__ import annotations

import json
import os
import platform
import re
import stat
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "kernel_db" / "keys" / "read_only.json"
TREES = ("net", "kernel", "vm", "fs")
_FOLD = re.compile(r"^(net\.ipv[46]\.(?:conf|neigh))\.[^.]+\.(.+)$")


def fold(name: str) -> str:
    m = _FOLD.match(name)
    return f"{m.group(1)}.*.{m.group(2)}" if m else name


def read_only_names(proc_sys: Path = Path("/proc/sys")) -> list[str]:
    names: set[str] = set()
    for tree in TREES:
        for dirpath, dirnames, filenames in os.walk(proc_sys / tree):
            dirnames.sort()
            for f in filenames:
                p = Path(dirpath) / f
                try:
                    mode = p.stat().st_mode
                except OSError:
                    continue
                if stat.S_ISREG(mode) and not mode & 0o222:
                    rel = p.relative_to(proc_sys).as_posix()
                    names.add(fold(_dotted(rel)))
    return sorted(names)


def _dotted(rel: str) -> str:
    """net/ipv4/conf/eth0.100/x -> net.ipv4.conf.eth0/100.x (sysctl's notation for a dot inside a component)."""
    return ".".join(part.replace(".", "/") for part in rel.split("/"))


def main() -> int:
    names = read_only_names()
    doc = {
        "generated_by": "scripts/gen_read_only_keys.py",
        "kernel": platform.release(),
        "origin": "mode walk of /proc/sys (net, kernel, vm, fs) in the initial namespaces of a test host",
        "names": names,
    }
    OUT.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"{OUT.relative_to(ROOT)}: {len(names)} read-only names", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
