"""Which readings the engine takes, judged by event time alone (never the wall clock).

Devices without a battery-backed clock restart at 1970 or 2000 after a reboot, and a
glitch can stamp a reading years ahead. The engine's features and labels assume each
device's readings arrive in time order, so both drivers (the worker's processor and
the backtest) ask a :class:`TimeGate` before a reading reaches the scorer:

- **out of order**: a reading at or before the device's newest accepted reading is
  refused (Kafka keeps a device's messages in order, so only a device clock going
  back produces one; a replayed message is recognised by its offset before this).
- **from the future**: a reading more than ``FUTURE_TOLERANCE`` after the newest
  event time this gate has accepted from any device (the *watermark*) is refused,
  unless the same device's previous message was refused for the same reason and this
  one is later than it: two consecutive readings confirm that the device's clock
  (or the whole fleet's, after a gap in the data) really moved on. A failure event or
  a verdict from the future is refused the same way, without the confirmation.

Refused messages go to ``dead-letter`` with the reason. The rule depends only on the
messages seen, so a replay decides the same way; the watermark of a worker is rebuilt
from the device records it loads, so a restart does not open the gate.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FUTURE_TOLERANCE = timedelta(days=365)
"""How far a message may be ahead of the newest accepted event time."""

_FUTURE_S = FUTURE_TOLERANCE.total_seconds()

OUT_OF_ORDER = "out of order"
FROM_THE_FUTURE = "from the future"


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


class TimeGate:
    """The time policy of one driver (one worker, or one backtest run).

    ``watermark`` is the newest accepted event time (POSIX seconds), ``None`` before the
    first message.
    """

    def __init__(self) -> None:
        self.watermark: float | None = None

    def observe(self, t: float) -> None:
        """Raise the watermark to ``t`` (an accepted message, or a device record loaded)."""
        if self.watermark is None or t > self.watermark:
            self.watermark = t

    def reading(self, t: float, newest: float | None, suspect: float | None) -> str | None:
        """Why the reading at ``t`` must be refused, or ``None`` to accept it.

        ``newest`` is the device's newest accepted reading, ``suspect`` the time of its
        previous message if that one was refused as from the future. Accepting is the
        caller's: it must call :meth:`observe` with ``t``.
        """
        if newest is not None and t <= newest:
            return (
                f"{OUT_OF_ORDER}: reading at {_iso(t)} is not after the device's newest "
                f"reading at {_iso(newest)}"
            )
        if suspect is not None and t > suspect:
            return None
        return self.event(t)

    def event(self, t: float) -> str | None:
        """Why a failure, verdict or reading at ``t`` is refused as from the future, or ``None``."""
        watermark = self.watermark
        if watermark is not None and t > watermark + _FUTURE_S:
            return (
                f"{FROM_THE_FUTURE}: {_iso(t)} is more than {FUTURE_TOLERANCE.days} days after "
                f"the newest accepted event time {_iso(watermark)}"
            )
        return None
