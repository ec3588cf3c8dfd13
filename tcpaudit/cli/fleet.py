"""`tcpaudit fleet` (audit many hosts over SSH) and `tcpaudit collector-script` (print the shell collector)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, TextIO

import typer

from . import _remote as _r
from ._app import app
from ._common import (
    BaselineOpt,
    ClientsNatOpt,
    ColorOpt,
    ConfigOpt,
    DisableOpt,
    FailOnOpt,
    FormatOpt,
    NatIdleOpt,
    NoAutoOpt,
    PolicyOpt,
    ProfileOpt,
    QuietOpt,
    ShowSuppressedOpt,
    UsageError,
    VerboseOpt,
    audit_options,
    parse_formats,
    write_text,
)


@app.command("fleet", short_help="Audit many hosts over SSH in parallel, with drift.")
def fleet(
    hosts: Annotated[
        list[str] | None, typer.Argument(help="[user@]host[:port] or ssh-config aliases.", show_default=False)
    ] = None,
    inventory: Annotated[
        list[str] | None,
        typer.Option(
            "--inventory",
            "-I",
            metavar="FILE",
            help="Host list (one per line, # comments, [group] headers) or "
            "`ansible-inventory --list` JSON; '-' reads stdin. Repeatable.",
        ),
    ] = None,
    ssh_config_hosts: Annotated[
        bool,
        typer.Option("--ssh-config-hosts", help="Also audit every concrete Host (no wildcards) of the ssh config."),
    ] = False,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs",
            "-j",
            min=1,
            max=1024,
            help="Hosts audited in parallel (default: min(32, hosts)). The controller needs ~20-40 ms of CPU per "
            "host (SSH, parsing, rules) on about one core, so 32 hosts in flight keep it busy at ~1 s per host; "
            "more only helps hosts slower than that. Open files stay ~3 + jobs at any fleet size "
            "(docs/benchmarks.md).",
        ),
    ] = None,
    detail: Annotated[
        bool, typer.Option("--detail", help="Print each host's findings, not only the fleet summary.")
    ] = False,
    save_snapshots: Annotated[
        Path | None, typer.Option("--save-snapshots", metavar="DIR", help="Also save each host's snapshot to DIR.")
    ] = None,
    sample: Annotated[
        float,
        typer.Option(
            "--sample",
            min=0,
            max=3600,
            metavar="SECONDS",
            help="Sample counters twice, SECONDS apart (two commands per host).",
        ),
    ] = 0.0,
    all_netns: Annotated[
        bool,
        typer.Option(
            "--all-netns",
            help="Also audit every network namespace of each host (pods, containers, `ip netns`), each a target "
            "`HOST/netns:NAME`, in the same one SSH session; entering them needs root on the host (or --sudo) "
            "and nsenter.",
        ),
    ] = False,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    no_auto_context: NoAutoOpt = False,
    baseline: BaselineOpt = None,
    policy: PolicyOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    color: ColorOpt = None,
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
    """Audit many hosts over SSH in parallel: per-host status, rules by hosts affected, and sysctl drift.

    Exit 3 when any host could not be audited, else 1 on findings at or above --fail-on, else 0;
    Ctrl-C stops, still writes the report for the hosts done, and exits 130. On a terminal (not in CI)
    stderr shows a progress line: hosts done, failed and in flight.

    Timeouts are per host: --connect-timeout (default 10 s) covers TCP, key exchange and authentication,
    which take well under a second even with 32 handshakes in flight on a busy 2-core controller; a host
    silent that long is down or filtered. --command-timeout (default 120 s) bounds the collector, which
    takes ~0.3-1 s on a normal host and longer only on very large socket or conntrack tables.
    """
    ssh = {k: v for k, v in locals().items() if k in _r.SSH_OPTION_NAMES}
    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, no_auto_context, baseline, policy
    )
    formats = parse_formats(format)
    if all_netns:
        for flag, given in (("--sample", sample > 0), ("--save-snapshots", save_snapshots is not None)):
            if given:
                raise UsageError(f"{flag} is not supported with --all-netns yet")

    from ..collect.ssh import SSHCollector, SSHSetupError, concrete_config_hosts, parse_destination
    from ..fleet import InventoryError, dedupe, fleet_report, load_inventory, sweep

    try:
        dests = []
        for spec in inventory or []:
            dests += load_inventory(spec)
        for h in hosts or []:
            dests.append(parse_destination(h, user=user, port=port))
        if ssh_config_hosts:
            from ..collect.ssh import load_ssh_config

            dests += [parse_destination(h) for h in concrete_config_hosts(load_ssh_config(ssh_config))]
    except (InventoryError, SSHSetupError) as exc:
        raise UsageError(str(exc)) from None
    dropped: list[str] = []
    dests = dedupe(dests, dropped)
    for line in dropped:
        typer.echo(f"tcpaudit: {line}", err=True)
    if not dests:
        raise UsageError("no hosts: give hosts, --inventory FILE, or --ssh-config-hosts")
    if opts.policy is not None:
        from ..fleet import DEFAULT_GROUP
        from ..policy import PolicyError, check_groups

        try:
            check_groups(opts.policy, {d.group or DEFAULT_GROUP for d in dests})
        except PolicyError as exc:
            raise UsageError(str(exc)) from None
    try:
        settings = _r.make_settings(ssh, prompt_for="the fleet")
        collector = SSHCollector(settings)
    except SSHSetupError as exc:
        raise UsageError(str(exc)) from None

    progress = Progress(len(dests), sys.stderr) if progress_wanted(sys.stderr, os.environ) else None
    try:
        result = sweep(
            dests,
            collector,
            opts,
            jobs=jobs,
            sample_s=sample,
            on_done=progress.advance if progress else None,
            save_dir=save_snapshots,
            on_start=progress.start if progress else None,
            all_netns=all_netns,
        )
    finally:
        if progress:
            progress.stop()
        collector.close()
    if result.interrupted:
        typer.echo("tcpaudit: interrupted; the report covers the hosts done", err=True)
    report = fleet_report(result, opts.fail_on, opts.policy)
    raise typer.Exit(_emit(report, formats, verbose, detail))


def _emit(report, formats, verbose: bool, detail: bool) -> int:
    from .. import terminal
    from ..reporters import render
    from ..reporters.fleet_view import fleet_renderables
    from ._common import terminal_options

    for fmt, path in formats:
        term = terminal_options(fmt, to_stdout=path is None)
        if fmt == "table" and not detail:
            parts = fleet_renderables(report, term["color"])
            text = terminal.render([*parts, terminal.text(_summary_line(report))], term["width"], term["color"])
        else:
            text = render(report, fmt, verbose=verbose, **term)
        if path is None:
            sys.stdout.write(text)
            sys.stdout.flush()
        else:
            write_text(path, text)  # atomic, like every other report file; OutputError -> exit 5
    return int(report.summary.exit_code)


def _summary_line(report) -> str:
    s = report.summary
    order = ["critical", "high", "medium", "low", "info"]
    sev = ", ".join(f"{s.by_severity[k]} {k}" for k in order if s.by_severity.get(k))
    netns = sum(1 for t in report.targets if t.kind == "netns")
    what = f"{s.targets - netns} host(s) and {netns} namespace(s)" if netns else f"{s.targets} host(s)"
    return (
        f"{what}, {s.targets_ok} audited, {s.targets_failed} failed; {s.findings} finding(s)"
        + (f" ({sev})" if sev else "")
        + (f", {s.suppressed} suppressed" if s.suppressed else "")
        + f"; fail-on {s.fail_on}: exit {s.exit_code} (--detail for each host's findings)"
    )


def progress_wanted(stream: TextIO, environ: Mapping[str, str]) -> bool:
    """A progress line only for a person watching: stderr is a terminal, not a dumb one, and not in CI
    (`CI` set, as GitHub Actions, GitLab CI and most others set it)."""
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        return False
    ci = environ.get("CI", "").strip().lower()
    return tty and ci in ("", "0", "false", "no") and environ.get("TERM", "") != "dumb"


class Progress:
    """One self-rewriting line on stderr: `auditing [####....] 412/1000 done, 3 failed, 32 in flight, 0:41`.

    Redrawn at most every `interval` seconds by its own thread (hosts start in worker threads and finish in
    the sweep's thread; neither waits for the terminal), and erased by stop(), so the report that follows
    on stdout and any message on stderr start on a clean line. Only used when progress_wanted() says so.
    """

    def __init__(self, total: int, stream: TextIO, interval: float = 0.2):
        self.total = total
        self.stream = stream
        self.interval = interval
        self.done = self.failed = self.started = 0
        self._t0 = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._shown = ""
        self._thread = threading.Thread(target=self._run, name="tcpaudit-progress", daemon=True)
        self._thread.start()

    def start(self, _dest: object) -> None:
        with self._lock:
            self.started += 1

    def advance(self, target) -> None:
        with self._lock:
            self.done += 1
            if target.status.value != "ok":
                self.failed += 1

    def line(self, width: int) -> str:
        with self._lock:
            done, failed, flight = self.done, self.failed, max(0, self.started - self.done)
        secs = int(time.monotonic() - self._t0)
        text = f" {done}/{self.total} done, {failed} failed, {flight} in flight, {secs // 60}:{secs % 60:02d}"
        bar_w = min(30, width - len(text) - len("auditing [] "))
        if bar_w >= 5:
            filled = bar_w * done // max(1, self.total)
            return f"auditing [{'#' * filled}{'.' * (bar_w - filled)}]{text}"
        return ("auditing" + text)[: max(0, width - 1)]

    def _width(self) -> int:
        try:
            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (OSError, ValueError, AttributeError):
            return 80

    def _draw(self, text: str) -> None:
        try:
            self.stream.write("\r" + text + "\x1b[K")
            self.stream.flush()
        except (OSError, ValueError):
            self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            text = self.line(self._width())
            if text != self._shown:
                self._shown = text
                self._draw(text)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        if self._shown:
            self._draw("")


@app.command("collector-script", short_help="Print the read-only sh collector, for any remote engine.")
def collector_script(
    what: Annotated[
        str | None,
        typer.Argument(
            metavar="[path]",
            help="`path`: print the installed script's file name instead (for `ansible -m script -a PATH`).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the read-only shell collector: `sh collector.sh > dump.txt`, then `tcpaudit audit dump.txt`.

    `tcpaudit collector-script path` prints where the installed script is, for engines that copy a script
    file themselves: `ansible all -m script -a "$(tcpaudit collector-script path)" -t DIR`, then
    `tcpaudit audit DIR`.
    """
    if what is not None:
        if what != "path":
            raise UsageError(f"collector-script takes no argument or `path`, not {what!r}")
        from importlib import resources

        script = resources.files("tcpaudit.collect").joinpath("collector.sh")
        if not isinstance(script, Path) or not script.is_file():
            raise UsageError("the collector is not installed as a file here; use `tcpaudit collector-script > FILE`")
        sys.stdout.write(f"{script}\n")
        return
    from ..collect.dump import collector_script as script_text

    sys.stdout.write(script_text())
    sys.stdout.flush()
