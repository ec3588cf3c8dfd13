"""`tcpaudit kernel RELEASE`: what a kernel release implies."""

from __future__ import annotations

from typing import Annotated

import typer

from ._app import _LeadingDashArgCommand, app
from ._common import (
    TableJsonOpt,
    UsageError,
)


@app.command(cls=_LeadingDashArgCommand, short_help="What a kernel release implies: sysctls, known issues.")
def kernel(
    release: Annotated[
        str,
        typer.Argument(
            metavar="RELEASE", show_default=False, help="Kernel release (`uname -r`), e.g. 5.4.0-137-generic or 4.9.0."
        ),
    ],
    format: TableJsonOpt = "table",
) -> None:
    """What a kernel release implies: sysctls present or absent with defaults, known issues."""
    import json

    from ..kernel.release import KernelReleaseError
    from ..kernel.summary import kernel_summary, render_kernel_summary_table

    if format not in ("table", "json"):
        raise UsageError("--format must be table or json")
    try:
        summary = kernel_summary(release)
    except KernelReleaseError as exc:
        raise UsageError(str(exc)) from None
    typer.echo(json.dumps(summary, indent=2) if format == "json" else render_kernel_summary_table(summary))
