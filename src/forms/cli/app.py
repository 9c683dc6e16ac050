"""The root ``forms`` Typer application; command modules register themselves on it.

The CLI only parses options and calls library functions. :func:`run_app` gives every outcome its exit
status and, for a failure, one paragraph on stderr without a traceback: a
:class:`forms.errors.FormsError` (bad input) exits 2, as does a usage error (unknown option, missing
argument, a value of the wrong type); an operating-system error (disk full, permission denied) exits
1; Ctrl-C exits 130 saying "interrupted"; a command's own ``typer.Exit(code)`` exits ``code``. Any
other exception is a bug and keeps its traceback.

Commands are registered lazily: :data:`COMMANDS` names every command and the module that defines it
(with ``@app.command("name")`` on :data:`app`, or ``app.add_typer(..., name="name")``); a module is
imported only when one of its commands runs or a help page lists it. So ``forms estimate`` imports
the estimate module and not the training one. ``forms --help`` imports every command module to read
its help, so a module imports the heavy library (torch) inside its commands, not at its top.
To add a command: define it in its module, add one line to :data:`COMMANDS`.
(``tests/test_startup.py`` checks that the table and the modules agree and what start-up imports.)
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperGroup

from forms.errors import INTERRUPTED_STATUS, FormsError, exit_interrupted

if TYPE_CHECKING:
    from typer._click import Command, Context  # the click that typer bundles

COMMANDS: dict[str, str] = {
    "data": "forms.cli.data",
    "train": "forms.cli.train",
    "compress": "forms.cli.compress",
    "export": "forms.cli.compress",
    "check": "forms.cli.compress",
    "simulate": "forms.cli.simulate",
    "estimate": "forms.cli.estimate",
    "compare": "forms.cli.estimate",
    "optimize": "forms.cli.optimize",
    "search": "forms.cli.search",
    "sweep": "forms.cli.jobs",
    "demo": "forms.cli.jobs",
    "reproduce": "forms.cli.jobs",
}
"""Every ``forms`` command, in the order ``forms --help`` lists them, and the module that defines it."""


class LazyCommandGroup(TyperGroup):
    """The root group: lists :data:`COMMANDS` and imports a command's module when it is looked up."""

    def list_commands(self, ctx: Context) -> list[str]:
        """Every command name of :data:`COMMANDS` (nothing imported)."""
        return list(COMMANDS)

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        """The command ``cmd_name``, importing its module on first use; None for an unknown name."""
        module = COMMANDS.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(module)  # registers its commands on `app`
            self.commands.update(typer.main.get_group(app).commands)
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Context, args: list[str]) -> tuple[str | None, Command | None, list[str]]:
        """As click does; an unknown name first loads every command, so that typer suggests the closest."""
        if args and args[0] not in COMMANDS:
            for name in COMMANDS:
                self.get_command(ctx, name)
        return super().resolve_command(ctx, args)


app = typer.Typer(
    name="forms",
    help="FORMS: polarized-weight DNN compression, ReRAM crossbar simulation and cost model "
    "(FORMS vs ISAAC vs PRIME).",
    cls=LazyCommandGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

console = Console(stderr=True)

NPROC_OPTION = typer.Option(1, "--nproc", min=1, help="Data-parallel processes on this machine (torchrun).")
"""``--nproc`` of the commands that train (train, compress)."""


def relaunch_for_nproc(nproc: int) -> None:
    """Under ``--nproc N`` > 1 outside torchrun, rerun this command line in N workers and exit.

    The workers run under torchrun (:func:`forms.nn.distributed.launch`); the exit status is theirs.
    With ``N`` = 1, or inside a torchrun worker, this does nothing.
    """
    from forms.nn import distributed

    if nproc > 1 and distributed.env_world_size() == 1:
        raise typer.Exit(distributed.launch(nproc, distributed.strip_nproc(sys.argv[1:])))


USAGE_STATUS = 2
"""Exit status of a usage error or of invalid input (a :class:`FormsError`)."""
OS_ERROR_STATUS = 1
"""Exit status of an operating-system error (disk full, permission denied, ...)."""


def print_error(message: str) -> None:
    """Print ``error: message`` on stderr (no markup: brackets in paths and usage lines stay)."""
    console.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def _usage_message(exc: typer.TyperException) -> str:
    """A usage error as one paragraph: what is wrong, the command's usage line, where help is."""
    ctx = getattr(exc, "ctx", None)
    message = exc.format_message()
    if ctx is None:
        return message
    usage = ctx.get_usage().removeprefix("Usage: ")
    ending = "" if message.endswith((".", "?", "!")) else "."
    return f"{message}{ending} Usage: {usage}; '{ctx.command_path} --help' lists the options."


def _run() -> int:
    """Run the app on ``sys.argv``; return the exit status, printing any failure (see the module doc)."""
    try:
        status = app(standalone_mode=False)
    except FormsError as exc:
        print_error(str(exc))
        return USAGE_STATUS
    except typer.TyperException as exc:  # typer's (bundled click's) usage errors
        if type(exc).__name__ != "NoArgsIsHelpError":  # a bare `forms` (or group) has printed its help
            print_error(_usage_message(exc))
        return exc.exit_code
    except typer.Abort as exc:  # typer wraps an EOFError raised by a command in Abort: not a user abort
        if exc.__cause__ is not None:
            raise exc.__cause__ from None
        raise
    except OSError as exc:
        print_error(f"{exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""))
        return OS_ERROR_STATUS
    # Without standalone mode a typer.Exit(code) (typer's KeyboardInterrupt -> Exit(130) too) is returned.
    return status if isinstance(status, int) else 0


def run_app() -> None:
    """Run the ``forms`` app and exit with its status; Ctrl-C prints "interrupted" and exits 130."""
    try:
        status = _run()
    except KeyboardInterrupt:
        status = INTERRUPTED_STATUS
    if status == INTERRUPTED_STATUS:
        exit_interrupted()
    sys.exit(status)


@app.callback()
def _root() -> None:
    """FORMS: compress, map, simulate and cost polarized-weight DNNs on ReRAM crossbars."""
