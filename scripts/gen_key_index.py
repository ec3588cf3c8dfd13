#!/usr/bin/env python3
"""Generate kernel_db/keys/index.json, the index of sysctl names by kernel version, from kernel_db/keys/sources/.

Each file in kernel_db/keys/sources/ is one name list (one sysctl name a line) with a header of `# key: value`
lines saying where it came from: `kernel` (the release it was read on or the tag), `upstream` (the mainline
version it counts as), `origin` (repository, path, commit of the capture or document), `complete` (the trees whose
every name the list holds, e.g. a `sysctl -a` capture or /proc/sys walk of that kernel: net.ipv4 net.ipv6 net.core
net.unix). Interface and neighbour directories are folded to `*` (net.ipv4.conf.*.rp_filter).

The index says, for every name, which sources hold it; `trees` lists the trees the index vouches for: a name in a
vouched tree that no source of a version <= the target's holds, on a kernel no newer than the newest complete
source, does not exist there (tcpaudit/kernel/keys.py). kernel.*, vm.* and fs.* names are indexed (present means
present) but never vouched for: their trees depend on build options and vendor patches.

    python3 scripts/gen_key_index.py           # regenerate kernel_db/keys/index.json from the sources
    python3 scripts/gen_key_index.py --check   # exit 1 if the committed index differs from what the sources give
    python3 scripts/gen_key_index.py --extract NAME FILE KERNEL UPSTREAM ORIGIN
        # write sources/NAME.txt from a `sysctl -a` capture (or '-' to walk this host's /proc/sys)
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
KEYS = ROOT / "kernel_db" / "keys"
SOURCES = KEYS / "sources"
INDEX = KEYS / "index.json"

# Trees a complete capture lists in full on any kernel that has them (built in, not module-dependent parts).
VOUCHED = ("net.ipv4", "net.ipv6", "net.core", "net.unix")
# Module- or build-dependent subtrees inside them: never vouched for.
NOT_VOUCHED = ("net.ipv4.vs", "net.ipv4.netfilter", "net.ipv6.route.skip_notify_on_dev_down")
INDEXED = (*VOUCHED, "net.netfilter", "kernel", "vm", "fs")
_FOLD = re.compile(r"^(net\.ipv[46]\.(?:conf|neigh))\.[^.]+\.(.+)$")
_NAME = re.compile(r"^[a-z][a-z0-9_.*-]*$")


def fold(name: str) -> str:
    """net.ipv4.conf.eth0.rp_filter -> net.ipv4.conf.*.rp_filter (interface and neighbour directories)."""
    m = _FOLD.match(name)
    return f"{m.group(1)}.*.{m.group(2)}" if m else name


def indexed(name: str) -> bool:
    return any(name == t or name.startswith(t + ".") for t in INDEXED)


def _names_from_capture(text: str) -> set[str]:
    out = set()
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")) or "=" not in line:
            continue
        key = line.split("=", 1)[0].strip()
        if _NAME.match(key) and indexed(key):
            out.add(fold(key))
    return out


def _names_from_proc() -> set[str]:
    out = set()
    for top in ("net", "kernel", "vm", "fs"):
        for dirpath, _dirs, files in os.walk(f"/proc/sys/{top}"):
            for fn in files:
                rel = os.path.relpath(os.path.join(dirpath, fn), "/proc/sys")
                key = ".".join(part.replace(".", "/") for part in rel.split("/"))
                if _NAME.match(key) and indexed(key):
                    out.add(fold(key))
    return out


def read_source(path: Path) -> tuple[dict[str, str], list[str]]:
    meta: dict[str, str] = {}
    names: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("# ") and ":" in line and not names:
            k, _, v = line[2:].partition(":")
            meta[k.strip()] = v.strip()
        elif line and not line.startswith("#"):
            names.append(line.strip())
    for required in ("kernel", "upstream", "origin", "complete"):
        if required not in meta:
            raise SystemExit(f"{path.name}: header lacks '# {required}: ...'")
    return meta, names


def _ver(text: str) -> list[int]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    return parts + [0] * (3 - len(parts))


def build() -> dict:
    sources: list[dict[str, Any]] = []
    names: dict[str, list[str]] = {}
    for path in sorted(SOURCES.glob("*.txt")):
        meta, listed = read_source(path)
        sid = path.stem
        sources.append(
            {
                "id": sid,
                "kernel": meta["kernel"],
                "upstream": meta["upstream"],
                "origin": meta["origin"],
                "complete": sorted(meta["complete"].split()),
                "names": len(listed),
            }
        )
        for n in listed:
            names.setdefault(n, []).append(sid)
    sources.sort(key=lambda s: (_ver(s["upstream"]), s["id"]))
    order = {s["id"]: i for i, s in enumerate(sources)}
    return {
        "generated_by": "scripts/gen_key_index.py",
        "vouched_trees": list(VOUCHED),
        "not_vouched": list(NOT_VOUCHED),
        "sources": sources,
        "names": {n: sorted(ids, key=order.__getitem__) for n, ids in sorted(names.items())},
    }


def render(index: dict) -> str:
    return json.dumps(index, indent=1, sort_keys=False) + "\n"


def extract(name: str, file: str, kernel: str, upstream: str, origin: str) -> None:
    found = _names_from_proc() if file == "-" else _names_from_capture(Path(file).read_text(errors="replace"))
    complete = " ".join(t for t in VOUCHED if any(n.startswith(t + ".") for n in found))
    header = [f"# kernel: {kernel}", f"# upstream: {upstream}", f"# origin: {origin}", f"# complete: {complete}"]
    SOURCES.mkdir(parents=True, exist_ok=True)
    (SOURCES / f"{name}.txt").write_text("\n".join(header + sorted(found)) + "\n")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--extract"] and len(argv) == 6:
        extract(*argv[1:])
        return 0
    text = render(build())
    if argv == ["--check"]:
        if not INDEX.exists() or INDEX.read_text() != text:
            print(f"{INDEX.relative_to(ROOT)} is stale: run scripts/gen_key_index.py", file=sys.stderr)
            return 1
        return 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    INDEX.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
