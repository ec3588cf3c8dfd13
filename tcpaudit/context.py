"""Context: the network a host lives in, which changes the verdict.

Explicit input (CLI flags, .tcpaudit.toml) wins over profiles, profiles over
auto-detected hints. Every value records where it came from, and the report
states which context was assumed.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ._toml import tomllib
from .snapshot import Snapshot

YesNo = Literal["yes", "no", "unknown"]

DEFAULT_THRESHOLDS: dict[str, float] = {
    "min_ephemeral_ports": 10000,  # usable ephemeral ports below this: a busy client can run dry
    "port_usage_warn": 0.5,  # share of usable ports held to one destination: warn
    "port_usage_high": 0.8,  # ... and high
    "conntrack_usage_warn": 0.8,
    "conntrack_usage_high": 0.95,
    "orphans_warn": 0.5,
    "min_somaxconn": 1024,
    "min_tw_buckets": 10000,
    "low_port_range_start": 10000,
    "idle_margin": 0.9,  # keepalive must fire before this share of the idle timeout
    "close_wait_warn": 100,  # CLOSE-WAIT sockets (never close()d by the application): medium (TCP010)
    "close_wait_high": 1000,  # ... and high
    "fin_wait2_leak_warn": 20,  # non-orphaned FIN-WAIT-2 without a timer (half-closed leak): medium (TCP010)
    "fin_wait2_leak_high": 200,  # ... and high
}


class Profile(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str = ""
    title: str
    kind: str = "none"
    idle_timeout: int | None = None
    sends_reset_on_idle: bool | str | None = None
    clients_behind_nat: YesNo = "unknown"
    snat: bool | None = None
    ports_per_destination: int | None = None
    conntrack: dict[str, int] = Field(default_factory=dict)
    listen_ports: list[int] = Field(default_factory=list)
    note: str = ""
    confidence: str = "high"
    sources: list[dict[str, str]] = Field(default_factory=list)


@functools.lru_cache(maxsize=1)
def load_profiles() -> dict[str, Profile]:
    try:
        data = resources.files("tcpaudit.kernel_db").joinpath("profiles.toml").read_bytes()
    except FileNotFoundError:
        return {}
    table = tomllib.loads(data.decode()).get("profile", {})
    return {pid: Profile(id=pid, **body) for pid, body in table.items()}


# The profile an auto-detected hint implies. Applied only when the user gave no context.
_CLOUD_PROFILE = {"aws": "aws-nat-gateway", "azure": "azure-lb", "gcp": "gcp-cloud-nat"}


class ContextOptions(BaseModel):
    """What the user said (CLI and config file). None means "not said"."""

    nat_idle_timeout: int | None = Field(None, ge=1, le=10_000_000)
    profiles: list[str] = Field(default_factory=list)
    clients_behind_nat: YesNo | None = None
    auto_detect: bool = True
    thresholds: dict[str, float] = Field(default_factory=dict)
    # Kubernetes release the manifests are for (1.29, v1.29.3): which pod sysctls the kubelet accepts (SYS007).
    # Same grammar as tcpaudit.kernel.kubernetes.VERSION_PATTERN.
    kubernetes_version: str | None = Field(None, pattern=r"^v?\d{1,3}\.\d{1,3}(?:\.\d{1,5})?$")


class Context(BaseModel):
    nat_idle_timeout: int | None = None
    nat_idle_explicit: bool = False
    nat_idle_source: str | None = None
    clients_behind_nat: YesNo = "unknown"
    clients_source: str = "default"
    profiles: list[str] = Field(default_factory=list)
    sidecar_ports: list[int] = Field(default_factory=list)
    kubernetes: bool = False
    kubernetes_version: str | None = None  # as given (--k8s-version / config); None: the rule's default
    thresholds: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    assumed: list[str] = Field(default_factory=list)

    def threshold(self, name: str) -> float:
        return self.thresholds.get(name, DEFAULT_THRESHOLDS[name])

    def describe_nat(self) -> str:
        if self.nat_idle_timeout is None:
            return "no NAT/load-balancer idle timeout known"
        how = "given" if self.nat_idle_explicit else "assumed"
        return f"NAT/LB idle timeout {self.nat_idle_timeout} s ({how}: {self.nat_idle_source})"


class UnknownProfileError(ValueError):
    pass


def resolve_context(opts: ContextOptions, snapshot: Snapshot | None = None) -> Context:
    profiles = load_profiles()
    ctx = Context(thresholds={**DEFAULT_THRESHOLDS, **opts.thresholds})
    chosen: list[Profile] = []
    for pid in opts.profiles:
        if pid not in profiles:
            known = ", ".join(sorted(profiles)) or "none installed"
            raise UnknownProfileError(f"unknown profile {pid!r} (known: {known})")
        chosen.append(profiles[pid])
    ctx.profiles = [p.id for p in chosen]
    ctx.kubernetes_version = opts.kubernetes_version

    if opts.nat_idle_timeout is not None:
        ctx.nat_idle_timeout, ctx.nat_idle_explicit = opts.nat_idle_timeout, True
        ctx.nat_idle_source = "--nat-idle-timeout / config"
    else:
        timed = [p for p in chosen if p.idle_timeout]
        if timed:
            p = min(timed, key=lambda p: p.idle_timeout or 0)
            ctx.nat_idle_timeout, ctx.nat_idle_explicit = p.idle_timeout, True
            ctx.nat_idle_source = f"profile {p.id} ({p.title})"

    if opts.clients_behind_nat is not None:
        ctx.clients_behind_nat, ctx.clients_source = opts.clients_behind_nat, "given"
    else:
        for p in chosen:
            if p.clients_behind_nat != "unknown":
                ctx.clients_behind_nat, ctx.clients_source = p.clients_behind_nat, f"profile {p.id}"
    for p in chosen:
        ctx.sidecar_ports.extend(p.listen_ports)
        if p.kind == "kubernetes" or p.id.startswith("kubernetes"):
            ctx.kubernetes = True

    user_said_nothing = not opts.profiles and opts.nat_idle_timeout is None
    if snapshot is not None and opts.auto_detect:
        env = snapshot.environment
        if env.kubernetes:
            ctx.kubernetes = True
            ctx.assumed.append("Kubernetes detected (" + "; ".join(h for h in env.hints if "kubernetes" in h) + ")")
        if env.nat_rules:
            ports = sorted({int(tok) for r in env.nat_rules for tok in _redirect_ports(r)})
            if ports and not ctx.sidecar_ports:
                ctx.sidecar_ports = ports
                ctx.assumed.append(f"NAT REDIRECT/DNAT rules seen (to port(s) {', '.join(map(str, ports[:5]))})")
        if user_said_nothing and env.cloud in _CLOUD_PROFILE and _CLOUD_PROFILE[env.cloud] in profiles:
            p = profiles[_CLOUD_PROFILE[env.cloud]]
            if p.idle_timeout:
                ctx.nat_idle_timeout, ctx.nat_idle_explicit = p.idle_timeout, False
                ctx.nat_idle_source = f"auto-detected cloud {env.cloud}: {p.title} default"
                ctx.assumed.append(
                    f"cloud {env.cloud} detected: assuming a {p.title} idle timeout of {p.idle_timeout} s "
                    "(say --nat-idle-timeout or --profile to be exact)"
                )
    if ctx.nat_idle_timeout is not None and ctx.nat_idle_explicit:
        ctx.assumed.insert(0, ctx.describe_nat())
    elif ctx.nat_idle_timeout is None:
        ctx.assumed.insert(0, "no NAT/load-balancer idle timeout given (--nat-idle-timeout, --profile)")
    ctx.assumed.append(f"clients behind NAT: {ctx.clients_behind_nat} ({ctx.clients_source})")
    return ctx


def _redirect_ports(rule: str) -> list[str]:
    toks = rule.split()
    out: list[str] = []
    for flag in ("--to-ports", "--to-port"):
        if flag in toks:
            i = toks.index(flag)
            if i + 1 < len(toks):
                out.extend(t for t in toks[i + 1].split("-")[:1] if t.isdigit())
    if "--to-destination" in toks:
        i = toks.index("--to-destination")
        if i + 1 < len(toks):
            port = toks[i + 1].rpartition(":")[2]
            if port.isdigit():
                out.append(port)
    return out


def profile_summary() -> list[dict[str, Any]]:
    return [
        {
            "id": p.id,
            "title": p.title,
            "idle_timeout": p.idle_timeout,
            "clients_behind_nat": p.clients_behind_nat,
            "sources": [s.get("url", "") for s in p.sources],
        }
        for p in load_profiles().values()
    ]
