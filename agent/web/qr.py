"""The ticket's QR code as SVG, rendered on the server (no script, no network on the kiosk)."""

from __future__ import annotations

import io

import qrcode
import qrcode.image.svg


def qr_svg(text: str) -> bytes:
    """A standalone SVG (black path on white, 4-module quiet zone) encoding `text`."""
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=4, box_size=10,
                       image_factory=qrcode.image.svg.SvgPathFillImage)
    qr.add_data(text)
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image().save(out)
    return out.getvalue()


def ticket_payload(kiosk: str, number: str, ticket_id: str) -> str:
    """What the ticket's QR says: the kiosk, the number and the ticket id (no personal data)."""
    return f"WK1|{kiosk}|{number}|{ticket_id}"
