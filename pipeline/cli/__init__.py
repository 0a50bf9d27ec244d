"""The ``forewarn`` command: one Typer app; each sub-command lives in its own module."""

from __future__ import annotations

import sys

import typer
from kafka.errors import KafkaError
from typer.exceptions import TyperException

from pipeline import gc_tuning
from pipeline.errors import ForewarnError

app = typer.Typer(
    name="forewarn",
    help="Forewarn: predict hardware failures from streaming telemetry.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Forewarn: predict hardware failures from streaming telemetry."""


def _register_commands() -> None:
    # Imported for their side effect: each module adds its commands to ``app``.
    from pipeline.cli import (  # noqa: F401
        backtest_cmd,
        ops_cmd,
        report_cmd,
        schemas_cmd,
        stream_cmd,
    )


def main() -> None:
    """Console entry point; expected errors become one line on stderr and exit code 2."""
    _register_commands()
    gc_tuning.tune()
    try:
        # Not standalone: Typer would show a usage error as a five-line box; it comes
        # here instead, and ``typer.Exit`` (``--help`` too) comes back as its exit code.
        code = app(standalone_mode=False)
    except TyperException as error:  # click's ClickException (a usage error) derives from it
        sys.exit(_usage_error(error))
    except ForewarnError as error:
        typer.secho(f"forewarn: error: {error}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except KafkaError as error:
        name = type(error).__name__
        message = f"Kafka: {error}" if str(error).startswith(name) else f"Kafka: {name}: {error}"
        hint = " (is `make up` running? check FOREWARN_KAFKA_BOOTSTRAP; `forewarn doctor`)"
        typer.secho(f"forewarn: error: {message}{hint}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except OSError as error:  # a path that cannot be read or written, a refused connection
        where = f": {error.filename}" if error.filename else ""
        typer.secho(
            f"forewarn: error: {error.strerror or error}{where}", err=True, fg=typer.colors.RED
        )
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        typer.secho("forewarn: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


def _usage_error(error: TyperException) -> int:
    """Print a usage error as one line naming the command; return its exit code."""
    message = " ".join(error.format_message().split()) if hasattr(error, "format_message") else ""
    code = getattr(error, "exit_code", 2)
    if not message:
        return int(code)  # ``forewarn`` alone: Typer has printed the help already
    context = getattr(error, "ctx", None)
    command = context.command_path if context is not None else "forewarn"
    typer.secho(
        f"forewarn: error: {message} (see `{command} --help`)", err=True, fg=typer.colors.RED
    )
    return int(code)
