"""``kill -USR2 <worker pid>``: log what every asyncio task of the worker is waiting on.

A stalled worker shows no error; its tasks' await chains say where it waits. (mode's
own SIGUSR1 dump cuts each chain after a few frames, before it reaches our code.)
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import structlog

log = structlog.get_logger(__name__)

MAX_DEPTH = 60


def await_chain(task: asyncio.Task[Any]) -> list[str]:
    """``file:line function`` of each coroutine ``task`` is suspended in, outermost first."""
    chain: list[str] = []
    awaited: Any = task.get_coro()
    while awaited is not None and len(chain) < MAX_DEPTH:
        frame = next(
            (
                getattr(awaited, name)
                for name in ("cr_frame", "ag_frame", "gi_frame")
                if getattr(awaited, name, None) is not None
            ),
            None,
        )
        if frame is None:
            chain.append(repr(awaited)[:120])
            break
        chain.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = next(
            (
                getattr(awaited, name)
                for name in ("cr_await", "ag_await", "gi_yieldfrom")
                if getattr(awaited, name, None) is not None
            ),
            None,
        )
    return chain


def log_tasks() -> None:
    """One ``task_waiting`` log line per task, with its await chain."""
    for task in asyncio.all_tasks():
        log.info("task_waiting", task=task.get_name(), chain=await_chain(task))


def install(loop: asyncio.AbstractEventLoop) -> None:
    """Log every task's await chain when the process receives SIGUSR2."""
    loop.add_signal_handler(signal.SIGUSR2, log_tasks)
