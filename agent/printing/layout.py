"""The ticket's one layout: the same picture is printed, saved as the demo's PNG and shown as the preview.

Text is drawn with a TrueType font that covers Vietnamese (DejaVu, else Noto, from Debian's font
packages), so diacritics never depend on a printer's code page. The result is a 1-bit image as
wide as the paper's printable dots; `raster_rows` packs it for ESC/POS GS v 0.
"""

from __future__ import annotations

import io
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import qrcode
from PIL import Image, ImageDraw, ImageFont, ImageOps, UnidentifiedImageError

from agent.errors import ConfigError

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/truetype/noto"))
FONT_FILES = {False: ("DejaVuSans.ttf", "NotoSans-Regular.ttf"), True: ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf")}
WEEKDAYS_VI = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ Nhật")
TITLES = {"ticket": "PHIẾU SỐ THỨ TỰ", "appointment": "PHIẾU SỐ THỨ TỰ – LỊCH HẸN",
          "dossier": "PHIẾU SỐ THỨ TỰ – TRẢ KẾT QUẢ"}
DEFAULT_FOOTER = ("Sau khi được phục vụ, xin đánh giá mức độ hài lòng trên ki-ốt "
                  "hoặc gửi phản ánh, kiến nghị. Xin cảm ơn!")
MARGIN = 8

Picture = Image.Image  # what other modules call a rendered ticket, without importing Pillow themselves


@dataclass(frozen=True, slots=True)
class TicketView:
    """Everything printed on a ticket; nothing personal (no name, no ID number)."""

    office: str
    number: str
    service: str
    priority: str | None
    ahead: int
    wait_minutes: int
    issued_at: datetime  # local time (Asia/Ho_Chi_Minh)
    qr: str
    kind: str = "ticket"  # ticket, appointment, dossier
    reprint: bool = False
    footer: str = DEFAULT_FOOTER


@lru_cache(maxsize=64)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    for folder in FONT_DIRS:
        for name in FONT_FILES[bold]:
            path = folder / name
            if path.is_file():
                return ImageFont.truetype(str(path), size)
    raise ConfigError("no font with Vietnamese coverage found: install fonts-dejavu-core (see Makefile)",
                      code="font_missing")


def load_logo(path: Path, width: int) -> Image.Image:
    """A logo file as a 1-bit image at most half the paper wide; a clear error if it is not an image."""
    try:
        with Image.open(path) as raw:
            raw.load()
            image = raw.convert("RGBA")
    except FileNotFoundError as exc:
        raise ConfigError(f"printer.logo: {path} does not exist", code="logo_invalid") from exc
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ConfigError(f"printer.logo: {path} is not an image Pillow can read ({exc})", code="logo_invalid") from exc
    flat = Image.new("RGBA", image.size, "white")
    flat.alpha_composite(image)
    gray = flat.convert("L")
    gray.thumbnail((width // 2, 160))
    return gray.convert("1")  # Floyd–Steinberg dithering keeps grey logos readable


def _wrap(draw: ImageDraw.ImageDraw, text: str, face: ImageFont.FreeTypeFont, width: int) -> list[str]:
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}".strip()
            if line and draw.textlength(candidate, font=face) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


class _Canvas:
    """Draws top to bottom on a tall white page, then crops to what was drawn."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.image = Image.new("L", (width, width * 4), 255)
        self.draw = ImageDraw.Draw(self.image)
        self.y = MARGIN

    def text(self, text: str, size: int, *, bold: bool = False, gap: int = 4, invert: bool = False) -> None:
        face = font(size, bold)
        for line in _wrap(self.draw, unicodedata.normalize("NFC", text), face, self.width - 2 * MARGIN):
            left, _top, right, _bottom = self.draw.textbbox((0, 0), line, font=face)
            x = (self.width - (right - left)) // 2 - left
            ascent, descent = face.getmetrics()
            if invert:
                self.draw.rectangle((MARGIN, self.y, self.width - MARGIN, self.y + ascent + descent + 4), fill=0)
            self.draw.text((x, self.y + 2), line, font=face, fill=255 if invert else 0)
            self.y += ascent + descent + gap + (4 if invert else 0)

    def rule(self) -> None:
        self.y += 4
        self.draw.line((MARGIN, self.y, self.width - MARGIN, self.y), fill=0, width=2)
        self.y += 8

    def paste(self, image: Image.Image) -> None:
        self.image.paste(image.convert("L"), ((self.width - image.width) // 2, self.y))
        self.y += image.height + 6

    def result(self) -> Image.Image:
        return self.image.crop((0, 0, self.width, self.y + MARGIN)).convert("1", dither=Image.Dither.NONE)


def qr_image(payload: str, width: int) -> Image.Image:
    """The QR with whole-dot modules (a thermal head cannot print half a dot), about half the paper wide."""
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4)
    code.add_data(payload)
    code.make(fit=True)
    matrix = code.get_matrix()
    modules = len(matrix)
    scale = max(3, (width * 55 // 100) // modules)
    image = Image.new("L", (modules, modules), 255)
    image.putdata([0 if cell else 255 for row in matrix for cell in row])
    return image.resize((modules * scale, modules * scale), Image.Resampling.NEAREST)


def render(view: TicketView, width: int, logo: Image.Image | None = None) -> Image.Image:
    """The ticket as a 1-bit image `width` dots wide (384 for 58 mm paper, 576 for 80 mm)."""
    unit = width / 576  # sizes are designed for 80 mm paper and scaled down for 58 mm
    page = _Canvas(width)
    if logo is not None:
        page.paste(logo)
    page.text(view.office, max(16, round(24 * unit)), bold=True)
    page.rule()
    page.text(TITLES.get(view.kind, TITLES["ticket"]) + (" (IN LẠI)" if view.reprint else ""),
              max(16, round(24 * unit)), bold=True)
    page.text(view.number, round(150 * unit), bold=True, gap=0)
    page.text(view.service, max(18, round(28 * unit)), bold=True, gap=8)
    if view.priority:
        page.text(f"Ưu tiên: {view.priority}", max(16, round(24 * unit)), bold=True, invert=True, gap=8)
    size = max(16, round(24 * unit))
    page.text(f"Số người chờ trước: {view.ahead}", size)
    wait = "được gọi ngay" if view.ahead == 0 else f"khoảng {view.wait_minutes} phút"
    page.text(f"Thời gian chờ dự kiến: {wait}", size)
    local = view.issued_at
    page.text(f"{local:%H:%M} · {WEEKDAYS_VI[local.weekday()]}, {local:%d/%m/%Y}", size)
    page.rule()
    page.paste(qr_image(view.qr, width))
    page.text("Quét mã QR tại ki-ốt để xem lượt của quý vị.", max(14, round(20 * unit)))
    page.rule()
    page.text(view.footer, max(14, round(20 * unit)))
    return page.result()


def raster_rows(image: Image.Image) -> tuple[bytes, int, int]:
    """Pack a 1-bit image for GS v 0: rows MSB first, 1 = black (Pillow's mode "1" packs 1 = white)."""
    if image.mode != "1":
        image = image.convert("1")
    if image.width % 8:
        padded = Image.new("1", (image.width + 8 - image.width % 8, image.height), 1)
        padded.paste(image, (0, 0))
        image = padded
    inverted = ImageOps.invert(image.convert("L")).convert("1", dither=Image.Dither.NONE)
    return inverted.tobytes(), image.width, image.height


def png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG", optimize=False)
    return out.getvalue()
