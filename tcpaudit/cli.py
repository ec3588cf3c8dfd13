"""Command line: each command parses options and calls one library function.

Report to stdout, logs and errors to stderr. Exit codes: tcpaudit.exitcodes.ExitCode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from . import cli_remote as _r  # SSH options of `host` (light: typer only)
from .exitcodes import ExitCode

app = typer.Typer(
    name="tcpaudit",
    help="Find the Linux TCP/NAT/conntrack settings that make connections fail in ways that look random.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageError(Exception):
    """Bad input from the user: one line on stderr, exit 2."""


def die(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    from .sanitize import clean_text

    typer.echo(f"tcpaudit: {clean_text(message, 1000)}", err=True)
    return typer.Exit(int(code))


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tcpaudit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """tcpaudit audits one host, a fleet over SSH, saved snapshots, or config files before they ship."""


# ---- shared options -------------------------------------------------------------
FormatOpt = Annotated[
    Optional[list[str]],
    typer.Option("--format", "-f", help="Output format: table, json, sarif, junit, markdown; FORMAT:PATH writes "
                 "to a file. Repeat for several (one may go to stdout)."),
]
FailOnOpt = Annotated[Optional[str], typer.Option("--fail-on", help="Exit 1 when a finding is at or above this "
                                                  "severity: info, low, medium, high (default), critical.")]
NatIdleOpt = Annotated[Optional[int], typer.Option("--nat-idle-timeout", min=1, metavar="SECONDS",
                                                   help="Idle timeout of a NAT or load balancer in the path.")]
ProfileOpt = Annotated[Optional[list[str]], typer.Option("--profile", help="Environment profile (see "
                                                         "`tcpaudit profiles`), e.g. azure-lb, aws-nat-gateway.")]
ClientsNatOpt = Annotated[Optional[str], typer.Option("--clients-behind-nat", metavar="yes|no|unknown",
                                                      help="Whether clients may reach this host through NAT.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="Config file (default: ./.tcpaudit.toml).")]
DisableOpt = Annotated[Optional[list[str]], typer.Option("--disable", help="Rule id to skip (repeatable).")]
NoAutoOpt = Annotated[bool, typer.Option("--no-auto-context", help="Do not infer context from cloud, "
                                         "Kubernetes or NAT-rule hints.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Explanations, fixes and every gap in the table.")]
BaselineOpt = Annotated[Optional[Path], typer.Option("--baseline", help="Baseline from `tcpaudit baseline`: findings "
                                                     "recorded there show as suppressed and do not fail the run.")]


def _audit_options(config: Optional[Path], fail_on: Optional[str], nat_idle_timeout: Optional[int],
                   profile: Optional[list[str]], clients_behind_nat: Optional[str], disable: Optional[list[str]],
                   no_auto_context: bool, baseline: Optional[Path] = None):  # type: ignore[no-untyped-def]
    from .audit import AuditOptions
    from .config import load_config
    from .model import Severity
    from .suppress import BaselineError, load_baseline

    cfg = load_config(config)
    ctx = cfg.context.model_copy()
    if nat_idle_timeout is not None:
        ctx.nat_idle_timeout = nat_idle_timeout
    if profile:
        ctx.profiles = list(profile)
    if clients_behind_nat is not None:
        if clients_behind_nat not in ("yes", "no", "unknown"):
            raise UsageError(f"--clients-behind-nat must be yes, no or unknown, not {clients_behind_nat!r}")
        ctx.clients_behind_nat = clients_behind_nat  # type: ignore[assignment]
    if no_auto_context:
        ctx.auto_detect = False
    ctx.thresholds = {**cfg.thresholds, **ctx.thresholds}
    sev = fail_on or (cfg.fail_on.value if cfg.fail_on else "high")
    try:
        sev_v = Severity(sev)
    except ValueError:
        raise UsageError(f"--fail-on must be one of info, low, medium, high, critical, not {sev!r}") from None
    from .context import load_profiles

    for p in ctx.profiles:
        if p not in load_profiles():
            raise UsageError(f"unknown profile {p!r}; known: {', '.join(sorted(load_profiles()))}")
    try:
        base = load_baseline(baseline) if baseline is not None else None
    except BaselineError as exc:
        raise UsageError(str(exc)) from None
    return AuditOptions(context=ctx, disabled_rules=[*cfg.rules.disable, *(disable or [])], fail_on=sev_v,
                        waivers=list(cfg.waivers), baseline=base), cfg


def _parse_formats(formats: Optional[list[str]]) -> list[tuple[str, Optional[str]]]:
    from .reporters import FORMATS

    out: list[tuple[str, Optional[str]]] = []
    for spec in formats or ["table"]:
        fmt, sep, path = spec.partition(":")
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r} (choose from {', '.join(FORMATS)})")
        out.append((fmt, path if sep and path else None))
    if sum(1 for _, p in out if p is None) > 1:
        raise UsageError("only one --format may go to stdout; give the others a path: --format sarif:out.sarif")
    return out


def emit(report, formats: list[tuple[str, Optional[str]]], verbose: bool = False) -> int:  # type: ignore[no-untyped-def]
    from .reporters import render

    for fmt, path in formats:
        text = render(report, fmt, verbose=verbose)
        if path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            try:
                Path(path).write_text(text, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return int(report.summary.exit_code)


# ---- commands ---------------------------------------------------------------------
@app.command()
def host(
    destination: Annotated[Optional[str], typer.Argument(help="[user@]host[:port] to audit over SSH; "
                                                         "omit to audit this machine.", show_default=False)] = None,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    sample: Annotated[float, typer.Option("--sample", min=0, max=3600, metavar="SECONDS",
                                          help="Sample counters twice, SECONDS apart, and report rates.")] = 0.0,
    save_snapshot: Annotated[Optional[Path], typer.Option("--save-snapshot", help="Also save the snapshot.")] = None,
    verbose: VerboseOpt = False,
    baseline: BaselineOpt = None,
    port: _r.PortOpt = None,
    user: _r.UserOpt = None,
    ssh_config: _r.SSHConfigOpt = None,
    known_hosts: _r.KnownHostsOpt = None,
    accept_new: _r.AcceptNewOpt = False,
    sudo: _r.SudoOpt = False,
    identity: _r.IdentityOpt = None,
    password_prompt: _r.PasswordPromptOpt = False,
    connect_timeout: _r.ConnectTimeoutOpt = None,
    command_timeout: _r.CommandTimeoutOpt = None,
) -> None:
    """Audit this machine (or one remote host over SSH) and report risks with evidence and fixes."""
    ssh = {k: v for k, v in locals().items() if k in _r.SSH_OPTION_NAMES}
    opts, _cfg = _audit_options(config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable,
                                no_auto_context, baseline)
    formats = _parse_formats(format)
    if destination:
        from .cli_remote import audit_remote_host

        raise typer.Exit(audit_remote_host(destination, opts, formats, sample, save_snapshot, verbose, **ssh))
    if _r.ssh_options_given(ssh):
        raise UsageError(f"{', '.join(_r.ssh_options_given(ssh))}: SSH options need a remote host: "
                         "tcpaudit host [user@]HOST ...")
    from .audit import audit_snapshot, build_report
    from .collect.local import collect_local

    snap = collect_local(sample_s=sample)
    if save_snapshot:
        _write_snapshot(snap, save_snapshot)
    report = build_report([audit_snapshot(snap, opts)], opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))


def _write_snapshot(snap, path: Path) -> None:  # type: ignore[no-untyped-def]
    try:
        path.write_text(snap.model_dump_json(indent=1) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


@app.command()
def snapshot(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the snapshot JSON ('-' for stdout).")],
    sample: Annotated[float, typer.Option("--sample", min=0, max=3600, metavar="SECONDS",
                                          help="Sample counters twice, SECONDS apart.")] = 0.0,
) -> None:
    """Collect this machine into a snapshot file, for `tcpaudit audit` later or elsewhere."""
    from .collect.local import collect_local

    snap = collect_local(sample_s=sample)
    if str(output) == "-":
        sys.stdout.write(snap.model_dump_json(indent=1) + "\n")
    else:
        _write_snapshot(snap, output)
        typer.echo(f"tcpaudit: wrote {output} ({len(snap.sysctls)} sysctls, {snap.sockets.total} sockets, "
                   f"{len(snap.gaps)} gaps)", err=True)


@app.command()
def audit(
    files: Annotated[list[Path], typer.Argument(help="Snapshot JSON files, or collector dumps "
                                                "(`tcpaudit collector-script` output).")],
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    verbose: VerboseOpt = False,
    baseline: BaselineOpt = None,
) -> None:
    """Audit saved snapshots offline."""
    from .audit import audit_snapshot, build_report
    from .loading import load_snapshot_file

    opts, _cfg = _audit_options(config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable,
                                no_auto_context, baseline)
    formats = _parse_formats(format)
    snaps = [load_snapshot_file(p) for p in files]
    report = build_report([audit_snapshot(s, opts) for s in snaps], opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the snapshot format."""
    import json

    from .snapshot import Snapshot

    typer.echo(json.dumps(Snapshot.model_json_schema(), indent=2))


@app.command()
def rules(
    format: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """List the rule catalogue."""
    from .catalogue import catalogue_json, catalogue_table

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    typer.echo(catalogue_json() if format == "json" else catalogue_table())


@app.command()
def explain(rule: Annotated[str, typer.Argument(help="Rule id, e.g. TCP001.")]) -> None:
    """Print the full text of one rule: mechanism, when it matters, fix, references."""
    from .catalogue import explain_rule

    typer.echo(explain_rule(rule))


@app.command()
def kernel(
    release: Annotated[str, typer.Argument(help="Kernel release, e.g. 5.4.0-137-generic or 4.9.0.")],
    format: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table",
) -> None:
    """What a kernel release implies: sysctls present or absent with defaults, known issues."""
    import json

    from .kernel.release import KernelReleaseError
    from .kernel.summary import kernel_summary, render_kernel_summary_table

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    try:
        summary = kernel_summary(release)
    except KernelReleaseError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(json.dumps(summary, indent=2) if format == "json" else render_kernel_summary_table(summary))


@app.command()
def profiles(format: Annotated[str, typer.Option("--format", "-f", help="table or json")] = "table") -> None:
    """List the environment profiles and their documented idle timeouts."""
    import json

    from tabulate import tabulate

    from .context import profile_summary

    rows = profile_summary()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(tabulate([[r["id"], r["title"], r["idle_timeout"] or "-", r["clients_behind_nat"]] for r in rows],
                            headers=["profile", "environment", "idle timeout (s)", "clients behind NAT"]))


@app.command()
def remediate(
    files: Annotated[list[Path], typer.Argument(help="Snapshot files to write fixes for.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="sysctl.d file to write ('-' for stdout).")]
    = Path("-"),
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a commented sysctl.d file with the fixes for a target's findings. Never applies anything."""
    from .audit import audit_snapshot
    from .loading import load_snapshot_file
    from .remediation import sysctl_d_for

    opts, _ = _audit_options(config, None, nat_idle_timeout, profile, clients_behind_nat, None, False)
    targets = [audit_snapshot(load_snapshot_file(p), opts) for p in files]
    text = sysctl_d_for(targets)
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None


def _register_optional() -> None:
    """Commands that live in their own modules (fleet, lint, ...), registered if present."""
    import importlib

    for name in ("cli_fleet", "cli_lint"):
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        mod.register(app)


_register_optional()


# Errors main() reports as one line, by (module, class). They are looked up in sys.modules when something
# is raised instead of imported up front: a class can only have been raised if its module was imported,
# and importing them eagerly (tcpaudit.catalogue pulls in tabulate, the rule base and every pydantic
# model) cost every command ~150 ms before it parsed its arguments (docs/benchmarks.md).
_USAGE_ERRORS = (("catalogue", "UnknownRuleError"), ("config", "ConfigError"), ("context", "UnknownProfileError"),
                 ("loading", "SnapshotFileError"))


def _raised_types(*names: tuple[str, str]) -> tuple[type, ...]:
    out = []
    for module, name in names:
        cls = getattr(sys.modules.get(f"{__package__}.{module}"), name, None)
        if isinstance(cls, type):
            out.append(cls)
    return tuple(out)


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except KeyboardInterrupt:
        typer.echo("tcpaudit: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - never a traceback for users
        if isinstance(exc, (UsageError, *_raised_types(*_USAGE_ERRORS))):
            typer.echo(f"tcpaudit: {exc}", err=True)
            code = ExitCode.USAGE
        elif isinstance(exc, _raised_types(("rules.engine", "RuleLoadError"))):
            typer.echo(f"tcpaudit: rule catalogue failed to load: {exc}", err=True)
            code = ExitCode.INTERNAL
        # typer vendors click in recent releases and uses click in older ones: duck-type its exceptions.
        elif type(exc).__name__ == "Abort":
            typer.echo("tcpaudit: interrupted", err=True)
            code = ExitCode.INTERRUPTED
        elif hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            code = ExitCode.USAGE
        else:
            if os.environ.get("TCPAUDIT_DEBUG"):
                raise
            typer.echo(f"tcpaudit: internal error: {type(exc).__name__}: {exc} "
                       "(set TCPAUDIT_DEBUG=1 for a traceback)", err=True)
            code = ExitCode.INTERNAL
    sys.exit(int(code or 0))


if __name__ == "__main__":  # pragma: no cover
    main()
