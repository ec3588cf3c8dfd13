"""Command line: each command parses options and calls one library function.

Report to stdout, logs and errors to stderr. Exit codes: tcpaudit.exitcodes.ExitCode.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from . import __version__
from . import cli_remote as _r  # SSH options of `host` (light: typer only)
from .exitcodes import ExitCode


class Interrupted(Exception):
    """Ctrl-C in a command that has no report to write: main() says so on stderr and exits 130.

    typer turns a KeyboardInterrupt into a silent `Exit(130)`; this is raised in its place so it is not.
    """


# Placeholders for options and arguments that do not set a metavar, by parameter name; the rest of an
# unset one is its name in capitals. typer would show Python types instead (`<list[str]>`, `<int range>`).
_METAVARS = {"output": "FILE", "jobs": "N", "paths": "PATH", "hosts": "HOST", "files": "FILE"}


def _tidy_placeholders(cmd) -> None:  # type: ignore[no-untyped-def]
    """Click-style placeholders in a command's help and usage: `--port PORT`, `FILE...`, `[PATH]...`.

    Applied to every command, including those cli_fleet and cli_lint register, so the style is set once.
    """
    for param in getattr(cmd, "params", ()):
        kind = getattr(param, "param_type_name", "")
        if kind == "option" and not (getattr(param, "is_flag", False) or getattr(param, "count", False)):
            if param.metavar is None:
                param.metavar = _METAVARS.get(param.name, param.name.upper())
        elif kind == "argument":
            base = param.metavar or _METAVARS.get(param.name, param.name.upper())
            if base.endswith("..."):
                base = base[:-3]
            variadic = param.nargs != 1
            param.metavar = base + ("..." if variadic else "")  # the help row and error messages
            usage = param.metavar if param.required else f"[{base}]" + ("..." if variadic else "")
            # instance attributes: typer's argument rows append the Python type and wrap usage in braces
            param.display_type_rich = lambda ctx: None
            param.get_usage_pieces = lambda ctx, usage=usage: [usage]


class _Group(TyperGroup):
    def get_command(self, ctx, cmd_name):  # type: ignore[no-untyped-def]
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not getattr(cmd, "_tcpaudit_tidy", False):
            _tidy_placeholders(cmd)
            cmd._tcpaudit_tidy = True  # type: ignore[attr-defined]
        return cmd

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


class _LeadingDashArgCommand(TyperCommand):
    """A command whose argument may start with '-' (`tcpaudit kernel -1.2`).

    A single-dash word that is not one of its options is its argument, so the argument's parser gives its
    one-line error instead of click's "No such option: -1". `--words` are still options.
    """

    def parse_args(self, ctx, args):  # type: ignore[no-untyped-def]
        takes_value: dict[str, bool] = {}
        for p in self.get_params(ctx):
            if getattr(p, "param_type_name", "") == "option":
                for name in (*p.opts, *p.secondary_opts):
                    takes_value[name] = not (p.is_flag or p.count)
        options: list[str] = []
        positional: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                positional += args[i + 1:]
                break
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg[:2]
            if arg.startswith("-") and arg != "-" and (arg.startswith("--") or name in takes_value):
                options.append(arg)
                attached = "=" in arg if arg.startswith("--") else len(arg) > 2
                if takes_value.get(name) and not attached and i + 1 < len(args):
                    i += 1
                    options.append(args[i])
            else:
                positional.append(arg)
            i += 1
        return super().parse_args(ctx, [*options, "--", *positional] if positional else options)


app = typer.Typer(
    name="tcpaudit",
    cls=_Group,
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
    typer.Option("--format", "-f", metavar="FORMAT[:PATH]", help="Output format: table, json, sarif, junit, "
                 "markdown; FORMAT:PATH writes to a file. Repeat for several (one may go to stdout)."),
]
FailOnOpt = Annotated[Optional[str], typer.Option("--fail-on", metavar="SEVERITY",
                                                  help="Exit 1 when a finding is at or above this severity: "
                                                  "info, low, medium, high (default), critical.")]
NatIdleOpt = Annotated[Optional[int], typer.Option("--nat-idle-timeout", min=1, metavar="SECONDS",
                                                   help="Idle timeout of a NAT or load balancer in the path.")]
ProfileOpt = Annotated[Optional[list[str]], typer.Option("--profile", metavar="PROFILE", help="Environment "
                                                         "profile (see `tcpaudit profiles`), e.g. azure-lb, "
                                                         "aws-nat-gateway.")]
ClientsNatOpt = Annotated[Optional[str], typer.Option("--clients-behind-nat", metavar="yes|no|unknown",
                                                      help="Whether clients may reach this host through NAT.")]
# readable=False on paths: typer's own check would answer an unreadable file with a usage block; the loaders
# report it in one line that names the file.
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", metavar="FILE", readable=False,
                                                   help="Config file (default: ./.tcpaudit.toml).")]
DisableOpt = Annotated[Optional[list[str]], typer.Option("--disable", metavar="RULE",
                                                         help="Rule id to skip (repeatable).")]
NoAutoOpt = Annotated[bool, typer.Option("--no-auto-context", help="Do not infer context from cloud, "
                                         "Kubernetes or NAT-rule hints.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Explanations, fixes and every gap in the table.")]
BaselineOpt = Annotated[Optional[Path], typer.Option("--baseline", metavar="FILE", readable=False,
                                                     help="Baseline from `tcpaudit baseline`: findings "
                                                     "recorded there show as suppressed and do not fail "
                                                     "the run.")]
TableJsonOpt = Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="table or json.")]


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
        if sep and path:
            _check_output_path(path)
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
            _write_text(path, text)
    return int(report.summary.exit_code)


def _check_output_path(path: str) -> None:
    """Refuse an output path that names a directory before any work is done. `newdir/` must not become a
    file named `newdir`, as Path('newdir/') would make it."""
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: is a directory; give a file name")
    if path.endswith(("/", os.sep)):
        raise UsageError(f"cannot write {path}: no such directory, and a path ending in '/' is not a file "
                         "name")


def _write_text(path: str | Path, text: str) -> None:
    _check_output_path(str(path))
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def _emit_interrupted(done: list, pending: list[str], opts,  # type: ignore[no-untyped-def]
                      formats: list[tuple[str, Optional[str]]], verbose: bool, what: str = "host") -> int:
    """Ctrl-C: the report of the targets done, the rest listed as `interrupted` (as `tcpaudit fleet` does);
    exit 130."""
    from .audit import build_report, failed_target
    from .model import TargetStatus

    typer.echo("tcpaudit: interrupted; the report covers the targets done", err=True)
    reason = f"interrupted before this {what} was done"
    targets = [*done, *(failed_target(name, TargetStatus.interrupted, reason) for name in pending)]
    return emit(build_report(targets, opts.fail_on, interrupted=True), formats, verbose)


# ---- commands ---------------------------------------------------------------------
@app.command(short_help="Audit this machine, or one remote host over SSH.")
def host(
    destination: Annotated[Optional[str], typer.Argument(metavar="HOST", show_default=False,
                                                         help="[user@]host[:port] to audit over SSH; omit to "
                                                         "audit this machine.")] = None,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    sample: Annotated[float, typer.Option("--sample", min=0, max=3600, metavar="SECONDS", show_default=False,
                                          help="Sample counters twice, SECONDS apart, and report rates.")] = 0.0,
    save_snapshot: Annotated[Optional[str], typer.Option("--save-snapshot", metavar="FILE",
                                                         help="Also save the snapshot to FILE.")] = None,
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
    if save_snapshot:
        _check_output_path(save_snapshot)
    if destination:
        from .cli_remote import audit_remote_host

        save = Path(save_snapshot) if save_snapshot else None
        try:
            code = audit_remote_host(destination, opts, formats, sample, save, verbose, **ssh)
        except KeyboardInterrupt:
            code = _emit_interrupted([], [_destination_name(destination, ssh)], opts, formats, verbose)
        raise typer.Exit(code)
    if _r.ssh_options_given(ssh):
        raise UsageError(f"{', '.join(_r.ssh_options_given(ssh))}: SSH options need a remote host: "
                         "tcpaudit host [user@]HOST ...")
    from .audit import audit_snapshot, build_report
    from .collect.local import collect_local

    try:
        snap = collect_local(sample_s=sample)
    except KeyboardInterrupt:
        import socket

        raise typer.Exit(_emit_interrupted([], [socket.gethostname()], opts, formats, verbose)) from None
    if save_snapshot:
        _write_snapshot(snap, save_snapshot)
    report = build_report([audit_snapshot(snap, opts)], opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))


def _destination_name(destination: str, ssh: dict) -> str:  # type: ignore[type-arg]
    """The report name of a remote host (as audit_remote_host names it), for an interrupted collection."""
    try:
        from .collect.ssh import parse_destination

        return parse_destination(destination, user=ssh.get("user"), port=ssh.get("port")).name
    except Exception:  # noqa: BLE001 - only a name for the report
        return destination


def _write_snapshot(snap, path: str | Path) -> None:  # type: ignore[no-untyped-def]
    _write_text(path, snap.model_dump_json(indent=1) + "\n")


@app.command(short_help="Save this machine's state to a snapshot file.")
def snapshot(
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE",
                                        help="Where to write the snapshot JSON ('-' for stdout).")],
    sample: Annotated[float, typer.Option("--sample", min=0, max=3600, metavar="SECONDS", show_default=False,
                                          help="Sample counters twice, SECONDS apart.")] = 0.0,
) -> None:
    """Collect this machine into a snapshot file, for `tcpaudit audit` later or elsewhere."""
    from .collect.local import collect_local

    if output != "-":
        _check_output_path(output)
    snap = collect_local(sample_s=sample)
    if output == "-":
        sys.stdout.write(snap.model_dump_json(indent=1) + "\n")
    else:
        _write_snapshot(snap, output)
        typer.echo(f"tcpaudit: wrote {output} ({len(snap.sysctls)} sysctls, {snap.sockets.total} sockets, "
                   f"{len(snap.gaps)} gaps)", err=True)


FilesArg = Annotated[list[Path], typer.Argument(metavar="FILE", readable=False, show_default=False,
                                                help="Snapshot JSON files, or collector dumps (`tcpaudit "
                                                "collector-script` output); '-' reads one from stdin.")]


def _load_snapshots(files: list[Path]) -> list:  # type: ignore[type-arg]
    from .loading import STDIN, load_snapshot_file

    if sum(1 for f in files if str(f) == STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    return [load_snapshot_file(p) for p in files]


@app.command(short_help="Audit saved snapshots or collector dumps offline.")
def audit(
    files: FilesArg,
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
    """Audit saved snapshots (`tcpaudit snapshot`) or collector dumps offline."""
    from .audit import audit_snapshot, build_report

    opts, _cfg = _audit_options(config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable,
                                no_auto_context, baseline)
    formats = _parse_formats(format)
    snaps = _load_snapshots(files)
    targets = []
    try:
        for snap in snaps:
            targets.append(audit_snapshot(snap, opts))
    except KeyboardInterrupt:
        pending = [s.hostname for s in snaps[len(targets):]]
        code = _emit_interrupted(targets, pending, opts, formats, verbose, what="snapshot")
        raise typer.Exit(code) from None
    report = build_report(targets, opts.fail_on)
    raise typer.Exit(emit(report, formats, verbose))


@app.command()
def schema() -> None:
    """Print the JSON Schema of the snapshot format."""
    import json

    from .snapshot import Snapshot

    # the dialect pydantic generates: JSON Schema 2020-12
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **Snapshot.model_json_schema()}
    typer.echo(json.dumps(schema, indent=2))


@app.command()
def rules(format: TableJsonOpt = "table") -> None:
    """List the rule catalogue."""
    from .catalogue import catalogue_json, catalogue_table

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    typer.echo(catalogue_json() if format == "json" else catalogue_table())


@app.command(short_help="Print everything about one rule.")
def explain(rule: Annotated[str, typer.Argument(metavar="RULE", show_default=False,
                                                help="Rule id, e.g. TCP001.")]) -> None:
    """Print the full text of one rule: mechanism, when it matters, fix, references."""
    from .catalogue import explain_rule

    typer.echo(explain_rule(rule))


@app.command(cls=_LeadingDashArgCommand, short_help="What a kernel release implies: sysctls, known issues.")
def kernel(
    release: Annotated[str, typer.Argument(metavar="RELEASE", show_default=False,
                                           help="Kernel release (`uname -r`), e.g. 5.4.0-137-generic or "
                                           "4.9.0.")],
    format: TableJsonOpt = "table",
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


@app.command(short_help="List environment profiles and their idle timeouts.")
def profiles(format: TableJsonOpt = "table") -> None:
    """List the environment profiles and their documented idle timeouts."""
    import json

    from tabulate import tabulate

    from .context import profile_summary

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    rows = profile_summary()
    if format == "json":
        typer.echo(json.dumps(rows, indent=2))
    else:
        typer.echo(tabulate([[r["id"], r["title"], r["idle_timeout"] or "-", r["clients_behind_nat"]] for r in rows],
                            headers=["profile", "environment", "idle timeout (s)", "clients behind NAT"]))


@app.command(short_help="Write a sysctl.d file with the fixes (never applied).")
def remediate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", readable=False, show_default=False,
                                                help="Snapshot files (or collector dumps; '-' for stdin) to "
                                                "write fixes for.")],
    output: Annotated[str, typer.Option("--output", "-o", metavar="FILE",
                                        help="sysctl.d file to write ('-' for stdout).")] = "-",
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Write a commented sysctl.d file with the fixes for a target's findings. Never applies anything."""
    from .audit import audit_snapshot
    from .remediation import sysctl_d_for

    opts, _ = _audit_options(config, None, nat_idle_timeout, profile, clients_behind_nat, None, False)
    if output != "-":
        _check_output_path(output)
    targets = [audit_snapshot(s, opts) for s in _load_snapshots(files)]
    text = sysctl_d_for(targets)
    if output == "-":
        sys.stdout.write(text)
    else:
        _write_text(output, text)


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


def _usage_line(exc) -> str:  # type: ignore[no-untyped-def]
    from .sanitize import clean_text

    message = " ".join(str(exc.format_message()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
    return clean_text(message, 500) + where


def main() -> None:
    try:
        code = app(standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, Interrupted):
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
        elif type(exc).__name__ == "NoArgsIsHelpError":  # bare `tcpaudit`: the help
            exc.show()
            code = ExitCode.USAGE
        elif hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors: one line
            typer.echo(f"tcpaudit: {_usage_line(exc)}", err=True)
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
