"""OpenCV image helpers, so that modules outside the device edge never import cv2.

Frames are numpy BGR ``uint8`` arrays (H, W, 3); grayscale images are (H, W) ``uint8``.
"""

from __future__ import annotations

import logging
import unicodedata

import cv2
import numpy as np
import numpy.typing as npt
import qrcode
import qrcode.constants

logger = logging.getLogger(__name__)

Image = npt.NDArray[np.uint8]

_EC_LEVELS = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}


def to_gray(image: Image) -> Image:
    """Grayscale view of a BGR, BGRA or already-gray image."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY), dtype=np.uint8)
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)


def to_bgr(image: Image) -> Image:
    """BGR copy of a gray or BGRA image; a BGR image is returned as is."""
    if image.ndim == 2:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_GRAY2BGR), dtype=np.uint8)
    if image.shape[2] == 4:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_BGRA2BGR), dtype=np.uint8)
    return image


def resize(image: Image, scale: float, *, sharp_edges: bool = False) -> Image:
    """Scale by ``scale``; cubic when enlarging (keeps module edges), area when shrinking."""
    if sharp_edges:
        interpolation = cv2.INTER_NEAREST
    else:
        interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    return np.asarray(cv2.resize(image, None, fx=scale, fy=scale, interpolation=interpolation), dtype=np.uint8)


def letterbox(image: Image, width: int, height: int) -> Image:
    """Fit ``image`` inside width x height keeping its aspect, padded with mid-gray, as BGR."""
    bgr = to_bgr(image)
    h, w = bgr.shape[:2]
    scale = min(width / w, height / h)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    interpolation = cv2.INTER_CUBIC if scale > 1 else cv2.INTER_AREA
    scaled = cv2.resize(bgr, (new_w, new_h), interpolation=interpolation)
    canvas = np.full((height, width, 3), 128, dtype=np.uint8)
    top, left = (height - new_h) // 2, (width - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = scaled
    return canvas


def binarize_otsu(gray: Image) -> Image:
    """Global Otsu threshold after a light blur (helps evenly lit, noisy photos)."""
    blurred = cv2.GaussianBlur(gray, (3, 3), 0)
    _, binary = cv2.threshold(blurred, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return np.asarray(binary, dtype=np.uint8)


def binarize_adaptive(gray: Image, block: int = 31, offset: int = 5) -> Image:
    """Local mean threshold (helps shadows and uneven light across the code)."""
    block = block if block % 2 == 1 else block + 1
    binary = cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_MEAN_C, cv2.THRESH_BINARY, block, offset)
    return np.asarray(binary, dtype=np.uint8)


def sharpen(gray: Image, amount: float = 1.0) -> Image:
    """Unsharp mask: restores module edges of a slightly blurred code."""
    blurred = cv2.GaussianBlur(gray, (0, 0), 2.0)
    sharp = cv2.addWeighted(gray, 1.0 + amount, blurred, -amount, 0)
    return np.asarray(sharp, dtype=np.uint8)


def crop(image: Image, x0: int, y0: int, x1: int, y1: int) -> Image:
    """Crop clamped to the image bounds (may return an empty array)."""
    h, w = image.shape[:2]
    return image[max(0, y0) : min(h, y1), max(0, x0) : min(w, x1)]


def qr_matrix(payload: str | bytes, ec_level: str = "M") -> npt.NDArray[np.bool_]:
    """Module matrix (True = dark) of a QR code for ``payload``, with a 4-module quiet zone.

    Text is encoded as UTF-8 bytes in byte mode, as the Vietnamese ID-card QR is.
    """
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    code = qrcode.QRCode(error_correction=_EC_LEVELS[ec_level], border=4)
    code.add_data(data)
    code.make(fit=True)
    return np.array(code.get_matrix(), dtype=np.bool_)


def qr_image(payload: str | bytes, module_px: int = 4, ec_level: str = "M") -> Image:
    """A black-on-white grayscale QR image, ``module_px`` pixels per module."""
    matrix = qr_matrix(payload, ec_level)
    small = np.where(matrix, 0, 255).astype(np.uint8)
    return resize(small, float(module_px), sharp_edges=True)


def draw_qr(frame: Image, payload: str | bytes, center: tuple[int, int], size: int, *, angle: float = 0.0) -> None:
    """Draw a QR code for ``payload`` into the BGR ``frame`` in place, ``size`` px wide, rotated by ``angle``."""
    matrix = qr_matrix(payload)
    modules = matrix.shape[0]
    px = max(1, size // modules)
    code = np.where(matrix, 0, 255).astype(np.uint8)
    code = resize(code, float(px), sharp_edges=True)
    side = code.shape[0]
    cx, cy = center
    # A warp with a white border paints only the code's square (rotated), leaving the scene around it.
    rot = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
    rot[0, 2] += cx - side / 2
    rot[1, 2] += cy - side / 2
    h, w = frame.shape[:2]
    warped = cv2.warpAffine(code, rot, (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = cv2.warpAffine(np.full_like(code, 255), rot, (w, h), flags=cv2.INTER_NEAREST, borderValue=0)
    sel = mask > 0
    frame[sel] = np.repeat(warped[sel][:, None], 3, axis=1)


def fill_rect(
    frame: Image, top_left: tuple[int, int], bottom_right: tuple[int, int], color: tuple[int, int, int]
) -> None:
    """Filled rectangle in place."""
    cv2.rectangle(frame, top_left, bottom_right, color, thickness=-1)


def vertical_gradient(width: int, height: int, top: tuple[int, int, int], bottom: tuple[int, int, int]) -> Image:
    """A BGR image fading from ``top`` to ``bottom`` color."""
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    top_arr = np.array(top, dtype=np.float32)
    bottom_arr = np.array(bottom, dtype=np.float32)
    column = (1 - t) * top_arr + t * bottom_arr
    return np.ascontiguousarray(np.broadcast_to(column[:, None, :], (height, width, 3)).astype(np.uint8))


def draw_text(
    frame: Image, text: str, origin: tuple[int, int], scale: float, color: tuple[int, int, int], thickness: int = 2
) -> None:
    """Draw text in place.

    OpenCV's Hershey fonts have no Vietnamese glyphs (cv2.putText prints '?' for every accented letter)
    and the headless build has no FreeType module, so accents are folded away: "Quét mã" is drawn as
    "Quet ma". Only the synthetic demo scene draws text; it is camera content, never a message to a person.
    """
    cv2.putText(frame, ascii_fold(text), origin, cv2.FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv2.LINE_AA)


def add_noise(frame: Image, rng: np.random.Generator, sigma: float) -> Image:
    """Gaussian sensor noise, as a new image."""
    noise = rng.normal(0.0, sigma, frame.shape).astype(np.float32)
    return np.asarray(np.clip(frame.astype(np.float32) + noise, 0, 255), dtype=np.uint8)


def ascii_fold(text: str) -> str:
    """Vietnamese text without diacritics ("Đường" -> "Duong")."""
    text = text.replace("Đ", "D").replace("đ", "d")
    return "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))


def load_image(path: str) -> Image | None:
    """Read an image file as BGR; None when the file is missing or not an image."""
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    return None if image is None else np.ascontiguousarray(image)


# --- camera-like degradations (bench and tests): deterministic for a given rng -----------------------

DEGRADATIONS = ("downscale", "blur", "low-contrast", "rotate", "perspective", "jpeg", "camera")


def _scale_factor(image: Image) -> float:
    """Blur radii grow with the image: a 2000 px photo needs more blur than a 256 px crop to look soft."""
    return max(1.0, float(max(image.shape[:2])) / 400.0)


def gaussian_blur(image: Image, sigma: float) -> Image:
    return np.asarray(cv2.GaussianBlur(image, (0, 0), sigma), dtype=np.uint8)


def _contrast(image: Image, alpha: float, mid: float) -> Image:
    out = (image.astype(np.float32) - 128.0) * alpha + mid
    return np.asarray(np.clip(out, 0, 255), dtype=np.uint8)


def _jpeg(image: Image, quality: int) -> Image:
    ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return np.asarray(cv2.imdecode(data, cv2.IMREAD_UNCHANGED), dtype=np.uint8)


def _rotate(image: Image, degrees: float) -> Image:
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(matrix[0, 0]), abs(matrix[0, 1])
    new_w, new_h = int(h * sin + w * cos), int(h * cos + w * sin)
    matrix[0, 2] += new_w / 2 - w / 2
    matrix[1, 2] += new_h / 2 - h / 2
    fill = tuple(float(c) for c in np.median(image.reshape(-1, image.shape[2] if image.ndim == 3 else 1), axis=0))
    return np.asarray(cv2.warpAffine(image, matrix, (new_w, new_h), flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_CONSTANT, borderValue=fill), dtype=np.uint8)


def _perspective(image: Image, rng: np.random.Generator, amount: float) -> Image:
    """The photo seen at an angle: each corner pulled inward by up to ``amount`` of the side."""
    h, w = image.shape[:2]
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    pull = rng.uniform(0, amount, size=(4, 2)) * np.array([w, h], dtype=np.float64)
    dst = (src + pull * np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64)).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    return np.asarray(cv2.warpPerspective(image, matrix, (w, h), flags=cv2.INTER_LINEAR,
                                          borderMode=cv2.BORDER_REPLICATE), dtype=np.uint8)


def degrade(image: Image, kind: str, rng: np.random.Generator) -> Image:
    """``image`` as a worse camera would see it; the same rng state gives the same image.

    ``downscale`` (30–50 % of the size), ``blur`` (Gaussian), ``low-contrast`` (25–40 % of the range,
    shifted, with sensor noise), ``rotate`` (15–40° either way), ``perspective`` (corners pulled in by up
    to 18 %), ``jpeg`` (quality 10–25), ``camera`` (a milder mix of all: smaller, soft, flat, noisy, JPEG).
    """
    k = _scale_factor(image)
    if kind == "downscale":
        return resize(image, float(rng.uniform(0.30, 0.50)))
    if kind == "blur":
        return gaussian_blur(image, float(rng.uniform(0.8, 1.6)) * k)
    if kind == "low-contrast":
        flat = _contrast(image, float(rng.uniform(0.25, 0.40)), float(rng.uniform(90, 170)))
        return add_noise(flat, rng, 3.0)
    if kind == "rotate":
        return _rotate(image, float(rng.uniform(15, 40)) * (1 if rng.random() < 0.5 else -1))
    if kind == "perspective":
        return _perspective(image, rng, 0.18)
    if kind == "jpeg":
        return _jpeg(image, int(rng.integers(10, 26)))
    if kind == "camera":
        out = resize(image, float(rng.uniform(0.5, 0.7)))
        out = gaussian_blur(out, float(rng.uniform(0.6, 1.0)) * _scale_factor(out))
        out = _contrast(out, float(rng.uniform(0.45, 0.6)), float(rng.uniform(100, 160)))
        out = add_noise(out, rng, 4.0)
        return _jpeg(out, int(rng.integers(35, 51)))
    raise ValueError(f"unknown degradation {kind!r}; expected one of {', '.join(DEGRADATIONS)}")
