"""Event log → loudspeaker: the announcer follows `ticket.called` / `ticket.recalled` events.

It starts from the log's last seq at startup, so calls made before a restart are not announced
again. The board shows the same sentence: `agent.web.live` builds it with the same
`build_callout` from the same event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import time
from pathlib import Path

from agent.core import Core
from agent.errors import KioskError
from agent.settings import Settings, VoiceSettings
from agent.store import events
from agent.store.feed import EventFeed
from agent.voice.announcer import Announcer, AnnouncerConfig
from agent.voice.numbers import NORTHERN, SOUTHERN
from agent.voice.tts import ClipPackSynth, EspeakSynth, EspeakVoice, SpeechSynth
from devices.audio import AudioSink, open_sink

logger = logging.getLogger(__name__)

CALL_EVENTS = ("ticket.called", "ticket.recalled")


def _time(text: str | None) -> time | None:
    if text is None:
        return None
    hour, minute = text.split(":")
    return time(int(hour), int(minute))


def announcer_config(voice: VoiceSettings, timezone: str) -> AnnouncerConfig:
    return AnnouncerConfig(
        volume=voice.volume, repeat=voice.repeat, gap_s=voice.gap_seconds, chime=voice.chime,
        quiet_start=_time(voice.quiet_start), quiet_end=_time(voice.quiet_end), timezone=timezone,
        style=SOUTHERN if voice.number_style == "southern" else NORTHERN, ticket_reading=voice.ticket_reading,
    )


def build_announcer(settings: Settings, sink: AudioSink | None = None) -> Announcer:
    """The announcer the settings describe; no device is opened and espeak-ng is not run yet."""
    voice = settings.voice
    cache = voice.cache_dir if voice.cache_dir is not None else settings.data_dir() / "voice-cache"
    espeak = EspeakSynth(settings.config_path(cache), EspeakVoice(voice=voice.espeak_voice, rate=voice.espeak_rate))
    synth: SpeechSynth = espeak
    if voice.clip_pack is not None:
        synth = ClipPackSynth(settings.config_path(voice.clip_pack), espeak)
    return Announcer(sink if sink is not None else open_sink(sink_spec(settings, voice.sink)), synth,
                     announcer_config(voice, settings.queue.timezone))


def sink_spec(settings: Settings, spec: str) -> str:
    """A `wav:`/`auto:` folder given relative to the config file, made absolute."""
    kind, sep, arg = spec.partition(":")
    if sep and kind in ("wav", "auto") and arg and not Path(arg).is_absolute():
        return f"{kind}:{settings.config_path(Path(arg))}"
    return spec


async def feed_announcer(announcer: Announcer, feed: EventFeed, after_seq: int) -> None:
    """Queue a call-out for every call in the log after `after_seq`; runs until cancelled."""
    stream = feed.follow(after_seq)
    try:
        async for event in stream:
            if event.type not in CALL_EVENTS:
                continue
            try:
                announcer.announce(str(event.data["number"]), int(event.data["counter"]),
                                   recall=event.type == "ticket.recalled")
            except (KioskError, KeyError, TypeError, ValueError) as exc:
                logger.error("event %d cannot be announced: %s", event.seq, exc)
    finally:
        aclose = getattr(stream, "aclose", None)  # follow() is a generator: close it where it waits
        if aclose is not None:
            await aclose()


async def run_announcer(core: Core, feed: EventFeed, stop: asyncio.Event, announcer: Announcer | None = None) -> None:
    """The announcer part of the agent: follows the log from its current end and plays until `stop`."""
    if announcer is None:
        if not core.settings.voice.enabled:
            logger.info("voice call-outs are turned off (voice.enabled = false)")
            return
        announcer = build_announcer(core.settings)
    start = events.last_seq(core.db.conn)
    tasks = [asyncio.create_task(announcer.run(), name="announcer-player"),
             asyncio.create_task(feed_announcer(announcer, feed, start), name="announcer-feed")]
    try:
        await stop.wait()
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


def wav_folder(settings: Settings) -> Path | None:
    """The folder a `wav:`/`auto:` sink writes call-outs to, if that is the sink."""
    kind, sep, arg = sink_spec(settings, settings.voice.sink).partition(":")
    return Path(arg) if sep and kind in ("wav", "auto") and arg else None


def rotate_wavs(folder: Path, keep_files: int, keep_bytes: int) -> int:
    """Remove the oldest numbered call-out WAVs past `keep_files` or `keep_bytes`; how many went.
    Numbers only grow (the sink continues after the highest left), so the lowest are the oldest."""
    try:
        clips = sorted((p for p in folder.glob("*.wav") if p.stem.isdigit()), key=lambda p: int(p.stem))
        sizes = [p.stat().st_size for p in clips]
    except OSError:
        return 0
    total, removed = sum(sizes), 0
    for clip, size in zip(clips, sizes, strict=True):
        if len(clips) - removed <= keep_files and total <= keep_bytes:
            break
        with contextlib.suppress(FileNotFoundError):
            clip.unlink()
        total -= size
        removed += 1
    return removed
