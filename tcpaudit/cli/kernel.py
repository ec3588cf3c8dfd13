"""`tcpaudit kernel [RELEASE]`: what a kernel release implies."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import _LeadingDashArgCommand, app
from ._common import (
    ColorOpt,
    TableJsonOpt,
    UsageError,
    VerboseOpt,
    table_or_json,
)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(4096).strip() or None
    except OSError:
        return None


@app.command(
    cls=_LeadingDashArgCommand,
    short_help="What a kernel release implies: known issues, sysctls.",
)
def kernel(
    release: Annotated[
        str | None,
        typer.Argument(
            metavar="RELEASE",
            show_default=False,
            help="Kernel release (`uname -r`), e.g. 5.4.0-137-generic or 6.1.76; default: this machine's.",
        ),
    ] = None,
    version_string: Annotated[
        str | None,
        typer.Option(
            "--version-string",
            metavar="TEXT",
            help="The build's `uname -v` (or /proc/version): Debian's names the stable release it is built from.",
        ),
    ] = None,
    version_signature: Annotated[
        str | None,
        typer.Option("--version-signature", metavar="TEXT", help="Ubuntu's /proc/version_signature."),
    ] = None,
    format: TableJsonOpt = "table",
    verbose: VerboseOpt = False,
    color: ColorOpt = None,
) -> None:
    """Known kernel issues (verdict, confidence, why) and sysctls (present, default) for a kernel release.

    Distribution kernels are judged by the upstream stable point release their build states, where it does
    (Debian's `uname -v`, Ubuntu's /proc/version_signature), so that fixes in stable releases count.
    """
    import json

    from ..kernel.release import KernelReleaseError
    from ..kernel.summary import kernel_summary, render_kernel_summary_table

    format = table_or_json(format)
    if release is None:
        release = _read("/proc/sys/kernel/osrelease")
        if release is None:
            raise UsageError("cannot read this machine's kernel release (/proc/sys/kernel/osrelease); give RELEASE")
        version_string = version_string or _read("/proc/version")
        version_signature = version_signature or _read("/proc/version_signature")
    try:
        summary = kernel_summary(release, proc_version=version_string, version_signature=version_signature)
    except KernelReleaseError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(
        json.dumps(summary, indent=2) if format == "json" else render_kernel_summary_table(summary, verbose),
        nl=format == "json",
    )
