"""structlog set-up, done once by the command-line layer; libraries only get loggers."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Literal

import structlog

_configured = False

NOISY_LIBRARIES = ("kafka", "aiokafka", "faust", "mode", "urllib3", "influxdb_client")


class KnownFalseAlarms(logging.Filter):
    """Drops two library log lines that are false alarms in a Forewarn worker.

    - Faust's livelock check reports every changelog partition of a table as a "stream
      [that] has not started processing" once a worker has run for
      ``stream_processing_timeout`` (5 min): the worker writes those partitions and
      never consumes them after recovery, so their highwater always exceeds the
      consumer's position. Real input partitions are still reported.
    - mode reports a timer "overlapping" when its callback ran longer than its interval;
      the worker's own timers (checkpoint, idle lanes, health) run behind the scoring
      on a busy worker by design, and Faust's own timers are still reported.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        first = record.args[0] if isinstance(record.args, tuple) and record.args else None
        if "Stream has not started processing" in message:
            return not str(getattr(first, "topic", "")).endswith("-changelog")
        if "is overlapping (interval=" in message:
            return not str(first).startswith("pipeline.")
        return True


def configure_logging(
    level: str = "info",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    log_file: Path | None = None,
) -> None:
    """Configure structlog and stdlib logging once: JSON unless stderr is a terminal.

    With ``log_file`` every log line (ours, the libraries' and Python's ``warnings``)
    goes to that file as JSON, none to the console: for commands whose console is a
    person's progress display (``forewarn demo``). The file is appended to.
    """
    global _configured  # noqa: PLW0603 - configuration is process-wide by nature
    if _configured:
        return
    use_console = log_file is None and (fmt == "console" or (fmt == "auto" and sys.stderr.isatty()))
    renderer: structlog.typing.Processor = (
        structlog.dev.ConsoleRenderer() if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler: logging.Handler
    if log_file is None:
        handler = logging.StreamHandler(sys.stderr)
    else:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, encoding="utf-8")
        logging.captureWarnings(True)  # a library's DeprecationWarning is log noise too
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *([] if use_console else [structlog.processors.format_exc_info]),
                renderer,
            ],
        )
    )
    handler.addFilter(KnownFalseAlarms())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in NOISY_LIBRARIES:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    _configured = True
