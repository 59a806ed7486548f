"""Frame sources behind one setting string, as aiortc's MediaPlayer does for its inputs.

    v4l2:/dev/video0 | v4l2:0          a V4L2 camera through OpenCV
    rtsp://… | rtsps://… | http(s)://…   a network stream through OpenCV (FFmpeg)
    file:PATH[?loop=1][&fps=N]          a video file; at its end, rewound when loop=1, else ended
    images:DIR[?fps=N]                  a folder of images shown in name order, cycled
    demo:[?fps=N]                       the synthetic scene of devices.demo_scene

``open_source`` only parses and validates; nothing is opened until ``FrameSource.open()``, which
``devices.capture.SharedCamera`` calls from its capture thread. Frames are BGR ``uint8`` arrays.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, urlsplit, urlunsplit

import cv2
import numpy as np

from agent.errors import ConfigError, KioskError
from devices import imaging
from devices.demo_scene import DemoScene

logger = logging.getLogger(__name__)

SPEC_FORMS = (
    "v4l2:/dev/video0, v4l2:0, rtsp://host/path, http(s)://host/path, "
    "file:PATH[?loop=1][&fps=N], images:DIR[?fps=N], demo:[?fps=N]"
)
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


class CameraSpecError(ConfigError):
    """The camera setting string is not one of the accepted forms."""

    code = "camera_spec_invalid"


class CameraUnavailable(KioskError):
    """The camera could not be opened or stopped delivering frames."""

    code = "camera_unavailable"
    http_status = 503


class FrameSource(Protocol):
    """A camera-like source, used from one thread at a time.

    ``pace_fps`` is the rate at which the caller should read a source that does not block until its
    next frame (files, image folders, the demo scene); ``None`` for live devices and streams.
    """

    name: str
    pace_fps: float | None

    def open(self) -> None:
        """Open the device; raises CameraUnavailable."""

    def read(self) -> imaging.Image | None:
        """The next frame, or None at the end of a finite source; raises CameraUnavailable."""

    def close(self) -> None:
        """Release the device; safe to call when not open."""


class OpenCVCamera:
    """A V4L2 device or a network stream through cv2.VideoCapture."""

    pace_fps: float | None = None

    def __init__(self, target: int | str, *, backend: int, name: str) -> None:
        self.target = target
        self.backend = backend
        self.name = name
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        cap = cv2.VideoCapture(self.target, self.backend)
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailable(f"cannot open camera {self.name}")
        self._cap = cap

    def read(self) -> imaging.Image | None:
        if self._cap is None:
            raise CameraUnavailable(f"camera {self.name} is not open")
        ok, frame = self._cap.read()
        if not ok or frame is None:
            raise CameraUnavailable(f"camera {self.name} returned no frame")
        return imaging.to_bgr(np.asarray(frame, dtype=np.uint8))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class FileCamera:
    """A video file, paced at its own frame rate (or ``fps``); rewound at the end when ``loop``."""

    def __init__(self, path: Path, *, loop: bool, fps: float | None = None) -> None:
        self.path = path
        self.loop = loop
        self.name = f"file:{path.name}"
        self.pace_fps: float | None = fps
        self._fps_override = fps
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        if not self.path.is_file():
            raise CameraUnavailable(f"video file {self.path} does not exist")
        cap = cv2.VideoCapture(str(self.path))
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailable(f"cannot open video file {self.path}")
        if self._fps_override is None:
            native = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.pace_fps = native if 0.0 < native <= 240.0 else 25.0
        self._cap = cap

    def read(self) -> imaging.Image | None:
        if self._cap is None:
            raise CameraUnavailable(f"{self.name} is not open")
        ok, frame = self._cap.read()
        if not ok and self.loop:
            self._cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self._cap.read()
        if not ok or frame is None:
            return None
        return imaging.to_bgr(np.asarray(frame, dtype=np.uint8))

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class ImageFolderCamera:
    """The images of a folder in name order, cycled; a file that vanished is a read error."""

    def __init__(self, folder: Path, *, fps: float = 5.0) -> None:
        self.folder = folder
        self.name = f"images:{folder.name}"
        self.pace_fps: float | None = fps
        self._files: list[Path] = []
        self._next = 0

    def open(self) -> None:
        if not self.folder.is_dir():
            raise CameraUnavailable(f"image folder {self.folder} does not exist")
        files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise CameraUnavailable(f"image folder {self.folder} holds no images")
        self._files = files
        self._next = 0

    def read(self) -> imaging.Image | None:
        if not self._files:
            raise CameraUnavailable(f"{self.name} is not open")
        path = self._files[self._next % len(self._files)]
        self._next += 1
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise CameraUnavailable(f"cannot read image {path.name}")
        return np.asarray(image, dtype=np.uint8)

    def close(self) -> None:
        self._files = []


class DemoCamera:
    """The synthetic scene, timed by frame count so that frames are reproducible."""

    def __init__(self, payloads: Sequence[str], *, fps: float = 15.0) -> None:
        self.name = "demo"
        self.pace_fps: float | None = fps
        self._payloads = list(payloads)
        self._scene: DemoScene | None = None
        self._frames = 0

    def open(self) -> None:
        self._scene = DemoScene(self._payloads)
        self._frames = 0

    def read(self) -> imaging.Image | None:
        if self._scene is None:
            raise CameraUnavailable("demo camera is not open")
        t = self._frames / (self.pace_fps or 15.0)
        self._frames += 1
        return self._scene.render(t)

    def close(self) -> None:
        self._scene = None


def redact_url(url: str) -> str:
    """The URL without user name and password, for logs and telemetry."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def open_source(spec: str, *, demo_payloads: Sequence[str] = ()) -> FrameSource:
    """Parse a camera setting string into an (unopened) FrameSource; raises CameraSpecError."""
    spec = spec.strip()
    scheme, sep, rest = spec.partition(":")
    scheme = scheme.lower()
    if not sep:
        raise CameraSpecError(f"camera setting {spec!r} has no kind; use one of: {SPEC_FORMS}")
    if scheme in ("rtsp", "rtsps", "http", "https"):
        parts = urlsplit(spec)
        if not parts.hostname or not rest.startswith("//"):
            raise CameraSpecError(f"camera URL {redact_url(spec)!r} has no host")
        return OpenCVCamera(spec, backend=cv2.CAP_FFMPEG, name=redact_url(spec))
    body, _, query = rest.partition("?")
    options = _options(spec, query)
    if scheme == "v4l2":
        _allow(spec, options, set())
        if body.isdigit():
            return OpenCVCamera(int(body), backend=cv2.CAP_V4L2, name=f"v4l2:{body}")
        if body.startswith("/dev/") and len(body) > len("/dev/"):
            return OpenCVCamera(body, backend=cv2.CAP_V4L2, name=f"v4l2:{body}")
        raise CameraSpecError(f"camera setting {spec!r}: v4l2 needs a device index or a /dev/ path")
    if scheme == "file":
        _allow(spec, options, {"loop", "fps"})
        if not body:
            raise CameraSpecError(f"camera setting {spec!r}: file needs a path")
        loop = options.get("loop", "0")
        if loop not in ("0", "1"):
            raise CameraSpecError(f"camera setting {spec!r}: loop must be 0 or 1")
        return FileCamera(Path(body), loop=loop == "1", fps=_fps(spec, options, None))
    if scheme == "images":
        _allow(spec, options, {"fps"})
        if not body:
            raise CameraSpecError(f"camera setting {spec!r}: images needs a folder")
        return ImageFolderCamera(Path(body), fps=_fps(spec, options, 5.0) or 5.0)
    if scheme == "demo":
        _allow(spec, options, {"fps"})
        if body:
            raise CameraSpecError(f"camera setting {spec!r}: demo takes no path")
        return DemoCamera(demo_payloads, fps=_fps(spec, options, 15.0) or 15.0)
    raise CameraSpecError(f"camera setting {spec!r}: unknown kind {scheme!r}; use one of: {SPEC_FORMS}")


def _options(spec: str, query: str) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError as exc:
        raise CameraSpecError(f"camera setting {spec!r}: bad options {query!r}") from exc
    return {k: v[-1] for k, v in parsed.items()}


def _allow(spec: str, options: dict[str, str], allowed: set[str]) -> None:
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise CameraSpecError(f"camera setting {spec!r}: unknown option(s) {', '.join(unknown)}")


def _fps(spec: str, options: dict[str, str], default: float | None) -> float | None:
    if "fps" not in options:
        return default
    try:
        fps = float(options["fps"])
    except ValueError:
        fps = 0.0
    if not 0.0 < fps <= 240.0:
        raise CameraSpecError(f"camera setting {spec!r}: fps must be a number in (0, 240]")
    return fps
