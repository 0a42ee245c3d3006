"""The files a credential travels as: the badge image, the baked badge (OB 3.0 baking), the PDF certificate.

Baking is checked against readers this project did not write: Pillow reads the chunk back, and the
certificate's text and QR code are read by pypdf and zxing-cpp from the PDF as a viewer would.
"""

from __future__ import annotations

import io
import json
import struct
import zlib

import pypdf
import pytest
import zxingcpp
from PIL import Image, PngImagePlugin

from grader.credentials import verify
from grader.credentials.issuing import SignedCredential
from grader.services.credential_files import (
    BADGE_SIZE,
    DamagedImage,
    badge_png,
    baked_png,
    certificate_pdf,
    credential_chunks,
    unbake_png,
)
from grader.services.credentials import PublicView, ShownResult
from tests.unit.credentials.sample_award import IssuerWorld

URL = "https://grader.example.org/credentials/0c9d2a1e-6a3b-4b8e-9e0e-3f7d5a2c1b00"


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, read with nothing but the PNG layout."""
    found, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        found.append((data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]))
        offset += 12 + length
    return found


def view(**changes: object) -> PublicView:
    values: dict[str, object] = {
        "id": "0c9d2a1e-6a3b-4b8e-9e0e-3f7d5a2c1b00",
        "url": URL,
        "status": "active",
        "revocation_reason": "",
        "name": "Supply Chain Management Fundamentals",
        "description": "Designs inventory policies.",
        "criteria": "Pass the quiz and the case study.",
        "issuer_name": "Example Academy",
        "issuer_id": "did:web:grader.example.org",
        "valid_from": "2027-03-01T09:00:00Z",
        "valid_until": None,
        "results": (
            ShownResult("quiz", "Supply chain fundamentals quiz", "8.5", "10", (), "automatic tests"),
            ShownResult("case", "Inventory policy case study", "27", "30", (), "a reviewer"),
        ),
        "hidden": 1,
    }
    values.update(changes)
    return PublicView(**values)  # type: ignore[arg-type]


def pdf_text(data: bytes) -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    assert len(reader.pages) == 1
    return reader.pages[0].extract_text()


# ---------------------------------------------------------------- the badge image


def test_the_badge_is_a_512_pixel_png_the_same_for_the_same_title() -> None:
    image = Image.open(io.BytesIO(badge_png("Python Web Developer")))
    assert image.format == "PNG"
    assert image.size == (BADGE_SIZE, BADGE_SIZE)
    assert badge_png.__wrapped__("Python Web Developer") == badge_png("Python Web Developer")
    assert badge_png("Python Web Developer") != badge_png("Supply Chain Management Fundamentals")


def test_a_long_or_non_latin_title_still_makes_a_badge() -> None:
    for title in ("A" * 300, "Программист на Python", ""):
        assert Image.open(io.BytesIO(badge_png(title))).size == (BADGE_SIZE, BADGE_SIZE)


# ---------------------------------------------------------------- baking


def test_a_baked_jwt_comes_back_and_still_verifies(signed: SignedCredential, world: IssuerWorld) -> None:
    baked = baked_png(badge_png("Python Web Developer"), signed.jwt)
    assert unbake_png(baked) == signed.jwt
    assert verify(unbake_png(baked) or "", world.trusted()).verified


def test_baked_json_ld_comes_back_byte_for_byte(signed: SignedCredential) -> None:
    text = json.dumps(signed.json_ld, ensure_ascii=False, indent=2) + "\n  naïve ☃"
    assert unbake_png(baked_png(badge_png("X"), text)) == text


def test_the_chunk_is_an_uncompressed_itxt_with_the_openbadgecredential_keyword(
    signed: SignedCredential,
) -> None:
    baked = baked_png(badge_png("X"), signed.jwt)
    credential = [body for kind, body in chunks(baked) if body.startswith(b"openbadgecredential\0")]
    assert len(credential) == 1
    kinds = [kind for kind, _ in chunks(baked)]
    assert kinds[kinds.index(b"IHDR") + 1] == b"iTXt"  # before any image data
    # keyword, NUL, compression flag 0, method 0, empty language tag, NUL, empty translated keyword, NUL
    assert credential[0] == b"openbadgecredential\0\0\0\0\0" + signed.jwt.encode()
    # Pillow, a reader we did not write, finds it as international text under that keyword.
    image = Image.open(io.BytesIO(baked))
    assert image.text["openbadgecredential"] == signed.jwt
    assert isinstance(image.text["openbadgecredential"], PngImagePlugin.iTXt)


def test_every_chunk_of_a_baked_badge_has_a_valid_crc_and_the_picture_is_unchanged() -> None:
    badge = badge_png("Python Web Developer")
    baked = baked_png(badge, "a.b.c")
    offset = 8
    while offset < len(baked):
        (length,) = struct.unpack(">I", baked[offset : offset + 4])
        body = baked[offset + 4 : offset + 8 + length]
        (crc,) = struct.unpack(">I", baked[offset + 8 + length : offset + 12 + length])
        assert zlib.crc32(body) == crc
        offset += 12 + length
    assert Image.open(io.BytesIO(baked)).tobytes() == Image.open(io.BytesIO(badge)).tobytes()


def test_baking_a_baked_badge_replaces_the_credential_instead_of_adding_one() -> None:
    once = baked_png(badge_png("X"), "first.credential.jwt")
    twice = baked_png(once, "second.credential.jwt")
    assert credential_chunks(twice) == ["second.credential.jwt"]
    assert unbake_png(twice) == "second.credential.jwt"
    assert twice == baked_png(badge_png("X"), "second.credential.jwt")


def test_a_chunk_written_by_pillow_is_read_compressed_or_not() -> None:
    for compressed in (False, True):
        info = PngImagePlugin.PngInfo()
        info.add_itxt("openbadgecredential", "header.payload.signature", zip=compressed)
        buffer = io.BytesIO()
        Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
        assert unbake_png(buffer.getvalue()) == "header.payload.signature"


def test_a_png_without_a_baked_credential_has_none() -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("Comment", "not a credential")
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, format="PNG", pnginfo=info)
    assert unbake_png(buffer.getvalue()) is None
    assert unbake_png(badge_png("X")) is None


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda png: b"GIF89a" + png[6:], "not a PNG image"),
        (lambda png: png[:40], "cut short"),
        (lambda png: png[:20] + bytes([png[20] ^ 1]) + png[21:], "checksum of its IHDR chunk is wrong"),
        (lambda png: png[:8] + png[33:], "does not begin with an IHDR chunk"),
    ],
)
def test_a_damaged_png_is_refused_with_what_is_wrong(damage: object, said: str) -> None:
    baked = baked_png(badge_png("X"), "a.b.c")
    with pytest.raises(DamagedImage, match=said):
        unbake_png(damage(baked))  # type: ignore[operator]
    with pytest.raises(DamagedImage, match=said):
        baked_png(damage(baked), "a.b.c")  # type: ignore[operator]


def test_a_compressed_chunk_is_inflated_no_further_than_a_credential_can_be() -> None:
    bomb = zlib.compress(b"0" * 5_000_000)
    body = b"openbadgecredential\0\1\0\0\0" + bomb
    chunk = struct.pack(">I", len(body)) + b"iTXt" + body + struct.pack(">I", zlib.crc32(b"iTXt" + body))
    png = badge_png("X")
    with pytest.raises(DamagedImage, match="over 1000000 bytes"):
        unbake_png(png[:33] + chunk + png[33:])


# ---------------------------------------------------------------- the certificate


def test_the_certificate_names_the_achievement_holder_issuer_date_results_and_url() -> None:
    text = pdf_text(certificate_pdf(view(), holder="Zoë Łukasiewicz"))
    assert "Supply Chain Management" in text and "Fundamentals" in text
    assert "Zoë Łukasiewicz" in text
    assert "by Example Academy, on 1 March 2027" in text
    assert "Supply chain fundamentals quiz: 8.5 of 10" in text
    assert "Inventory policy case study: 27 of 30" in text
    assert "1 result not shown by the holder's choice." in text
    assert URL in text.replace("\n", "")


def test_the_certificate_qr_code_decodes_to_the_public_url() -> None:
    reader = pypdf.PdfReader(io.BytesIO(certificate_pdf(view(), holder="Ada")))
    decoded = [
        barcode.text
        for picture in reader.pages[0].images
        for barcode in zxingcpp.read_barcodes(picture.image.convert("L"))
        if barcode.format == zxingcpp.BarcodeFormat.QRCode
    ]
    assert decoded == [URL]
    assert [link["/A"]["/URI"] for link in (a.get_object() for a in reader.pages[0]["/Annots"])] == [URL, URL]


def test_a_revoked_credential_certificate_says_so_with_the_reason() -> None:
    text = pdf_text(certificate_pdf(view(status="revoked", revocation_reason="plagiarism"), holder="Ada"))
    assert "Revoked: plagiarism" in text


def test_the_same_credential_gives_the_same_pdf() -> None:
    assert certificate_pdf(view(), holder="Ada") == certificate_pdf(view(), holder="Ada")
    assert certificate_pdf(view(), holder="Ada") != certificate_pdf(view(), holder="Bob")
