"""The root ``forms`` Typer application; command modules register themselves on it.

The CLI only parses options and calls library functions. :func:`run_app` gives every outcome its exit
status and, for a failure, one paragraph on stderr without a traceback: a
:class:`forms.errors.FormsError` (bad input) exits 2, as does a usage error (unknown option, missing
argument, a value of the wrong type); an operating-system error (disk full, permission denied) exits
1; Ctrl-C exits 130 saying "interrupted"; a command's own ``typer.Exit(code)`` exits ``code``. Any
other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.text import Text

from forms.errors import INTERRUPTED_STATUS, FormsError, exit_interrupted

app = typer.Typer(
    name="forms",
    help="FORMS: polarized-weight DNN compression, ReRAM crossbar simulation and cost model "
    "(FORMS vs ISAAC vs PRIME).",
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
