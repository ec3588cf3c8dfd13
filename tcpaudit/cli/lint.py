"""`tcpaudit lint` and `tcpaudit baseline`: gate configuration in CI before it ships."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

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
    PolicyOpt,
    ProfileOpt,
    QuietOpt,
    ShowSuppressedOpt,
    UsageError,
    VerboseOpt,
    audit_options,
    emit,
    parse_formats,
)

PathsArg = Annotated[
    list[Path] | None,
    typer.Argument(
        help="sysctl.conf / sysctl.d files, `sysctl -w` lists, tuned profiles, Markdown notes, Ansible/Salt YAML, "
        "Kubernetes manifests, docker-compose files, JSON patches; directories are walked. Each is linted on "
        "its own, in the order given.",
        show_default=False,
    ),
]
RootOpt = Annotated[
    Path | None,
    typer.Option(
        "--root",
        metavar="DIR",
        help="Lint the tree under DIR as `sysctl --system` applies it at boot: "
        "DIR/etc/sysctl.d, /run/sysctl.d, /usr/local/lib/sysctl.d, /usr/lib/sysctl.d, /lib/sysctl.d, then "
        "DIR/etc/sysctl.conf.",
    ),
]
KernelOpt = Annotated[
    str | None,
    typer.Option(
        "--kernel",
        metavar="RELEASE",
        help="Kernel the config is for, e.g. 5.15.0 or 3.10.0-1160.el7.x86_64 "
        "(default: a current kernel, or kernel.osrelease in a `sysctl -a` capture).",
    ),
]
MergeOpt = Annotated[
    bool,
    typer.Option("--merge", help="Apply all PATHs as one configuration, in the order given (like `sysctl -p A -p B`)."),
]
K8sVersionOpt = Annotated[
    str | None,
    typer.Option(
        "--k8s-version",
        metavar="X.Y",
        help="Kubernetes release the manifests are for, e.g. 1.29: decides which pod "
        "sysctls the kubelet accepts by default (default: [context] kubernetes_version, else a recent release, "
        "stated in the findings).",
    ),
]


def _check_kernel(kernel: str | None) -> None:
    if kernel is None:
        return
    from ..kernel.release import KernelReleaseError, parse_release

    try:
        parse_release(kernel)
    except KernelReleaseError as exc:
        raise UsageError(f"--kernel: {exc}") from None


def _set_k8s_version(opts, version: str | None) -> None:
    if version is None:
        return
    from ..kernel.kubernetes import KubernetesVersionError, parse_k8s_version

    try:
        parse_k8s_version(version)
    except KubernetesVersionError as exc:
        raise UsageError(f"--k8s-version: {exc}") from None
    opts.context.kubernetes_version = version.strip()


def _lint_targets(paths: list[Path] | None, root: Path | None, kernel: str | None, merge: bool, opts):
    from ..lint import LintInputError, lint_units, root_unit, units_for_paths

    if not paths and root is None:
        raise UsageError("nothing to lint: give PATH... or --root DIR")
    _check_kernel(kernel)
    try:
        units = ([root_unit(root)] if root is not None else []) + (units_for_paths(paths, merge) if paths else [])
    except LintInputError as exc:
        raise UsageError(str(exc)) from None
    return lint_units(units, opts, kernel)


@app.command("lint", short_help="Lint sysctl config before it ships (files, k8s, compose).")
def lint(
    paths: PathsArg = None,
    root: RootOpt = None,
    kernel: KernelOpt = None,
    merge: MergeOpt = False,
    k8s_version: K8sVersionOpt = None,
    format: FormatOpt = None,
    fail_on: FailOnOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
    baseline: BaselineOpt = None,
    policy: PolicyOpt = None,
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    show_suppressed: ShowSuppressedOpt = False,
    color: ColorOpt = None,
) -> None:
    """Lint sysctl configuration with the same rules as hosts, for a target kernel, before it ships."""
    from ..audit import build_report

    opts, _cfg = audit_options(
        config, fail_on, nat_idle_timeout, profile, clients_behind_nat, disable, False, baseline, policy, kernel
    )
    _set_k8s_version(opts, k8s_version)
    formats = parse_formats(format)
    targets = _lint_targets(paths, root, kernel, merge, opts)
    raise typer.Exit(emit(build_report(targets, opts.fail_on), formats, verbose))


def _is_snapshot(p: Path) -> bool:
    """Snapshot JSON or a collector dump (audited), as opposed to a config file (linted)."""
    if not p.is_file():
        return False
    from ..collect import dump as _dump

    try:
        with open(p, "rb") as f:
            head = f.read(1 << 20)
    except OSError:
        return False
    if head.lstrip()[:1] == b"{":
        return b'"collected_at"' in head and b'"hostname"' in head
    return bool(_dump.looks_like_dump(head))


@app.command("baseline", short_help="Record today's findings so that only new ones fail.")
def baseline(
    paths: PathsArg = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="Baseline file to write ('-' for stdout).")] = Path(
        "-"
    ),
    root: RootOpt = None,
    kernel: KernelOpt = None,
    merge: MergeOpt = False,
    k8s_version: K8sVersionOpt = None,
    nat_idle_timeout: NatIdleOpt = None,
    profile: ProfileOpt = None,
    clients_behind_nat: ClientsNatOpt = None,
    config: ConfigOpt = None,
    disable: DisableOpt = None,
) -> None:
    """Record today's findings (lint PATHs, --root, or snapshot files) so `--baseline FILE` fails only on new ones."""
    from ..audit import audit_snapshot
    from ..loading import load_snapshot_file
    from ..suppress import dump_baseline, make_baseline

    opts, _cfg = audit_options(config, None, nat_idle_timeout, profile, clients_behind_nat, disable, False)
    _set_k8s_version(opts, k8s_version)
    snaps = [p for p in paths or [] if _is_snapshot(p)]
    lint_paths = [p for p in paths or [] if p not in snaps]
    targets = [audit_snapshot(load_snapshot_file(p), opts) for p in snaps]
    if lint_paths or root is not None:
        targets += _lint_targets(lint_paths, root, kernel, merge, opts)
    elif not snaps:
        raise UsageError("nothing to record: give PATH... (config files or snapshots) or --root DIR")
    b = make_baseline(targets)
    text = dump_baseline(b)
    if str(output) == "-":
        sys.stdout.write(text)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    typer.echo(
        f"tcpaudit: baseline of {len(b.fingerprints)} finding(s) from {len(targets)} target(s)"
        + ("" if str(output) == "-" else f" written to {output}"),
        err=True,
    )
