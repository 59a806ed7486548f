"""The announcer: plays call-outs on the hall loudspeaker, one at a time, in the order they came.

``announce(ticket, counter)`` builds the text at once (it is returned and kept as ``last_text`` so the
display board never waits for audio) and queues the call-out; ``run()`` is the consumer task. Each
call-out is one clip: chime, a short pause, then the sentence ``repeat`` times with a gap between.
Playing one clip per call-out through one consumer is what guarantees call-outs never overlap.

The queue is bounded and drops the oldest call-out when full (counted in ``dropped``): after a burst
of calls, the hall should hear the newest, not a backlog from minutes ago.

During quiet hours (local Asia/Ho_Chi_Minh time, e.g. a lunch break or night) audio is skipped and
nothing is synthesised, but the text is still produced and recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np

from agent.errors import ConfigError, KioskError
from agent.voice.numbers import NORTHERN, NumberStyle
from agent.voice.phrases import CallOut, TicketReading, build_callout
from agent.voice.tts import SpeechSynth, chime, silence
from devices.audio import AudioSink, Pcm

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AnnouncerConfig:
    """Announcer settings; ``quiet_start``/``quiet_end`` are local wall-clock times in ``timezone``.

    The quiet range is start-inclusive, end-exclusive, and may wrap midnight (22:00 → 06:00).
    Equal start and end, or either missing, means no quiet hours.
    """

    volume: float = 0.8  # gain 0..1 applied to the whole clip
    repeat: int = 2  # how many times the sentence is said
    gap_s: float = 0.8  # silence between repeats
    chime: bool = True
    chime_pause_s: float = 0.3  # silence between the chime and the sentence
    quiet_start: time | None = None
    quiet_end: time | None = None
    timezone: str = "Asia/Ho_Chi_Minh"
    queue_size: int = 8
    style: NumberStyle = NORTHERN
    ticket_reading: TicketReading = "number"

    def __post_init__(self) -> None:
        if not 0.0 <= self.volume <= 1.0:
            raise ConfigError(f"announcer volume must be within 0..1, got {self.volume}")
        if not 1 <= self.repeat <= 5:
            raise ConfigError(f"announcer repeat must be 1..5, got {self.repeat}")
        if self.gap_s < 0 or self.chime_pause_s < 0:
            raise ConfigError("announcer gaps must not be negative")
        if self.queue_size < 1:
            raise ConfigError("announcer queue_size must be at least 1")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ConfigError(f"unknown time zone {self.timezone!r}") from exc

    def is_quiet(self, moment: datetime) -> bool:
        """Whether ``moment`` (aware; naive is taken as UTC) falls in the quiet hours."""
        start, end = self.quiet_start, self.quiet_end
        if start is None or end is None or start == end:
            return False
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        local = moment.astimezone(ZoneInfo(self.timezone)).time().replace(tzinfo=None)
        if start < end:
            return start <= local < end
        return local >= start or local < end


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Announcer:
    """Queues call-outs and plays them through ``sink`` one after another (see the module docstring)."""

    def __init__(
        self,
        sink: AudioSink,
        synth: SpeechSynth,
        config: AnnouncerConfig = AnnouncerConfig(),
        *,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.sink = sink
        self.synth = synth
        self.config = config
        self._clock = clock
        self._queue: asyncio.Queue[CallOut] = asyncio.Queue(maxsize=config.queue_size)
        self._chime: Pcm | None = None
        self.last_text: str | None = None  # the last call-out handled, spoken or (quiet hours) not
        self.last_callout: CallOut | None = None
        self.played = 0
        self.skipped_quiet = 0
        self.dropped = 0
        self.failed = 0

    def announce(self, ticket_number: str, counter: int, *, recall: bool = False) -> CallOut:
        """Queue a call-out and return it; raises InvalidInput for a malformed ticket or counter."""
        callout = build_callout(
            ticket_number,
            counter,
            recall=recall,
            style=self.config.style,
            ticket_reading=self.config.ticket_reading,
        )
        if self._queue.full():
            stale = self._queue.get_nowait()
            self._queue.task_done()
            self.dropped += 1
            logger.warning("announcer queue full: dropped call-out of ticket %s", stale.ticket)
        self._queue.put_nowait(callout)
        return callout

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    async def join(self) -> None:
        """Wait until every queued call-out has been handled (played, skipped or failed)."""
        await self._queue.join()

    async def run(self) -> None:
        """Consume call-outs forever; cancel the task to stop."""
        while True:
            callout = await self._queue.get()
            try:
                await self._handle(callout)
            except KioskError as exc:  # no speaker, espeak failed: the board still shows the call
                self.failed += 1
                logger.error("call-out of ticket %s not played: %s", callout.ticket, exc)
            except Exception:  # top of a long-lived loop: one bad call-out must not stop the next ones
                self.failed += 1
                logger.exception("call-out of ticket %s failed", callout.ticket)
            finally:
                self._queue.task_done()

    async def _handle(self, callout: CallOut) -> None:
        self.last_text = callout.display
        self.last_callout = callout
        if self.config.is_quiet(self._clock()):
            self.skipped_quiet += 1
            logger.info("quiet hours: call-out of ticket %s shown, not spoken", callout.ticket)
            return
        clip = await self.render(callout)
        await self.sink.play(clip, self.synth.sample_rate)
        self.played += 1

    async def render(self, callout: CallOut) -> Pcm:
        """The whole clip for a call-out: chime, pause, sentence × repeat with gaps, at the set volume."""
        cfg, rate = self.config, self.synth.sample_rate
        sentence = await self.synth.synthesize(callout)
        pieces: list[Pcm] = []
        if cfg.chime:
            if self._chime is None:
                self._chime = chime(rate)
            pieces += [self._chime, silence(cfg.chime_pause_s, rate)]
        for index in range(cfg.repeat):
            if index:
                pieces.append(silence(cfg.gap_s, rate))
            pieces.append(sentence)
        clip = np.concatenate(pieces).astype(np.float64) * cfg.volume
        out: Pcm = np.clip(np.rint(clip), -32768, 32767).astype(np.int16)
        return out
