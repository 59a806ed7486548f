"""Event log → announcer wiring: calls become call-outs (real espeak-ng, WAV sink), old calls stay silent."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import time
from pathlib import Path

import numpy as np

from agent.core import Core
from agent.settings import load_settings
from agent.store.feed import EventFeed
from agent.voice.announcer import Announcer, AnnouncerConfig
from agent.voice.numbers import SOUTHERN
from agent.voice.tts import EspeakSynth
from agent.voice.wiring import build_announcer, run_announcer
from agent.web.live import announcement
from devices.audio import Pcm, WavFileSink, read_wav
from tests.conftest import CATALOGUE


class CountingSink(WavFileSink):
    """A real WAV-file sink that also lets a test await the n-th clip."""

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.changed = asyncio.Event()

    async def play(self, pcm: Pcm, sample_rate: int) -> None:
        await super().play(pcm, sample_rate)
        self.changed.set()

    async def wait_for(self, count: int) -> None:
        while len(self.played) < count:
            self.changed.clear()
            await self.changed.wait()


async def test_announcer_follows_calls_from_the_current_end(tmp_path: Path) -> None:
    settings = load_settings(storage={"data_dir": str(tmp_path / "data")},
                             queue={"enforce_hours": False, "catalogue": str(CATALOGUE)})
    core = Core.open(settings)
    feed = EventFeed(core.db, poll_interval=0.05)
    for _ in range(3):
        core.queue.take("khai-sinh")
    core.queue.next(1)  # called before the announcer starts: not announced again after a restart
    sink = CountingSink(tmp_path / "audio")
    announcer = Announcer(sink, EspeakSynth(tmp_path / "cache"), AnnouncerConfig(repeat=1, chime=False))
    stop = asyncio.Event()
    part = asyncio.create_task(run_announcer(core, feed, stop, announcer))
    await asyncio.sleep(0)  # let the part read the log's end before the next commits
    called = core.queue.next(2)
    core.queue.recall(2)
    await asyncio.wait_for(sink.wait_for(2), 30)
    stop.set()
    await asyncio.wait_for(part, 5)
    assert called.ticket is not None and called.ticket.number == "A002"
    assert len(sink.played) == 2 and announcer.played == 2 and announcer.failed == 0
    assert announcer.last_callout is not None
    assert announcer.last_callout.speech == "Xin nhắc lại, mời công dân có số thứ tự a hai, đến quầy số hai."
    # The board shows the very sentence the announcer says.
    assert announcer.last_text == announcement("ticket.recalled", {"number": "A002", "counter": 2})
    for clip in sink.played:
        pcm, rate = read_wav(clip.path)
        assert rate == 48_000 and pcm.size / rate > 1.5  # a spoken sentence, not a click
        assert float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) > 300
    feed.close()
    core.close()


async def test_voice_settings_build_the_announcer(tmp_path: Path) -> None:
    settings = load_settings(storage={"data_dir": str(tmp_path / "data")}, voice={
        "sink": f"wav:{tmp_path / 'audio'}", "volume": 0.5, "repeat": 3, "quiet_start": "22:00", "quiet_end": "06:00",
        "number_style": "southern", "espeak_rate": 120, "chime": False})
    announcer = build_announcer(settings)
    cfg = announcer.config
    assert isinstance(announcer.sink, WavFileSink) and announcer.sink.directory == tmp_path / "audio"
    assert (cfg.volume, cfg.repeat, cfg.chime, cfg.style) == (0.5, 3, False, SOUTHERN)
    assert (cfg.quiet_start, cfg.quiet_end) == (time(22, 0), time(6, 0))
    assert isinstance(announcer.synth, EspeakSynth) and announcer.synth.voice.rate == 120
    assert announcer.synth.cache_dir == tmp_path / "data" / "voice-cache"
    assert not (tmp_path / "audio").exists()  # nothing opened or created yet


async def test_voice_disabled_part_returns(tmp_path: Path) -> None:
    settings = load_settings(storage={"data_dir": str(tmp_path / "data")}, voice={"enabled": False})
    core = Core.open(settings)
    feed = EventFeed(core.db)
    with contextlib.closing(core):
        await asyncio.wait_for(run_announcer(core, feed, asyncio.Event()), 2)
    feed.close()
