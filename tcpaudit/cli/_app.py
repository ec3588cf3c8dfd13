"""The typer application every command registers on, and its click-level plumbing (placeholders, Ctrl-C)."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

from .. import __version__


class Interrupted(Exception):
    """Ctrl-C in a command that has no report to write: main() says so on stderr and exits 130.

    typer turns a KeyboardInterrupt into a silent `Exit(130)`; this is raised in its place so it is not.
    """


# Placeholders for options and arguments that do not set a metavar, by parameter name; the rest of an
# unset one is its name in capitals. typer would show Python types instead (`<list[str]>`, `<int range>`).
_METAVARS = {"output": "FILE", "jobs": "N", "paths": "PATH", "hosts": "HOST", "files": "FILE"}


def _tidy_placeholders(cmd) -> None:
    """Click-style placeholders in a command's help and usage: `--port PORT`, `FILE...`, `[PATH]...`.

    Applied to every command, in every command module, so the style is set once.
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
    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None and not getattr(cmd, "_tcpaudit_tidy", False):
            _tidy_placeholders(cmd)
            if not cmd.epilog:
                from ._examples import epilog

                cmd.epilog = epilog(cmd_name)
            cmd._tcpaudit_tidy = True  # type: ignore[attr-defined]
        return cmd

    def invoke(self, ctx):
        from .. import terminal

        terminal.reset_choices()  # one run, one set of --color/-q choices (tests run many in one process)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise Interrupted() from None


class _LeadingDashArgCommand(TyperCommand):
    """A command whose argument may start with '-' (`tcpaudit kernel -1.2`).

    A single-dash word that is not one of its options is its argument, so the argument's parser gives its
    one-line error instead of click's "No such option: -1". `--words` are still options.
    """

    def parse_args(self, ctx, args):
        takes_value: dict[str, bool] = {}
        for p in self.get_params(ctx):
            if getattr(p, "param_type_name", "") == "option":
                for name in (*p.opts, *p.secondary_opts):
                    takes_value[name] = not (getattr(p, "is_flag", False) or getattr(p, "count", False))
        options: list[str] = []
        positional: list[str] = []
        i = 0
        while i < len(args):
            arg = args[i]
            if arg == "--":
                positional += args[i + 1 :]
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
    add_completion=True,  # --install-completion / --show-completion SHELL (bash, zsh, fish)
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"tcpaudit {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """tcpaudit audits one host, a fleet over SSH, saved snapshots, or config files before they ship."""
