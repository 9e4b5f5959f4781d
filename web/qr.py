"""QR codes for printed notices: an SVG as a data: URI (no file, no script)."""

from __future__ import annotations

import base64
import io

import qrcode
import qrcode.image.svg


def qr_data_uri(text: str) -> str:
    image = qrcode.make(text, image_factory=qrcode.image.svg.SvgPathImage, border=2)
    out = io.BytesIO()
    image.save(out)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def site_url(path: str) -> str:
    """The address of a site path as printed on paper (SITE_URL, the public address)."""
    from flask import current_app

    return current_app.config.get("SITE_URL", "http://127.0.0.1:5000").rstrip("/") + path
