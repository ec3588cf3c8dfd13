"""Which sysctl names exist on which kernel: the index scripts/gen_key_index.py builds in kernel_db/keys/index.json.

The index lists every name of its sources (real `sysctl -a` captures and /proc/sys walks of known kernels, each
with its origin), with interface directories folded (`net.ipv4.conf.*.rp_filter`). It vouches only for the trees
those sources list completely (net.ipv4, net.ipv6, net.core, net.unix, minus module-dependent subtrees): there a
name no source holds does not exist on a kernel no newer than the newest source. A name seen only in sources newer
than the target, a name outside the vouched trees, or a target newer than every source: unknown, never "exists".
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

_FOLD = re.compile(r"^(net\.ipv[46]\.(?:conf|neigh))\.[^.]+\.(.+)$")


def fold(name: str) -> str:
    m = _FOLD.match(name)
    return f"{m.group(1)}.*.{m.group(2)}" if m else name


@dataclass(frozen=True)
class KeyStatus:
    status: Literal["exists", "absent", "unknown"]
    reason: str
    nearest: str | None = None


def _ver(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    return (parts + [0, 0, 0])[0], (parts + [0, 0, 0])[1], (parts + [0, 0, 0])[2]


@lru_cache(maxsize=1)
def load_index() -> dict[str, Any] | None:
    try:
        text = resources.files("tcpaudit.kernel_db").joinpath("keys/index.json").read_text()
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    return json.loads(text)


def _vouched(index: dict[str, Any], name: str) -> bool:
    inside = any(name.startswith(t + ".") for t in index["vouched_trees"])
    return inside and not any(name == t or name.startswith(t + ".") for t in index["not_vouched"])


def _glued(index: dict[str, Any], name: str) -> tuple[str, str] | None:
    """`net.ipv4_fastopen` -> ("net.ipv4", "fastopen"): a vouched tree glued to the rest with `_` or `-`."""
    for tree in index["vouched_trees"]:
        for sep in ("_", "-"):
            if name.startswith(tree + sep) and len(name) > len(tree) + 1:
                return tree, name[len(tree) + 1 :]
    return None


def nearest(index: dict[str, Any], name: str) -> str | None:
    """The indexed name closest to `name` (same directory, leaf similarity >= 0.7), or None."""
    glued = _glued(index, name)
    folded = fold(name) if glued is None else f"{glued[0]}.{glued[1]}"
    parent, _, leaf = folded.rpartition(".")
    pool = {n.rpartition(".")[2]: n for n in index["names"] if n.rpartition(".")[0] == parent}
    if glued is not None:  # net.ipv4_fastopen: any leaf of net.ipv4 that contains or resembles the rest
        contains = sorted(n for lf, n in pool.items() if glued[1] in lf)
        if contains:
            return contains[0]
    hits = difflib.get_close_matches(leaf, list(pool), n=1, cutoff=0.7)
    if not hits:
        return None
    hit = pool[hits[0]]
    m = _FOLD.match(name)
    if "*" in hit and m:  # unfold with the interface the user wrote
        iface = name[len(m.group(1)) + 1 : len(name) - len(m.group(2)) - 1]
        hit = hit.replace("*", iface, 1)
    return hit


def key_status(name: str, release: Any) -> KeyStatus:
    """Whether `name` exists on `release` (a KernelRelease, or None: unknown kernel) as far as the index knows."""
    index = load_index()
    if index is None:
        return KeyStatus("unknown", "the key index is not available")
    folded = fold(name)
    holders = index["names"].get(folded, [])
    sources = {s["id"]: s for s in index["sources"]}
    if release is None:
        if holders:
            return KeyStatus("exists", f"listed by {holders[-1]}")
        return KeyStatus("unknown", "unknown key, not verified: the target kernel is unknown")
    target = tuple(release.version)
    older = [h for h in holders if _ver(sources[h]["upstream"]) <= target]
    if older:
        return KeyStatus("exists", f"listed by {older[-1]} ({sources[older[-1]]['kernel']})")
    if not _vouched(index, folded) and _glued(index, name) is None:
        return KeyStatus(
            "unknown",
            "unknown key, not verified: outside the trees the key index lists completely "
            f"({', '.join(index['vouched_trees'])})",
        )
    if holders:
        first = sources[holders[0]]
        return KeyStatus(
            "unknown",
            f"unknown key, not verified on {release.upstream}: first listed by a {first['kernel']} kernel",
        )
    newest = max((_ver(s["upstream"]) for s in index["sources"] if s["complete"]), default=(0, 0, 0))
    if target > newest:
        return KeyStatus("unknown", f"unknown key, not verified: {release.upstream} is newer than every indexed kernel")
    return KeyStatus(
        "absent",
        f"no indexed kernel from {index['sources'][0]['kernel']} to {index['sources'][-1]['kernel']} has it",
        nearest(index, name),
    )
