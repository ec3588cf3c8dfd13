"""main(): run the app; every error a user can cause is one line on stderr with a documented exit code."""

from __future__ import annotations

import os
import sys

import typer

from ..exitcodes import ExitCode
from ._app import Interrupted, app
from ._common import UsageError

# Errors main() reports as one line, by (module, class). They are looked up in sys.modules when something
# is raised instead of imported up front: a class can only have been raised if its module was imported,
# and importing them eagerly (tcpaudit.catalogue pulls in tabulate, the rule base and every pydantic
# model) cost every command ~150 ms before it parsed its arguments (docs/benchmarks.md).
_USAGE_ERRORS = (
    ("catalogue", "UnknownRuleError"),
    ("config", "ConfigError"),
    ("context", "UnknownProfileError"),
    ("loading", "SnapshotFileError"),
)


def _raised_types(*names: tuple[str, str]) -> tuple[type, ...]:
    out = []
    for module, name in names:
        cls = getattr(sys.modules.get(f"tcpaudit.{module}"), name, None)
        if isinstance(cls, type):
            out.append(cls)
    return tuple(out)


def _usage_line(exc) -> str:
    from ..sanitize import clean_text

    message = " ".join(str(exc.format_message()).split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    where = f" (see '{ctx.command_path} --help')" if ctx is not None and ctx.command_path else ""
    return clean_text(message, 500) + where


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (systemd stop, kill, a CI job's timeout) is handled like Ctrl-C: every command's interrupt path
    writes the report of what was done and exits 130 (ExitCode.INTERRUPTED)."""
    raise KeyboardInterrupt


def main() -> None:
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        # one completion variable whatever the program is called (`tcpaudit`, `python -m tcpaudit`)
        code = app(standalone_mode=False, complete_var="_TCPAUDIT_COMPLETE")
    except typer.Exit as exc:
        code = exc.exit_code
    except (KeyboardInterrupt, Interrupted):
        typer.echo("tcpaudit: interrupted", err=True)
        code = ExitCode.INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - never a traceback for users
        if isinstance(exc, (UsageError, *_raised_types(*_USAGE_ERRORS))):
            typer.echo(f"tcpaudit: {exc}", err=True)
            code = ExitCode.USAGE
        elif isinstance(exc, _raised_types(("atomicfile", "OutputError"))):
            from ..sanitize import clean_text

            typer.echo(f"tcpaudit: {clean_text(str(exc), 1000)}", err=True)
            code = ExitCode.OUTPUT
        elif isinstance(exc, _raised_types(("rules.engine", "RuleLoadError"))):
            typer.echo(f"tcpaudit: rule catalogue failed to load: {exc}", err=True)
            code = ExitCode.INTERNAL
        # typer vendors click in recent releases and uses click in older ones: duck-type its exceptions.
        elif type(exc).__name__ == "Abort":
            typer.echo("tcpaudit: interrupted", err=True)
            code = ExitCode.INTERRUPTED
        elif type(exc).__name__ == "NoArgsIsHelpError":  # bare `tcpaudit`: the help
            exc.show()  # type: ignore[attr-defined]  # click's NoArgsIsHelpError, matched by name above
            code = ExitCode.USAGE
        elif hasattr(exc, "format_message") and hasattr(exc, "exit_code"):  # click's usage errors: one line
            typer.echo(f"tcpaudit: {_usage_line(exc)}", err=True)
            code = ExitCode.USAGE
        else:
            if os.environ.get("TCPAUDIT_DEBUG"):
                raise
            typer.echo(
                f"tcpaudit: internal error: {type(exc).__name__}: {exc} (set TCPAUDIT_DEBUG=1 for a traceback)",
                err=True,
            )
            code = ExitCode.INTERNAL
    sys.exit(int(code or 0))
