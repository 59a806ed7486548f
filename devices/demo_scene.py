"""A synthetic 1280x720 kiosk camera scene for demos and tests: QR codes come and go in front of it.

Each payload in turn slides into view, stays about three seconds, and slides out; between two codes the
scene is empty. The picture is a function of time alone, so a test can ask for the frame at a moment.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from devices import imaging

logger = logging.getLogger(__name__)

PROMPT = "Quét mã QR tại đây"


@dataclass(frozen=True, slots=True)
class Timing:
    """One cycle per payload: empty, slide in, stay, slide out."""

    empty_s: float = 1.5
    slide_s: float = 0.4
    stay_s: float = 3.0

    @property
    def cycle_s(self) -> float:
        return self.empty_s + 2 * self.slide_s + self.stay_s


class DemoScene:
    """Renders frames of a desk scene in which ``payloads`` are shown one after another as QR codes."""

    def __init__(
        self,
        payloads: Sequence[str],
        *,
        width: int = 1280,
        height: int = 720,
        timing: Timing | None = None,
        noise: float = 3.0,
        seed: int = 7,
    ) -> None:
        self.payloads = list(payloads)
        self.width = width
        self.height = height
        self.timing = timing or Timing()
        self.noise = noise
        self._rng = np.random.default_rng(seed)
        self._background: imaging.Image | None = None

    def visible_payload(self, t: float) -> str | None:
        """The payload fully shown (staying still) at time ``t``, if any."""
        index, phase = self._phase(t)
        if index is None or phase != "stay":
            return None
        return self.payloads[index]

    def render(self, t: float) -> imaging.Image:
        """The BGR frame at ``t`` seconds from the scene's start."""
        frame = self._base().copy()
        index, phase = self._phase(t)
        if index is not None and phase != "empty":
            progress = self._slide_progress(t)
            size = min(self.width, self.height) // 2
            target_x, y = self.width * 2 // 3, self.height // 2 + 20
            start_x = self.width + size  # enters from the right edge, as a hand would bring a card
            x = round(start_x + (target_x - start_x) * progress)
            angle = 8.0 * (1.0 - progress) - 3.0
            imaging.draw_qr(frame, self.payloads[index], (x, y), size, angle=angle)
        if self.noise > 0:
            frame = imaging.add_noise(frame, self._rng, self.noise)
        return frame

    def _phase(self, t: float) -> tuple[int | None, str]:
        if not self.payloads:
            return None, "empty"
        tm = self.timing
        cycle = int(t // tm.cycle_s)
        into = t - cycle * tm.cycle_s
        index = cycle % len(self.payloads)
        if into < tm.empty_s:
            return index, "empty"
        if into < tm.empty_s + tm.slide_s:
            return index, "enter"
        if into < tm.empty_s + tm.slide_s + tm.stay_s:
            return index, "stay"
        return index, "leave"

    def _slide_progress(self, t: float) -> float:
        """0 = out of view, 1 = in place."""
        tm = self.timing
        into = t % tm.cycle_s - tm.empty_s
        if into < tm.slide_s:
            return into / tm.slide_s
        into -= tm.slide_s + tm.stay_s
        if into < 0:
            return 1.0
        return max(0.0, 1.0 - into / tm.slide_s)

    def _base(self) -> imaging.Image:
        if self._background is None:
            w, h = self.width, self.height
            bg = imaging.vertical_gradient(w, h, (205, 196, 186), (120, 112, 104))
            # A counter desk in the lower third and a sign panel on the wall.
            imaging.fill_rect(bg, (0, h * 2 // 3), (w, h), (70, 90, 120))
            imaging.fill_rect(bg, (60, 60), (560, 220), (160, 60, 20))
            imaging.draw_text(bg, PROMPT, (85, 130), 1.2, (255, 255, 255), 2)
            imaging.draw_text(bg, "UBND phường - Bộ phận một cửa", (85, 185), 0.7, (230, 230, 230), 1)
            self._background = bg
        return self._background
