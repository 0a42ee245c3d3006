"""The files a credential travels as: the program's badge image, the baked badge, the PDF certificate.

- `badge_png(title)`: the achievement's image, generated (a medallion with the program's name on it),
  512 x 512, the same bytes for the same title on the same machine, cached per process.
- `baked_png(badge, credential)` / `unbake_png(data)`: Open Badges 3.0 baking (section "Baked Badge"):
  one uncompressed `iTXt` chunk with the keyword `openbadgecredential` whose text is the VC-JWT or the
  JSON-LD credential; baking an image that holds one already replaces it, since the chunk must not
  appear twice. PNG chunks are read and written here byte by byte, so what goes in is exactly what the
  specification says, with every chunk's CRC checked on the way out.
- `certificate_pdf(view, holder=...)`: a one-page certificate (ReportLab) naming the achievement, the
  holder, the issuer, the date, the results the holder shows, and the public URL with a QR code to it.

No Flask and no database: the web layer passes what it read.
"""

from __future__ import annotations

import hashlib
import io
import math
import struct
import textwrap
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import segno
from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4, landscape
from reportlab.lib.utils import ImageReader, simpleSplit
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas

from grader.credentials.verify import MAX_CREDENTIAL_BYTES
from grader.errors import InvalidInput
from grader.models import Program
from grader.services.credentials import PublicView

BADGE_SIZE = 512
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
BAKING_KEYWORD = b"openbadgecredential"
MAX_CHUNK_LENGTH = 2**31 - 1  # the PNG specification's own bound on one chunk

# DejaVu (Debian's fonts-dejavu-core) covers Latin, Greek and Cyrillic names; where it is missing the
# badge falls back to Pillow's own font and the certificate to Helvetica (Latin-1 only).
FONT_FOLDER = Path("/usr/share/fonts/truetype/dejavu")
REGULAR_FONT = FONT_FOLDER / "DejaVuSans.ttf"
BOLD_FONT = FONT_FOLDER / "DejaVuSans-Bold.ttf"

# Dark enough for white text on them (at least 4.5:1), light enough to tell apart.
PALETTE = ("#2457c5", "#136c33", "#7a3db8", "#b42318", "#0f6b7a", "#8a4b0f")


class DamagedImage(InvalidInput):
    """A file that is not a PNG image, or a PNG whose chunks cannot be read."""

    code = "damaged_image"


# ---------------------------------------------------------------- the badge image


def _badge_font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if BOLD_FONT.is_file():
        return ImageFont.truetype(str(BOLD_FONT), size)
    return ImageFont.load_default(size=size)


def _wrapped(title: str, width: int, draw: ImageDraw.ImageDraw) -> tuple[list[str], int]:
    """The title in at most four lines that fit `width`, at the largest size from 56 px down."""
    words = title.split() or ["Credential"]
    for size in range(56, 15, -4):
        font = _badge_font(size)
        for columns in range(max(len(title), 1), 0, -1):
            lines = textwrap.wrap(" ".join(words), columns, break_long_words=True) or [""]
            if len(lines) > 4:
                break
            if all(draw.textlength(line, font=font) <= width for line in lines):
                return lines, size
    lines = textwrap.wrap(" ".join(words), 18, break_long_words=True, max_lines=4, placeholder="…")
    return lines, 16


def badge_title(program: Program) -> str:
    """The name on a program's badge: its credential's name, as the achievement says it."""
    spec = program.definition.get("credential") or {}
    return str(spec.get("name") or program.title)


@lru_cache(maxsize=64)
def badge_png(title: str) -> bytes:
    """The achievement's image: the name in white on a medallion with two ribbon tails."""
    colour = PALETTE[hashlib.sha256(title.encode()).digest()[0] % len(PALETTE)]
    image = Image.new("RGBA", (BADGE_SIZE, BADGE_SIZE), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    # Ribbon tails first, so the medallion covers their tops.
    draw.polygon([(150, 330), (230, 380), (190, 500), (160, 460), (110, 470)], fill=colour)
    draw.polygon([(362, 330), (282, 380), (322, 500), (352, 460), (402, 470)], fill=colour)
    draw.ellipse((56, 24, 456, 424), fill=colour)
    draw.ellipse((78, 46, 434, 402), outline="white", width=6)
    # A small star above the name: a badge, not a button.
    centre_x, top = BADGE_SIZE // 2, 92
    star = []
    for point in range(10):
        radius = 22 if point % 2 == 0 else 9
        angle = math.radians(point * 36 - 90)
        star.append((centre_x + radius * math.cos(angle), top + 22 + radius * math.sin(angle)))
    draw.polygon(star, fill="white")
    lines, size = _wrapped(title, 300, draw)
    font = _badge_font(size)
    line_height = int(size * 1.2)
    y = 224 - line_height * len(lines) // 2 + 20
    for line in lines:
        draw.text((centre_x, y), line, font=font, fill="white", anchor="mt")
        y += line_height
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------- baking


@dataclass(frozen=True)
class Chunk:
    kind: bytes
    data: bytes

    def encoded(self) -> bytes:
        crc = zlib.crc32(self.kind + self.data) & 0xFFFFFFFF
        return struct.pack(">I", len(self.data)) + self.kind + self.data + struct.pack(">I", crc)


def _read_chunks(data: bytes) -> Iterator[Chunk]:
    """The chunks of a PNG in order, each checked (length, CRC) before it is yielded; stops at IEND."""
    if not data.startswith(PNG_SIGNATURE):
        raise DamagedImage("the file is not a PNG image", details={"field": "file"})
    offset = len(PNG_SIGNATURE)
    first = True
    while True:
        if offset + 8 > len(data):
            raise DamagedImage("the PNG image is cut short: it ends before its IEND chunk")
        length, kind = struct.unpack(">I4s", data[offset : offset + 8])
        end = offset + 12 + length
        if length > MAX_CHUNK_LENGTH or end > len(data):
            raise DamagedImage(f"the PNG image is cut short inside its {_name(kind)} chunk")
        body = data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[end - 4 : end])
        if zlib.crc32(kind + body) & 0xFFFFFFFF != crc:
            raise DamagedImage(f"the PNG image is damaged: the checksum of its {_name(kind)} chunk is wrong")
        if first and kind != b"IHDR":
            raise DamagedImage("the PNG image is damaged: it does not begin with an IHDR chunk")
        first = False
        yield Chunk(kind, body)
        if kind == b"IEND":
            return
        offset = end


def _name(kind: bytes) -> str:
    return kind.decode("latin-1") if kind.isalpha() else repr(kind)


def _is_credential_chunk(chunk: Chunk) -> bool:
    return chunk.kind == b"iTXt" and chunk.data.split(b"\0", 1)[0] == BAKING_KEYWORD


def credential_chunk(credential: str) -> Chunk:
    """The iTXt chunk OB 3.0 asks for: keyword, no compression, empty language and translated keyword."""
    return Chunk(b"iTXt", BAKING_KEYWORD + b"\0" + b"\0\0" + b"\0" + b"\0" + credential.encode("utf-8"))


def baked_png(badge: bytes, credential: str) -> bytes:
    """`badge` with `credential` (the VC-JWT or the JSON-LD text) baked in, replacing any baked before."""
    chunks = [chunk for chunk in _read_chunks(badge) if not _is_credential_chunk(chunk)]
    # Right after IHDR: a reader that stops at the first credential chunk reads no image data first.
    chunks.insert(1, credential_chunk(credential))
    return PNG_SIGNATURE + b"".join(chunk.encoded() for chunk in chunks)


def unbake_png(data: bytes) -> str | None:
    """The credential baked into a PNG (the first `openbadgecredential` iTXt chunk's text), or None."""
    for chunk in _read_chunks(data):
        if _is_credential_chunk(chunk):
            return _itxt_text(chunk.data)
    return None


def _itxt_text(data: bytes) -> str:
    _keyword, _, rest = data.partition(b"\0")
    if len(rest) < 2:
        raise DamagedImage("the PNG image's openbadgecredential chunk is cut short")
    compressed, method, rest = rest[0], rest[1], rest[2:]
    parts = rest.split(b"\0", 2)
    if len(parts) != 3:
        raise DamagedImage("the PNG image's openbadgecredential chunk is cut short")
    text = parts[2]
    if compressed:
        # OB 3.0 forbids compressing it, but a reader may be lenient: inflate with a bound, never a bomb.
        if method != 0:
            raise DamagedImage("the PNG image's openbadgecredential chunk uses an unknown compression")
        inflater = zlib.decompressobj()
        try:
            text = inflater.decompress(text, MAX_CREDENTIAL_BYTES + 1)
        except zlib.error:
            raise DamagedImage("the PNG image's openbadgecredential chunk does not decompress") from None
        if len(text) > MAX_CREDENTIAL_BYTES:
            raise DamagedImage(f"the baked credential is over {MAX_CREDENTIAL_BYTES} bytes")
    try:
        return text.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedImage("the PNG image's openbadgecredential chunk is not UTF-8 text") from None


def credential_chunks(data: bytes) -> list[str]:
    """Every baked credential text in a PNG, in order: for checking that there is only one."""
    return [_itxt_text(chunk.data) for chunk in _read_chunks(data) if _is_credential_chunk(chunk)]


# ---------------------------------------------------------------- the certificate


@lru_cache(maxsize=1)
def _pdf_fonts() -> tuple[str, str]:
    if REGULAR_FONT.is_file() and BOLD_FONT.is_file():
        pdfmetrics.registerFont(TTFont("DejaVuSans", str(REGULAR_FONT)))
        pdfmetrics.registerFont(TTFont("DejaVuSans-Bold", str(BOLD_FONT)))
        return "DejaVuSans", "DejaVuSans-Bold"
    return "Helvetica", "Helvetica-Bold"


def _day(value: str) -> str:
    """2027-03-01T09:00:00Z as '1 March 2027'."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return value[:10]
    return f"{moment.day} {moment:%B %Y}"


def qr_png(url: str, scale: int = 8) -> bytes:
    """The QR code of `url` with the quiet zone the standard asks for (four modules)."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind="png", scale=scale, border=4)
    return buffer.getvalue()


INK = HexColor("#1d2330")
MUTED = HexColor("#5d6677")
ACCENT = HexColor("#2457c5")
ALERT = HexColor("#b42318")
MAX_RESULT_LINES = 8


def certificate_pdf(view: PublicView, *, holder: str) -> bytes:
    """One A4 landscape page: achievement, holder, issuer, date, results shown, public URL and its QR."""
    regular, bold = _pdf_fonts()
    width, height = landscape(A4)
    buffer = io.BytesIO()
    # invariant: no creation time or random document id, so the same credential gives the same bytes.
    pdf = Canvas(buffer, pagesize=(width, height), invariant=True)
    pdf.setTitle(f"{view.name}: certificate")
    pdf.setAuthor(view.issuer_name or view.issuer_id)
    pdf.setSubject(f"Open Badges 3.0 credential {view.url}")

    pdf.setStrokeColor(ACCENT)
    pdf.setLineWidth(3)
    pdf.rect(24, 24, width - 48, height - 48)
    pdf.setLineWidth(0.75)
    pdf.rect(32, 32, width - 64, height - 64)

    badge = ImageReader(io.BytesIO(badge_png(view.name)))
    pdf.drawImage(badge, 64, height - 64 - 120, width=120, height=120, mask="auto")

    left, text_width = 208, width - 208 - 72
    y = height - 84
    pdf.setFillColor(MUTED)
    pdf.setFont(regular, 13)
    pdf.drawString(left, y, "Certificate of achievement")
    y -= 36
    pdf.setFillColor(INK)
    for line in simpleSplit(view.name, bold, 28, text_width)[:3]:
        pdf.setFont(bold, 28)
        pdf.drawString(left, y, line)
        y -= 34
    y -= 6
    pdf.setFont(regular, 13)
    pdf.setFillColor(MUTED)
    pdf.drawString(left, y, "awarded to")
    y -= 28
    pdf.setFillColor(INK)
    for line in simpleSplit(holder or "the holder", bold, 22, text_width)[:2]:
        pdf.setFont(bold, 22)
        pdf.drawString(left, y, line)
        y -= 28
    y -= 4
    pdf.setFont(regular, 13)
    issued = f"by {view.issuer_name or view.issuer_id}, on {_day(view.valid_from)}"
    if view.valid_until:
        issued += f"; valid until {_day(view.valid_until)}"
    for line in simpleSplit(issued, regular, 13, text_width)[:2]:
        pdf.drawString(left, y, line)
        y -= 18
    if view.status in {"revoked", "suspended"}:
        y -= 6
        pdf.setFillColor(ALERT)
        pdf.setFont(bold, 13)
        said = (
            f"Revoked: {view.revocation_reason}"
            if view.status == "revoked"
            else "Suspended while a requirement it rests on is graded again."
        )
        for line in simpleSplit(said, bold, 13, text_width)[:2]:
            pdf.drawString(left, y, line)
            y -= 18
        pdf.setFillColor(INK)

    y -= 14
    if view.results:
        pdf.setFont(bold, 12)
        pdf.drawString(left, y, "Results")
        y -= 18
        pdf.setFont(regular, 11)
        shown = view.results[:MAX_RESULT_LINES]
        for result in shown:
            line = f"{result.name}: {result.score} of {result.max_score}"
            pdf.drawString(left, y, simpleSplit(line, regular, 11, text_width - 150)[0])
            y -= 15
        more = len(view.results) - len(shown)
        if more:
            pdf.drawString(left, y, f"and {more} more on the credential's page")
            y -= 15
    if view.hidden:
        pdf.setFillColor(MUTED)
        pdf.setFont(regular, 10)
        plural = "s" if view.hidden != 1 else ""
        pdf.drawString(left, y, f"{view.hidden} result{plural} not shown by the holder's choice.")
        pdf.setFillColor(INK)

    qr_size = 132
    qr_x, qr_y = width - 64 - qr_size, 56
    pdf.drawImage(ImageReader(io.BytesIO(qr_png(view.url))), qr_x, qr_y, width=qr_size, height=qr_size)
    pdf.setFont(regular, 10)
    pdf.setFillColor(MUTED)
    pdf.drawCentredString(qr_x + qr_size / 2, qr_y - 12, "Scan to verify")
    pdf.setFont(regular, 10)
    pdf.drawString(64, 92, "Check this credential, its signature and whether it still stands, at")
    pdf.setFillColor(ACCENT)
    pdf.setFont("Courier", 9.5)
    url_lines = simpleSplit(view.url, "Courier", 9.5, qr_x - 64 - 24)
    line_y = 76
    for line in url_lines[:3]:
        pdf.drawString(64, line_y, line)
        line_y -= 12
    pdf.linkURL(view.url, (64, line_y, qr_x - 24, 90), relative=0)
    pdf.linkURL(view.url, (qr_x, qr_y, qr_x + qr_size, qr_y + qr_size), relative=0)

    pdf.showPage()
    pdf.save()
    return buffer.getvalue()
