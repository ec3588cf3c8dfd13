"""What the command modules share: option declarations, audit options, output formats and writing, the
one-line usage error. Imports nothing heavy at import time (typer only); the library is imported lazily.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..exitcodes import ExitCode


class UsageError(Exception):
    """Bad input from the user: one line on stderr, exit 2."""


def die(message: str, code: ExitCode = ExitCode.USAGE) -> typer.Exit:
    from ..sanitize import clean_text

    typer.echo(f"tcpaudit: {clean_text(message, 1000)}", err=True)
    return typer.Exit(int(code))


# ---- terminal output: --color, -q, --show-suppressed (tcpaudit.terminal) ------------------------------------
# Every command printing human output declares ColorOpt; the report commands also QuietOpt and ShowSuppressedOpt.
# Their callbacks record the choice in tcpaudit.terminal; the command functions ignore the values.
def _set_color(value: str | None) -> str | None:
    from .. import terminal

    if value is not None:
        if value not in terminal.COLOR_MODES:
            raise typer.BadParameter(f"must be auto, always or never, not {value!r}")
        terminal.set_choices(color=value)
    return value


def _set_quiet(value: bool) -> bool:
    from .. import terminal

    if value:
        terminal.set_choices(quiet=True)
    return value


def _set_show_suppressed(value: bool) -> bool:
    from .. import terminal

    if value:
        terminal.set_choices(show_suppressed=True)
    return value


ColorOpt = Annotated[
    str | None,
    typer.Option(
        "--color",
        metavar="auto|always|never",
        callback=_set_color,
        show_default=False,
        help="Colour: auto (the default: on a terminal, unless NO_COLOR is set; FORCE_COLOR forces it), always, "
        "never. Pipes and files get no escape codes unless `always`.",
    ),
]
QuietOpt = Annotated[
    bool,
    typer.Option("--quiet", "-q", callback=_set_quiet, help="Only the findings and the summary line (for CI logs)."),
]
ShowSuppressedOpt = Annotated[
    bool,
    typer.Option(
        "--show-suppressed",
        callback=_set_show_suppressed,
        help="Also show findings suppressed by a baseline, waiver or inline comment (hidden and counted by "
        "default; the JSON, SARIF and other reports always carry them).",
    ),
]


def terminal_options(fmt: str, to_stdout: bool) -> dict[str, Any]:
    """width/color/quiet/show_suppressed for the terminal formats; colour only on stdout, never into a file."""
    from .. import terminal
    from ..reporters import TERMINAL_FORMATS

    if fmt not in TERMINAL_FORMATS:
        return {}
    c = terminal.choices()
    color = terminal.use_color() if to_stdout else False
    return {
        "width": terminal.width(),
        "color": color,
        "quiet": bool(c.quiet),
        "show_suppressed": bool(c.show_suppressed),
    }


# ---- shared options -------------------------------------------------------------
FormatOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--format",
        "-f",
        metavar="FORMAT[:PATH]",
        help="Output format: table, concise (one finding per line, for editors and grep), json, sarif, junit, "
        "markdown, html, prometheus; FORMAT:PATH writes to a file (atomically). "
        "Repeat for several (one may go to stdout).",
    ),
]
FailOnOpt = Annotated[
    str | None,
    typer.Option(
        "--fail-on",
        metavar="SEVERITY",
        help="Exit 1 when a finding is at or above this severity: info, low, medium, high (default), critical.",
    ),
]
NatIdleOpt = Annotated[
    int | None,
    typer.Option(
        "--nat-idle-timeout", min=1, metavar="SECONDS", help="Idle timeout of a NAT or load balancer in the path."
    ),
]
ProfileOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--profile",
        metavar="PROFILE",
        help="Environment profile (see `tcpaudit profiles`), e.g. azure-lb, aws-nat-gateway.",
    ),
]
ClientsNatOpt = Annotated[
    str | None,
    typer.Option(
        "--clients-behind-nat", metavar="yes|no|unknown", help="Whether clients may reach this host through NAT."
    ),
]
# readable=False on paths: typer's own check would answer an unreadable file with a usage block; the loaders
# report it in one line that names the file.
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", metavar="FILE", readable=False, help="Config file (default: ./.tcpaudit.toml)."),
]
DisableOpt = Annotated[
    list[str] | None, typer.Option("--disable", metavar="RULE", help="Rule id to skip (repeatable).")
]
NoAutoOpt = Annotated[
    bool, typer.Option("--no-auto-context", help="Do not infer context from cloud, Kubernetes or NAT-rule hints.")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Explanations, fixes and every gap in the table.")]
BaselineOpt = Annotated[
    Path | None,
    typer.Option(
        "--baseline",
        metavar="FILE",
        readable=False,
        help="Baseline from `tcpaudit baseline`: findings recorded there show as suppressed and do not fail the run.",
    ),
]
PolicyOpt = Annotated[
    Path | None,
    typer.Option(
        "--policy",
        metavar="FILE",
        readable=False,
        help="Policy file (declared values per sysctl, POL001); default: [policy] of the config file.",
    ),
]
TableJsonOpt = Annotated[str, typer.Option("--format", "-f", metavar="FORMAT", help="table or json.")]


def table_or_json(format: str) -> str:
    """--format of the listing commands (rules, kernel, profiles): table or json, in any case."""
    fmt = format.strip().lower()
    if fmt not in ("table", "json"):
        raise UsageError(f"--format must be table or json, not {format!r}")
    return fmt


def sampling_notice(sample_s: float) -> None:
    """`--sample N` waits N seconds between two reads of the counters: say so, on a terminal only (a pipe or a
    CI log gets the report's own line: 'counters sampled twice, N s apart')."""
    if sample_s > 0 and sys.stderr.isatty():
        typer.echo(f"tcpaudit: sampling counters for {sample_s:g} s (Ctrl-C stops and reports)...", err=True)


def check_socket_source_env() -> None:
    """TCPAUDIT_SOCKET_SOURCE with a value the collector does not know would silently mean `auto`."""
    mode = os.environ.get("TCPAUDIT_SOCKET_SOURCE")
    if mode:
        from ..collect.local import SOCKET_SOURCES

        if mode not in SOCKET_SOURCES:
            raise UsageError(f"TCPAUDIT_SOCKET_SOURCE={mode!r} is not one of {', '.join(SOCKET_SOURCES)}")


def check_rule_ids(ids: list[str], where: str = "--disable") -> None:
    """Unknown rule ids (a typo, another tool's id) would disable nothing: refuse them, with a suggestion."""
    from ..config import unknown_rule_message

    for rid in ids:
        msg = unknown_rule_message(rid)
        if msg:
            raise UsageError(f"{where}: {msg}")


def audit_options(
    config: Path | None,
    fail_on: str | None,
    nat_idle_timeout: int | None,
    profile: list[str] | None,
    clients_behind_nat: str | None,
    disable: list[str] | None,
    no_auto_context: bool,
    baseline: Path | None = None,
    policy: Path | None = None,
    kernel: str | None = None,
):
    from ..audit import AuditOptions
    from ..config import load_config
    from ..model import Severity
    from ..suppress import BaselineError, load_baseline

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
    check_rule_ids(list(disable or []))
    check_socket_source_env()
    sev = fail_on or (cfg.fail_on.value if cfg.fail_on else "high")
    try:
        sev_v = Severity(sev)
    except ValueError:
        raise UsageError(f"--fail-on must be one of info, low, medium, high, critical, not {sev!r}") from None
    from ..context import load_profiles

    for p in ctx.profiles:
        if p not in load_profiles():
            raise UsageError(f"unknown profile {p!r}; known: {', '.join(sorted(load_profiles()))}")
    try:
        base = load_baseline(baseline) if baseline is not None else None
    except BaselineError as exc:
        raise UsageError(str(exc)) from None
    return AuditOptions(
        context=ctx,
        disabled_rules=[*cfg.rules.disable, *(disable or [])],
        fail_on=sev_v,
        waivers=list(cfg.waivers),
        baseline=base,
        policy=load_policy(policy, cfg, kernel),
    ), cfg


def load_policy(path: Path | None, cfg: Any, kernel: str | None = None) -> Any:
    """--policy FILE, else [policy] of the config file, else None; checked against the knowledge base (and, for
    `lint --kernel`, against that kernel). A policy error is a usage error: one line, exit 2."""
    if path is None and cfg.policy is None:
        return None
    from ..audit import kernel_db, parse_release_or_none
    from ..policy import PolicyError, check_against_kb, load_policy_file, parse_policy

    try:
        kdb = kernel_db()
        pol = load_policy_file(path, kdb) if path is not None else parse_policy(cfg.policy, cfg.path or "config", kdb)
        release = parse_release_or_none(kernel)
        if release is not None:
            check_against_kb(pol, kdb, release)
    except PolicyError as exc:
        raise UsageError(str(exc)) from None
    return pol


def parse_formats(formats: list[str] | None) -> list[tuple[str, str | None]]:
    from ..reporters import FORMATS

    out: list[tuple[str, str | None]] = []
    for spec in formats or ["table"]:
        given, sep, path = spec.partition(":")
        fmt = given.strip().lower()  # --format JSON, --format Sarif:out.sarif
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {given!r} (choose from {', '.join(FORMATS)})")
        if sep and not path:
            raise UsageError(f"--format '{spec}': no file name after ':' (give {fmt}:FILE, or {fmt} for stdout)")
        out.append((fmt, path if sep and path else None))
        if sep and path:
            check_output_path(path)
    if sum(1 for _, p in out if p is None) > 1:
        raise UsageError("only one --format may go to stdout; give the others a path: --format sarif:out.sarif")
    return out


def emit(report, formats: list[tuple[str, str | None]], verbose: bool = False) -> int:
    from ..reporters import render

    for fmt, path in formats:
        text = render(report, fmt, verbose=verbose, **terminal_options(fmt, to_stdout=path is None))
        if path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_text(path, text)
    return int(report.summary.exit_code)


def check_output_path(path: str) -> None:
    """Refuse an output path that names a directory before any work is done. `newdir/` must not become a
    file named `newdir`, as Path('newdir/') would make it."""
    if os.path.isdir(path):
        raise UsageError(f"cannot write {path}: is a directory; give a file name")
    if path.endswith(("/", os.sep)):
        raise UsageError(f"cannot write {path}: no such directory, and a path ending in '/' is not a file name")


def write_text(path: str | Path, text: str) -> None:
    """Every report and snapshot file goes through here: written atomically (tcpaudit.atomicfile), so a killed
    run, a full disk or a second tcpaudit writing the same file leaves the previous file intact. Failure raises
    OutputError, which main() turns into one line and exit 5."""
    from ..atomicfile import write_atomic

    check_output_path(str(path))
    write_atomic(path, text)


def emit_interrupted(
    done: list,
    pending: list[str],
    opts,
    formats: list[tuple[str, str | None]],
    verbose: bool,
    what: str = "host",
) -> int:
    """Ctrl-C: the report of the targets done, the rest listed as `interrupted` (as `tcpaudit fleet` does);
    exit 130."""
    from ..audit import build_report, failed_target
    from ..model import TargetStatus

    typer.echo("tcpaudit: interrupted; the report covers the targets done", err=True)
    reason = f"interrupted before this {what} was done"
    targets = [*done, *(failed_target(name, TargetStatus.interrupted, reason) for name in pending)]
    return emit(build_report(targets, opts.fail_on, interrupted=True), formats, verbose)


def write_snapshot(snap, path: str | Path) -> None:
    write_text(path, snap.model_dump_json(indent=1) + "\n")


FilesArg = Annotated[
    list[Path],
    typer.Argument(
        metavar="FILE",
        readable=False,
        show_default=False,
        help="Snapshot JSON files, or collector dumps (`tcpaudit collector-script` output); '-' reads one from stdin.",
    ),
]


def load_snapshots(files: list[Path]) -> list:
    from ..loading import STDIN, load_snapshot_file

    if sum(1 for f in files if str(f) == STDIN) > 1:
        raise UsageError("'-' (stdin) can be given only once")
    return [load_snapshot_file(p) for p in files]
