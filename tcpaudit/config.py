"""The project config file, `.tcpaudit.toml`: context, thresholds, disabled rules, waivers.

fail_on = "high"

[context]
nat_idle_timeout = 240          # seconds
profiles = ["azure-lb"]
clients_behind_nat = "yes"     # yes | no | unknown
auto_detect = true
kubernetes_version = "1.29"     # what `tcpaudit lint` assumes for pod manifests (SYS007)

[thresholds]
min_ephemeral_ports = 10000

[rules]
disable = ["TCP004"]

[policy]                        # declared values per sysctl (POL001); see tcpaudit/policy.py
reason = "fleet standard"
"net.ipv4.tcp_keepalive_time" = 120

[[waiver]]
rule = "TCP003"
target = "web-*"               # glob on the target name (host name or config path)
reason = "hardening baseline requires rfc1337; clients never come through NAT"
expires = 2027-01-31
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._toml import tomllib
from .context import DEFAULT_THRESHOLDS, ContextOptions
from .model import Severity
from .sanitize import clean_text

CONFIG_NAME = ".tcpaudit.toml"


class ConfigError(ValueError):
    pass


class Waiver(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule: str
    target: str = "*"
    reason: str = Field(min_length=3)
    expires: _dt.date | None = None

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("a waiver needs a reason")
        return v.strip()

    @field_validator("rule")
    @classmethod
    def _known_rule(cls, v: str) -> str:
        """A waiver for a rule that does not exist (a typo, a rule id from another tool) would never match: the
        finding it was written for would keep failing, or a real one would go unwaived without anyone noticing."""
        msg = unknown_rule_message(v)
        if msg:
            raise ValueError(msg)
        return v.strip()


def unknown_rule_message(rule_id: str) -> str | None:
    """None for a known rule id or alias (any case); else 'unknown rule ...; did you mean ...?'."""
    import difflib

    from .rules.engine import catalogue

    v = rule_id.strip().upper()
    known = {rid.upper() for r in catalogue() for rid in (r.meta.id, *r.meta.aliases)}
    if v in known:
        return None
    typo = re.sub(r"(?<=\d)O|O(?=\d)", "0", v)  # TCP0O1: the letter O for a zero
    close = [typo] if typo in known else difflib.get_close_matches(v, sorted(known), n=1, cutoff=0.6)
    closest = close or difflib.get_close_matches(v, sorted(known), n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]}?" if close else f"; the closest known id is {closest[0]}" if closest else ""
    return f"unknown rule {clean_text(rule_id, 40)!r}{hint} (`tcpaudit rules` lists them)"


class RulesSection(BaseModel):
    model_config = ConfigDict(extra="forbid")
    disable: list[str] = Field(default_factory=list)

    @field_validator("disable")
    @classmethod
    def _known_rules(cls, v: list[str]) -> list[str]:
        """`disable = ["TCP0O1"]` would disable nothing: the run would fail on the rule the user meant to skip."""
        for rid in v:
            msg = unknown_rule_message(rid)
            if msg:
                raise ValueError(msg)
        return v


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    fail_on: Severity | None = None
    context: ContextOptions = Field(default_factory=ContextOptions)
    thresholds: dict[str, float] = Field(default_factory=dict)
    rules: RulesSection = Field(default_factory=RulesSection)
    waivers: list[Waiver] = Field(default_factory=list, alias="waiver")
    policy: dict[str, Any] | None = Field(default=None, description="[policy], parsed by tcpaudit.policy.parse_policy")
    path: str | None = None

    @field_validator("context", mode="before")
    @classmethod
    def _known_context_keys(cls, v: object) -> object:
        """A typo (`nat_idle_timout`) must not be silently ignored: the audit would assume another context."""
        if isinstance(v, dict):
            unknown = set(v) - set(ContextOptions.model_fields) - {"thresholds"}
            if unknown:
                raise ValueError(
                    f"unknown key(s) {', '.join(sorted(map(repr, unknown)))}; known: "
                    + ", ".join(k for k in ContextOptions.model_fields if k != "thresholds")
                )
        return v

    @field_validator("context")
    @classmethod
    def _known_profiles(cls, v: ContextOptions) -> ContextOptions:
        """Refused here, so the error names the config file (the audit would refuse them anyway)."""
        from .context import load_profiles

        unknown = [p for p in v.profiles if p not in load_profiles()]
        if unknown:
            raise ValueError(
                f"unknown profile(s) {', '.join(map(repr, unknown))}; known: " + ", ".join(sorted(load_profiles()))
            )
        return v

    @field_validator("thresholds")
    @classmethod
    def _known_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = set(v) - set(DEFAULT_THRESHOLDS)
        if unknown:
            raise ValueError(
                f"unknown threshold(s) {', '.join(sorted(unknown))}; known: {', '.join(DEFAULT_THRESHOLDS)}"
            )
        return v


def load_config(path: str | Path | None = None) -> Config:
    """Load `path`, or ./.tcpaudit.toml if it exists, or defaults."""
    explicit = path is not None
    try:
        p = Path(path) if path is not None else Path.cwd() / CONFIG_NAME
        exists = p.is_file()
    except OSError:  # an unreadable working directory has no config we could use
        exists, p = False, Path(path or CONFIG_NAME)
    if not exists:
        if explicit:
            raise ConfigError(f"{p}: config file not found")
        return Config()
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:  # tomllib lets int()'s digit limit and deep nesting through
        raise ConfigError(f"{p}: not valid TOML: {clean_text(exc, 200)}") from None
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        from .validation import first_error

        raise ConfigError(f"{p}: {first_error(exc)}") from None
    cfg.path = str(p)
    return cfg
