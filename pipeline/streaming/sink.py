"""The InfluxDB sink: batches line protocol, retries with backoff, never drops a point.

Contract (after Quix's ``BatchingSink``): the worker adds the points of a batch of
input events, then awaits ``flush()`` before it acknowledges those events, so their
offsets are committed only once the points are stored. While InfluxDB is down,
``flush()`` keeps retrying; whoever adds points awaits :meth:`InfluxSink.room` first,
which waits while half of ``max_buffered`` points are buffered until a flush takes
them, so processing stops there and Faust stops fetching once its stream buffer is
full: that is the backpressure, whatever the number of readings per input message.
``add`` refuses to grow past ``max_buffered`` so a misuse shows up as an error instead
of unbounded memory.

A batch InfluxDB refuses as malformed (``is_permanent``, a 400) is split in halves
and each half written again, down to the single points it refuses: those are set
aside in ``refused`` with the server's message (the worker dead-letters them) and
every other point of the batch is stored. One bad point costs about
``2 log2(batch_size)`` extra writes, never the sink.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable

import structlog

from pipeline.errors import SinkError

log = structlog.get_logger(__name__)

Writer = Callable[[list[str]], Awaitable[None]]


class SinkFullError(SinkError):
    """More points were added than the sink may buffer; flush first."""


class InfluxSink:
    """Buffers points and writes them in chunks of ``batch_size`` lines."""

    def __init__(
        self,
        writer: Writer,
        *,
        batch_size: int,
        max_buffered: int,
        first_backoff_s: float = 0.1,
        max_backoff_s: float = 5.0,
        is_permanent: Callable[[Exception], bool] = lambda _: False,
    ) -> None:
        self._writer = writer
        self._batch_size = batch_size
        self._max_buffered = max_buffered
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._is_permanent = is_permanent
        self._buffer: list[str] = []
        self._lock = asyncio.Lock()
        self._taken = asyncio.Event()
        """Set when a flush takes the buffer (there may be room again)."""
        self.points_written = 0
        self.points_refused = 0
        self.write_errors = 0
        self.refused: list[tuple[str, str]] = []
        """Points InfluxDB refused, with its message; the caller takes them."""

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def add(self, lines: Iterable[str]) -> None:
        """Buffer points for the next flush."""
        self._buffer.extend(lines)
        if len(self._buffer) > self._max_buffered:
            raise SinkFullError(f"{len(self._buffer)} points buffered, limit {self._max_buffered}")

    async def room(self) -> None:
        """Return once fewer than half of ``max_buffered`` points wait to be flushed (at
        once, unless InfluxDB has been unreachable for a while)."""
        while len(self._buffer) >= max(1, self._max_buffered // 2):
            self._taken.clear()
            await self._taken.wait()

    async def flush(self) -> None:
        """Write what is buffered now; returns only once InfluxDB has accepted all of it.

        Points added while the flush runs wait for the next flush: chasing them would
        turn one flush into a stream of tiny writes.
        """
        async with self._lock:
            batch, self._buffer = self._buffer, []
            self._taken.set()
            try:
                while batch:
                    chunk = batch[: self._batch_size]
                    await self._write_isolating(chunk)
                    del batch[: len(chunk)]
            finally:
                self._buffer[:0] = batch  # unwritten points stay first in line

    def take_refused(self) -> list[tuple[str, str]]:
        """The refused points and InfluxDB's reasons since the last call."""
        refused, self.refused = self.refused, []
        return refused

    async def _write_isolating(self, chunk: list[str]) -> None:
        """Write ``chunk``; on a refusal, bisect it and set aside only the refused points."""
        try:
            await self._write_with_retry(chunk)
        except SinkError as error:
            if len(chunk) == 1:
                cause = error.__cause__ or error
                body = getattr(cause, "body", None)
                if isinstance(body, bytes):
                    body = body.decode(errors="replace")
                message = str(body or cause).strip()[:1500]
                self.refused.append((chunk[0], message))
                self.points_refused += 1
                log.error("influx_point_refused", line=chunk[0][:300], error=message[:300])
                return
            middle = len(chunk) // 2
            await self._write_isolating(chunk[:middle])
            await self._write_isolating(chunk[middle:])
        else:
            self.points_written += len(chunk)

    async def _write_with_retry(self, chunk: list[str]) -> None:
        backoff = self._first_backoff_s
        attempt = 0
        while True:
            attempt += 1
            try:
                await self._writer(chunk)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.write_errors += 1
                if self._is_permanent(error):
                    raise SinkError(f"InfluxDB refused the batch: {error}") from error
                log.warning(
                    "influx_write_failed",
                    attempt=attempt,
                    points=len(chunk),
                    retry_in_s=round(backoff, 2),
                    error=str(error).splitlines()[0][:200] if str(error) else type(error).__name__,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff_s)
            else:
                if attempt > 1:
                    log.info("influx_write_recovered", attempts=attempt, points=len(chunk))
                return
