"""`tcpaudit host [user@]HOST[:PORT]`: audit one remote host over SSH (see tcpaudit.collect.ssh).

The SSH options are declared here once and shared by `host` (cli/host.py) and `fleet` (cli/fleet.py).
This module imports nothing heavy at import time: the command modules import it for the option declarations.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

# ---- shared SSH options -------------------------------------------------------------------------------
PortOpt = Annotated[
    int | None,
    typer.Option("--port", "-p", min=1, max=65535, help="SSH port (default: from the ssh config, else 22)."),
]
UserOpt = Annotated[
    str | None,
    typer.Option("--user", "-l", help="SSH user (default: from the ssh config, else the local user name)."),
]
SSHConfigOpt = Annotated[
    Path | None,
    typer.Option("--ssh-config", metavar="FILE", help="ssh_config file to use instead of ~/.ssh/config."),
]
KnownHostsOpt = Annotated[
    Path | None,
    typer.Option(
        "--known-hosts",
        metavar="FILE",
        help="known_hosts file (default: UserKnownHostsFile from the ssh config, else ~/.ssh/known_hosts).",
    ),
]
AcceptNewOpt = Annotated[
    bool,
    typer.Option(
        "--accept-new",
        help="Record host keys of hosts not yet in "
        "known_hosts (like StrictHostKeyChecking=accept-new). A changed key "
        "is always refused.",
    ),
]
SudoOpt = Annotated[
    bool,
    typer.Option(
        "--sudo",
        help="Run the collector as `sudo -n sh -s` (needs passwordless "
        "sudo) to read what only root can, e.g. NAT rules.",
    ),
]
IdentityOpt = Annotated[
    list[Path] | None,
    typer.Option(
        "--identity",
        "-i",
        metavar="FILE",
        help="Private key file (repeatable); ssh-agent and IdentityFile from the ssh config are used too.",
    ),
]
PasswordPromptOpt = Annotated[
    bool,
    typer.Option(
        "--password-prompt",
        help="Ask once (without echo) for a password, also used as the passphrase of encrypted keys.",
    ),
]
ConnectTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--connect-timeout",
        min=0.1,
        max=3600,
        metavar="SECONDS",
        help="Per-host limit for TCP "
        "connect, SSH handshake and authentication "
        "(default: ConnectTimeout from the ssh config, "
        "else 10).",
    ),
]
CommandTimeoutOpt = Annotated[
    float | None,
    typer.Option(
        "--command-timeout",
        min=0.1,
        max=86400,
        metavar="SECONDS",
        help="Per-host limit for the collector to finish (default 120).",
    ),
]

SSH_OPTION_NAMES = (
    "port",
    "user",
    "ssh_config",
    "known_hosts",
    "accept_new",
    "sudo",
    "identity",
    "password_prompt",
    "connect_timeout",
    "command_timeout",
)


def ssh_options_given(ssh: dict[str, Any]) -> list[str]:
    """The SSH options that were actually set (for `host` without a destination: an error)."""
    return [f"--{k.replace('_', '-')}" for k, v in ssh.items() if v not in (None, False, [], ())]


def make_settings(ssh: dict[str, Any], prompt_for: str = "the SSH hosts"):
    """SSHSettings from the CLI options; prompts for the password (no echo) when asked to."""
    from ..collect.ssh import DEFAULT_COMMAND_TIMEOUT, SSHSettings, validate_user

    user = ssh.get("user")
    if user is not None:
        validate_user(user)
    password = None
    if ssh.get("password_prompt"):
        import getpass

        try:
            password = getpass.getpass(f"SSH password or key passphrase for {prompt_for}: ")
        except (EOFError, OSError):
            password = None
        if not password:
            password = None
    return SSHSettings(
        ssh_config=ssh.get("ssh_config"),
        known_hosts=ssh.get("known_hosts"),
        accept_new=bool(ssh.get("accept_new")),
        sudo=bool(ssh.get("sudo")),
        identities=list(ssh.get("identity") or []),
        password=password,
        connect_timeout=ssh.get("connect_timeout"),
        command_timeout=ssh.get("command_timeout") or DEFAULT_COMMAND_TIMEOUT,
        user=user,
        port=ssh.get("port"),
    )


def audit_remote_host(
    destination: str,
    opts,
    formats,
    sample: float,
    save_snapshot: Path | None,
    verbose: bool,
    all_netns: bool = False,
    **ssh: Any,
) -> int:
    """Collect one host over SSH, audit it, emit the report; returns the exit code. all_netns: every network
    namespace of the host, each a target (tcpaudit.collect.netns_remote), in the same one SSH session."""
    from ..audit import audit_snapshot, build_report, failed_target
    from ..collect.ssh import SSHCollector, SSHSetupError, parse_destination
    from ..model import TargetStatus
    from ..sanitize import clean_text
    from ._common import UsageError, emit, write_snapshot

    if all_netns:
        for flag, given in (("--sample", sample > 0), ("--save-snapshot", save_snapshot is not None)):
            if given:
                raise UsageError(f"{flag} is not supported with --all-netns over SSH yet")
    try:
        dest = parse_destination(destination, user=ssh.get("user"), port=ssh.get("port"))
        settings = make_settings(ssh, prompt_for=dest.name)
        collector = SSHCollector(settings)
    except SSHSetupError as exc:
        raise UsageError(str(exc)) from None
    try:
        result = collector.collect(dest, sample_s=sample, all_netns=all_netns)
    finally:
        collector.close()
    netns_summary = None
    if result.status is TargetStatus.ok and result.netns is not None:
        from ..fleet import audit_host_netns

        targets, netns_summary = audit_host_netns(result, opts, dest.name)
    elif result.status is TargetStatus.ok and result.snapshot is not None:
        if save_snapshot:
            write_snapshot(result.snapshot, save_snapshot)
        targets = [audit_snapshot(result.snapshot, opts, name=dest.name)]
    else:
        targets = [failed_target(dest.name, result.status, result.error or result.status.value)]
        print(
            f"tcpaudit: {clean_text(dest.name)}: {result.status.value}: {clean_text(result.error or '')}",
            file=sys.stderr,
        )
    report = build_report(targets, opts.fail_on)
    if netns_summary is not None:
        report.extra.setdefault("netns", {}).update(netns_summary)
    return emit(report, formats, verbose)
