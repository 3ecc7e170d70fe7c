"""The `mlffbench` command line: thin functions that load a config, call a workflow, print.

Each command lives in `mlffbench/commands/<name>.py` with a `register(app)` function, so the
commands grow independently. Errors from bad input are one line on stderr with exit code 2;
simulations that cannot go on (blow-up, no convergence) exit with code 1 and say why.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from mlffbench import __version__
from mlffbench.errors import SimulationError, UserError
from mlffbench.progress import console

COMMAND_MODULES = ("generate", "train", "check_model", "md", "pdos", "neb", "vacancy", "cg",
                   "run", "study", "sweep", "report", "check")

app = typer.Typer(
    name="mlffbench",
    help="Does a machine-learned force field know the physics, or only its training set? "
         "Benchmarks MLFFs against the exact Lennard-Jones argon oracle.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"mlffbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       show_default=False, help="Print the version and exit."),
          compile_cache: str = typer.Option(None, "--compile-cache", metavar="DIR",
                                            help="Keep compiled programs in DIR (default ~/.cache/mlffbench/jax, "
                                                 "or $MLFFBENCH_CACHE_DIR)."),
          no_compile_cache: bool = typer.Option(False, "--no-compile-cache",
                                                help="Do not reuse or store compiled programs.")) -> None:
    """mlffbench: generate | train | check-model | md | pdos | neb | vacancy | cg | run | study | sweep | report | check."""
    if compile_cache is not None or no_compile_cache:
        from mlffbench import configure_compile_cache

        configure_compile_cache(compile_cache, enabled=not no_compile_cache)


for _name in COMMAND_MODULES:
    importlib.import_module(f"mlffbench.commands.{_name}").register(app)


def _terminate(signum, frame) -> None:
    """SIGTERM (`kill`, a job scheduler's stop): remove the output directories being written and
    exit 143 at once. Not an exception: a handler's exception can land in a finalizer or a GC
    callback of JAX's, where Python prints and drops it, and the command would run on. Whatever
    must survive a stop (run, train, vacancy checkpoints) is already written to survive SIGKILL."""
    from mlffbench.io import remove_active_partials

    remove_active_partials()
    sys.stderr.write("terminated\n")
    sys.stderr.flush()
    os._exit(143)


def main() -> None:
    """Console-script entry point with one-line errors.

    Typer runs in standalone mode, so usage errors (unknown option, missing argument) are
    printed by it with exit code 2; our own exceptions pass through and are printed here.
    SIGTERM exits with 143 and leaves no partial output directory (`_terminate`).
    """
    import signal

    signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except UserError as exc:
        console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except SimulationError as exc:
        console.print(f"[bold red]failed:[/bold red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted[/yellow]")
        sys.exit(130)
    except Exception as exc:  # an external calculator's error comes back wrapped by JAX
        from mlffbench.potentials.external import callback_user_error

        err = callback_user_error(exc)
        if err is None:
            raise
        console.print(f"[bold red]error:[/bold red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
