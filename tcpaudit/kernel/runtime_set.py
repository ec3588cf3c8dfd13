"""Sysctls the kernel or a runtime sets on purpose (kernel_db/runtime_set.toml), and how a host is recognised as
one where they apply.

- kubernetes: the snapshot's environment says so (service-account mount, KUBERNETES_SERVICE_HOST, kube-proxy's
  KUBE-SERVICES chain, kubepods cgroup), or the host's sysctl tree has an interface that Kubernetes networking
  creates (cni0, flannel.1, cilium_host, kube-ipvs0, vxlan.calico, weave, kube-bridge, cali*/lxc* veths).
- container_host: kubernetes, or an interface that docker/podman create (docker0, br-<id>, podman0, cni-podman0,
  veth*).

Interfaces are read from the per-interface keys (net.ipv4.conf.IFACE.*), which list every interface of the host's
network namespace.
"""

from __future__ import annotations

import fnmatch
import functools
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .._toml import tomllib

_K8S_IFACES = ("cni0", "flannel.1", "cilium_host", "cilium_net", "kube-ipvs0", "vxlan.calico", "weave", "kube-bridge")
_K8S_PREFIXES = ("cali", "lxc", "flannel", "cilium")
_CONTAINER_IFACES = ("docker0", "podman0", "cni-podman0", "docker_gwbridge")
_CONTAINER_PREFIXES = ("br-", "veth")


class RuntimeSetKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pattern: str
    when: Literal["always", "container_host", "kubernetes"]
    reason: str = Field(min_length=10)
    source: dict[str, str] = Field(min_length=1)


@functools.lru_cache(maxsize=1)
def runtime_set_keys() -> tuple[RuntimeSetKey, ...]:
    text = resources.files("tcpaudit.kernel_db").joinpath("runtime_set.toml").read_text(encoding="utf-8")
    return tuple(RuntimeSetKey.model_validate(k) for k in tomllib.loads(text)["key"])


def interfaces(sysctls: dict[str, str]) -> set[str]:
    out = set()
    for k in sysctls:
        if k.startswith("net.ipv4.conf."):
            iface = k[len("net.ipv4.conf.") :].rpartition(".")[0]
            if iface and iface not in ("all", "default"):
                out.add(iface)
    return out


def host_kinds(snapshot: Any) -> dict[str, str]:
    """{"kubernetes": why, "container_host": why} for what this host is recognised as."""
    ifaces = interfaces(snapshot.sysctls)
    kinds: dict[str, str] = {}
    k8s = sorted(i for i in ifaces if i in _K8S_IFACES or i.startswith(_K8S_PREFIXES))
    if snapshot.environment.kubernetes:
        kinds["kubernetes"] = "; ".join(h for h in snapshot.environment.hints if "kubernetes" in h) or "kubernetes"
    elif k8s:
        kinds["kubernetes"] = f"Kubernetes network interface(s) {', '.join(k8s[:3])}"
    ctr = sorted(i for i in ifaces if i in _CONTAINER_IFACES or i.startswith(_CONTAINER_PREFIXES))
    if "kubernetes" in kinds:
        kinds["container_host"] = kinds["kubernetes"]
    elif ctr:
        kinds["container_host"] = f"container network interface(s) {', '.join(ctr[:3])}"
    return kinds


def runtime_reason(key: str, kinds: dict[str, str]) -> str | None:
    """Why `key` is expected to differ at runtime on this host, or None."""
    for entry in runtime_set_keys():
        if not fnmatch.fnmatchcase(key, entry.pattern):
            continue
        if entry.when == "always":
            return entry.reason
        if entry.when in kinds:
            return f"{entry.reason} (recognised: {kinds[entry.when]})"
    return None
