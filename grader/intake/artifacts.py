"""Portfolio intake: what a learner uploads, links and writes for a portfolio, checked before it is kept.

This module owns the judgement of untrusted portfolio input and nothing else (no Flask, no Celery, no
database, no network): file names, file types read from the content, sizes, links, statements, and the
automatic checks that feed the rubric. It takes the catalog's slot settings as plain values (or any object
with the same attributes), so it does not depend on the catalog schema.

The threats it answers: a file whose content is not what its name says (a program named `.png`, a web
page named `.pdf`), active content that would run on our origin or in a reviewer's browser (HTML, SVG),
polyglot files that one program reads as an image and another as an archive or a PDF, decompression
bombs (images and zips whose few bytes unpack to gigabytes), names that climb out of a folder or read
differently than they are (`..`, slashes, controls, bidirectional overrides, `CON`), uploads too large
to hold (refused while they stream), and links to addresses a reviewer's browser should not be sent to.
The service never fetches a learner's link and this module never resolves a name.

Every refusal is an `InvalidInput` (`PayloadTooLarge` for sizes, `UnsafeArchive` for zip contents) whose
message names the slot's file in words and says the limit in human units, and whose `details` carry
`field` and `rule`.
"""

from __future__ import annotations

import hashlib
import io
import ipaddress
import re
import stat
import string
import unicodedata
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol
from urllib.parse import quote, urlsplit, urlunsplit

import idna
from PIL import Image
from pypdf import PdfReader

from grader.errors import InvalidInput, PayloadTooLarge, UnsafeArchive

# The archive rules of the same package, applied to a zip a portfolio keeps whole (not unpacked).
from grader.intake.archives import (
    _RATIO_GRACE_BYTES,
    ArchivePolicy,
    _check_zip_layout,
    _clean_path,
    _zip_mode,
)
from rubrics.evidence import TestEvidence

KIB = 1024
MIB = 1024 * 1024
MAX_NAME_CHARS = 200
MAX_URL_LENGTH = 2000
# Pillow's own default (about 89 megapixels, and only a warning below twice that) is global and can be
# switched off by any other import; this bound is ours. 50 megapixels keeps 48-megapixel phone photos
# while a decoded image stays under about 200 MB.
MAX_IMAGE_PIXELS = 50_000_000
# Browsers and PDF readers sniff the start of a file: Acrobat looks for `%PDF-` in the first 1024
# bytes, HTML sniffing reads fewer. Markup or a PDF header in this window makes a file two things.
SNIFF_BYTES = 1024
_CHUNK = 64 * KIB
# The zip rules of `grader.intake.archives` (entries, unpacked size, ratio), applied to a zip kept whole.
ZIP_POLICY = ArchivePolicy()

TIMES = "\u00d7"  # the multiplication sign, as in "1280 \u00d7 720 pixels"
KIND_WORDS = {
    "pdf": "a PDF",
    "png": "a PNG image",
    "jpeg": "a JPEG image",
    "text": "a text file",
    "markdown": "a Markdown file",
    "zip": "a ZIP archive",
}
MIME_TYPES = {
    "pdf": "application/pdf",
    "png": "image/png",
    "jpeg": "image/jpeg",
    "text": "text/plain; charset=utf-8",
    "markdown": "text/markdown; charset=utf-8",
    "zip": "application/zip",
}
# What a file name's ending claims; used only to word a refusal, never to decide a type.
_CLAIMED_BY_EXTENSION = {
    "pdf": "a PDF",
    "png": "a PNG image",
    "jpg": "a JPEG image",
    "jpeg": "a JPEG image",
    "txt": "a text file",
    "md": "a Markdown file",
    "markdown": "a Markdown file",
    "zip": "a ZIP archive",
}

# The bidirectional controls of Trojan Source (CVE-2021-42574) and "gpj.exe"-style names.
BIDI_CONTROLS = frozenset(
    [chr(c) for c in range(0x202A, 0x202F)]
    + [chr(c) for c in range(0x2066, 0x206A)]
    + ["\u200e", "\u200f", "\u061c"]
)
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"]
    + [f"{device}{n}" for device in ("COM", "LPT") for n in [*"123456789", "\u00b9", "\u00b2", "\u00b3"]]
)


def _refuse(rule: str, message: str, field: str, **extra: object) -> NoReturn:
    raise InvalidInput(message, details={"field": field, "rule": rule, **extra})


# ---------------------------------------------------------------------------------------------------------
# Words for people


def human_size(size: int | float) -> str:
    """12.4 MB, 512 KB, 3 bytes (binary units, as the catalog's `max_mb`)."""
    value = float(size)
    for unit in ("bytes", "KB", "MB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}".replace(".0 ", " ")
        value /= 1024
    return f"{value:.1f} GB".replace(".0 ", " ")


def _sizes(size: int, limit: int) -> tuple[str, str]:
    """Both sizes in words, or in bytes where rounding would make them read the same (10 MB and 10 MB)."""
    if human_size(size) == human_size(limit):
        return f"{size:,} bytes", f"{limit:,} bytes"
    return human_size(size), human_size(limit)


def _plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _code_point(ch: str) -> str:
    return f"U+{ord(ch):04X} {unicodedata.name(ch, 'unnamed character')}"


def _shown(text: str, limit: int = 80) -> str:
    """`text` quoted for a message: invisible and control characters written as code points, never as
    themselves (a bidi override in an error message would reorder the message too)."""
    out = []
    for ch in text[:limit]:
        invisible = ch in BIDI_CONTROLS or unicodedata.category(ch) in (
            "Cc",
            "Cf",
            "Cs",
            "Co",
            "Cn",
            "Zl",
            "Zp",
        )
        out.append(f"<U+{ord(ch):04X}>" if invisible else ch)
    return '"' + "".join(out) + ("\u2026" if len(text) > limit else "") + '"'


def _subject(title: str, name: str = "", default: str = "the file") -> str:
    """How a message names the learner's file: the slot's title in words, then the file name."""
    words = title.strip()
    if words:
        # "Design note" reads "the design note"; an acronym ("CV", "UX study") keeps its capitals.
        if not words[:2].isupper():
            words = words[0].lower() + words[1:]
        if not re.match(r"(?i)(the|your|a|an) ", words):
            words = f"the {words}"
    else:
        words = default
    return f"{words} {_shown(name)}" if name else words


def _in_words(kinds: Sequence[str]) -> str:
    names = [KIND_WORDS.get(kind, kind) for kind in dict.fromkeys(kinds)]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


# ---------------------------------------------------------------------------------------------------------
# File names


def safe_file_name(name: str, *, field: str = "file") -> str:
    """The upload's name, NFC-normalised, or `InvalidInput` saying exactly what is wrong with it.

    The stored copy is named by its SHA-256, so the name is only ever shown and offered on download; it
    must still read as what it is, and be a single name a reviewer's computer can save.
    """
    shown = _shown(name)
    if not name or not name.strip():
        _refuse("bad_name", "the file has no name: give the file a name and upload it again", field)
    if "/" in name:
        _refuse(
            "bad_name",
            f"the file name {shown} holds a slash: upload the file itself, not a folder path",
            field,
        )
    if "\\" in name:
        message = f"the file name {shown} holds a backslash: upload the file itself, not a folder path"
        _refuse("bad_name", message, field)
    if name in (".", ".."):
        message = f"the file name {shown} names a folder, not a file: upload the file itself"
        _refuse("bad_name", message, field)
    if "\0" in name:
        _refuse("bad_name", f"the file name {shown} holds a NUL character: rename the file", field)
    for ch in name:
        if ch in BIDI_CONTROLS:
            message = (
                f"the file name {shown} holds {_code_point(ch)}, an invisible character that changes the "
                "order in which the name reads: rename the file without it"
            )
            _refuse("bidi_chars", message, field)
        category = unicodedata.category(ch)
        if category == "Cc":
            message = f"the file name {shown} holds a control character ({_code_point(ch)}): rename the file"
            _refuse("control_chars", message, field)
        if category == "Cs":
            _refuse("bad_name", f"the file name {shown} is not valid text: rename the file", field)
    if set(name) == {"."}:
        _refuse("bad_name", f"the file name {shown} is only dots: rename the file", field)
    normal = unicodedata.normalize("NFC", name)
    if len(normal) > MAX_NAME_CHARS:
        message = f"the file name {shown} is {len(normal)} characters long; the most is {MAX_NAME_CHARS}"
        _refuse("name_too_long", message, field, limit=MAX_NAME_CHARS)
    # Windows reads "con.txt", "CON .pdf" and "com1.png" as devices, whatever the extension.
    device = normal.split(".", 1)[0].rstrip(" ").upper()
    if device in _WINDOWS_RESERVED:
        message = f"the file name {shown} is reserved on Windows ({device} is a device name): rename the file"
        _refuse("reserved_name", message, field)
    return normal


# ---------------------------------------------------------------------------------------------------------
# Types, by content


@dataclass(frozen=True)
class DetectedType:
    """What a file is, read from its bytes: `kind` is pdf, png, jpeg, zip or text; `label` in words."""

    kind: str
    label: str
    pages: int | None = None
    width: int | None = None
    height: int | None = None
    members: int | None = None
    unpacked_bytes: int | None = None
    lines: int | None = None


class _Damaged(Exception):
    """A file that starts like a known type but does not parse as one."""


_EXECUTABLE_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x7fELF", "an ELF program (Linux)"),
    (b"\xfe\xed\xfa\xce", "a Mach-O program (macOS)"),
    (b"\xfe\xed\xfa\xcf", "a Mach-O program (macOS)"),
    (b"\xce\xfa\xed\xfe", "a Mach-O program (macOS)"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O program (macOS)"),
    (b"\xca\xfe\xba\xbe", "a Mach-O universal program or Java class"),
    (b"\x00asm", "a WebAssembly module"),
)
# Formats people do upload but no slot takes: named, so the refusal can say what to export instead.
_OTHER_FORMATS: tuple[tuple[bytes, int, str], ...] = (
    (b"GIF87a", 0, "a GIF image"),
    (b"GIF89a", 0, "a GIF image"),
    (b"WEBP", 8, "a WebP image"),
    (b"ftypheic", 4, "a HEIC photo"),
    (b"ftypheix", 4, "a HEIC photo"),
    (b"ftypmif1", 4, "a HEIF image"),
    (b"II*\x00", 0, "a TIFF image"),
    (b"MM\x00*", 0, "a TIFF image"),
    (b"BM", 0, "a BMP image"),
    (b"\x1f\x8b", 0, "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", 0, "a 7-Zip archive"),
    (b"Rar!\x1a\x07", 0, "a RAR archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", 0, "an old Microsoft Office document"),
    (b"{\\rtf", 0, "an RTF document"),
)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_HTML_MARKERS = (b"<html", b"<script", b"<!doctype html")
_UTF8_BOM = b"\xef\xbb\xbf"
# C0 controls but tab, newline, vertical tab, form feed and return; DEL; C1 controls.
_CONTROLS = re.compile("[\x00-\x08\x0e-\x1f\x7f-\x9f]")


def detect_type(
    data: bytes,
    *,
    subject: str = "the file",
    field: str = "file",
    name: str = "",
    zip_policy: ArchivePolicy = ZIP_POLICY,
) -> DetectedType:
    """What `data` is, from its bytes alone, or `InvalidInput` for anything refused whatever the slot.

    `subject` ("the design note \"notes.pdf\"") and `name` only word the refusal; the name's extension is
    never used to decide. Programs, HTML, SVG and polyglots are refused; so are damaged files and types no
    slot takes. A PDF is parsed (page count), an image decoded in full (dimensions, bounded pixels), a zip's
    every entry checked and decompressed (counted, never written), text decoded as UTF-8.
    """
    if not data:
        _refuse("empty", f"{subject} is empty (0 bytes): choose the file again", field)
    head = data[:SNIFF_BYTES]
    claim = _claimed(name)
    program = _program(data)
    if program:
        message = f"{subject} is {program}{claim}: programs and scripts are never accepted"
        _refuse("executable", message, field, detected=program)
    primary = _primary(data)
    _refuse_markup(data, head, primary, subject, field, claim)
    pdf_at = head.find(b"%PDF-")
    if pdf_at > 0:
        both = (
            f"both {KIND_WORDS[primary]} and a PDF"
            if primary
            else "a PDF that does not start at its first byte"
        )
        message = (
            f"{subject} is {both} (a PDF header at byte {pdf_at}, a polyglot file): "
            "save or export it again as one plain file"
        )
        _refuse("polyglot", message, field, detected="pdf")
    if primary != "zip" and _opens_as_zip(data):
        what = KIND_WORDS[primary] if primary else "a text file"
        message = (
            f"{subject} is both {what} and a ZIP archive (a polyglot file): "
            "save or export it again as one plain file"
        )
        _refuse("polyglot", message, field, detected="zip")
    try:
        if primary == "png":
            return _png(data, subject, field)
        if primary == "jpeg":
            return _jpeg(data, subject, field)
        if primary == "pdf":
            return _pdf(data, subject, field)
        if primary == "zip":
            return _zip(data, subject, field, zip_policy)
    except _Damaged as damage:
        message = (
            f"{subject} looks like {KIND_WORDS[str(primary)]} but is damaged ({damage}): export it again"
        )
        _refuse("damaged", message, field, detected=primary)
    return _text(data, subject, field)


def _claimed(name: str) -> str:
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    claimed = _CLAIMED_BY_EXTENSION.get(extension)
    return f", though its name ends in .{extension} like {claimed}" if claimed else ""


def _program(data: bytes) -> str | None:
    for magic, what in _EXECUTABLE_MAGIC:
        if data.startswith(magic):
            return what
    if data.removeprefix(_UTF8_BOM).startswith(b"#!"):
        return "a script (it starts with #!)"
    if data.startswith(b"MZ"):
        # A DOS/Windows program; a text that merely starts with the letters "MZ" has no PE header and
        # decodes as text.
        pe_offset = int.from_bytes(data[0x3C:0x40], "little") if len(data) >= 0x40 else -1
        if 0 < pe_offset < len(data) - 4 and data[pe_offset : pe_offset + 4] == b"PE\0\0":
            return "a Windows program (PE)"
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "a DOS or Windows program (MZ)"
    return None


def _primary(data: bytes) -> str | None:
    """The binary type the first bytes claim; None for anything else (text, or refused later)."""
    if data.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(_PNG_SIGNATURE):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    return None


def _refuse_markup(
    data: bytes, head: bytes, primary: str | None, subject: str, field: str, claim: str
) -> None:
    """HTML and SVG run scripts when a browser opens them: refused as files, or hidden inside another."""
    lowered = head.lower()
    if primary is None and data.removeprefix(_UTF8_BOM).lstrip().startswith(b"<"):
        # A markup document may open with a long comment or doctype; look through all of it.
        lowered = data.lower()
    if b"<svg" in lowered:
        kind = f"both {KIND_WORDS[primary]} and an SVG image" if primary else "an SVG image"
        message = (
            f"{subject} is {kind}{claim}: SVG files can carry scripts and are never accepted; "
            "export the picture as PNG"
        )
        _refuse("svg", message, field, detected="svg")
    if any(marker in lowered for marker in _HTML_MARKERS):
        kind = f"both {KIND_WORDS[primary]} and an HTML page" if primary else "an HTML page"
        message = (
            f"{subject} is {kind}{claim}: web pages run in the reviewer's browser and are never "
            "accepted; print or export it as a PDF"
        )
        _refuse("html", message, field, detected="html")


def _opens_as_zip(data: bytes) -> bool:
    """True when a zip reader would find an archive in `data` (an end record in its last 64 KiB)."""
    if b"PK\x05\x06" not in data[-(65536 + 22) :]:
        return False
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            archive.infolist()
    except Exception:  # whatever stops zipfile, a zip reader would not open it either
        return False
    return True


def _hidden_tail(data: bytes, end: int, what: str, subject: str, field: str) -> None:
    """Bytes after an image's end marker are where GIFAR-style polyglots keep their second file."""
    tail = data[end:]
    if tail.strip(b"\x00"):  # a few zero bytes of padding are harmless and some encoders write them
        message = (
            f"{subject} carries {human_size(len(tail))} of data after the end of {what} "
            "(hidden content, as in a polyglot file; phone photos sometimes append a second picture or "
            f"a video): export it again as a plain {what.split()[1]}"
        )
        _refuse("polyglot", message, field, detected=what)


def _png(data: bytes, subject: str, field: str) -> DetectedType:
    pos = len(_PNG_SIGNATURE)
    while True:
        if pos + 12 > len(data):
            raise _Damaged("it is cut short")
        length = int.from_bytes(data[pos : pos + 4], "big")
        chunk_type = data[pos + 4 : pos + 8]
        pos += 12 + length
        if length > 0x7FFFFFFF or pos > len(data):
            raise _Damaged("a chunk runs past the end of the file")
        if chunk_type == b"IEND":
            break
    _hidden_tail(data, pos, "a PNG image", subject, field)
    width, height = _decode_image(data, "PNG", subject, field)
    return DetectedType("png", f"a PNG image of {width} {TIMES} {height} pixels", width=width, height=height)


def _jpeg_end(data: bytes) -> int:
    """The offset just past the EOI marker of the JPEG at the start of `data`, found by walking its
    segments (a thumbnail in EXIF has its own EOI, inside a segment, and is skipped over)."""
    size = len(data)
    pos = 2
    while pos < size:
        if data[pos] != 0xFF:
            raise _Damaged("a segment does not start with a marker")
        while pos < size and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= size:
            break
        marker = data[pos]
        pos += 1
        if marker == 0xD9:
            return pos
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        if pos + 2 > size:
            break
        length = int.from_bytes(data[pos : pos + 2], "big")
        if length < 2 or pos + length > size:
            raise _Damaged("a segment runs past the end of the file")
        pos += length
        if marker == 0xDA:
            # Entropy-coded data: 0xFF is followed by 0x00 (a stuffed byte) or a restart marker until the
            # next real marker.
            while True:
                pos = data.find(b"\xff", pos)
                if pos < 0 or pos + 1 >= size:
                    raise _Damaged("the image data has no end")
                following = data[pos + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    pos += 2
                elif following == 0xFF:
                    pos += 1
                else:
                    break
    raise _Damaged("it has no end marker")


def _jpeg(data: bytes, subject: str, field: str) -> DetectedType:
    _hidden_tail(data, _jpeg_end(data), "a JPEG image", subject, field)
    width, height = _decode_image(data, "JPEG", subject, field)
    return DetectedType(
        "jpeg", f"a JPEG image of {width} {TIMES} {height} pixels", width=width, height=height
    )


def _decode_image(data: bytes, image_format: str, subject: str, field: str) -> tuple[int, int]:
    """Decode every pixel with Pillow (only the one format the magic bytes named), pixels bounded first."""
    try:
        image = Image.open(io.BytesIO(data), formats=[image_format])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        _too_many_pixels(subject, field, None)
    except Exception as exc:  # Pillow raises many types for malformed input; none is ours to let escape
        raise _Damaged("Pillow cannot read it") from exc
    with image:
        width, height = image.size
        if width * height > MAX_IMAGE_PIXELS:
            _too_many_pixels(subject, field, (width, height))
        try:
            image.load()
        except Exception as exc:  # truncated data, bad Huffman tables, zlib errors ...
            raise _Damaged("its pixels do not decode") from exc
        # Pillow names a JPEG that carries further pictures (a camera's MPO) by that format.
        if image.format not in ({"JPEG", "MPO"} if image_format == "JPEG" else {image_format}):
            raise _Damaged(f"Pillow reads it as {image.format}")
    return width, height


def _too_many_pixels(subject: str, field: str, size: tuple[int, int] | None) -> NoReturn:
    dimensions = f" ({size[0]:,} {TIMES} {size[1]:,} pixels)" if size else ""
    message = (
        f"{subject} is too large an image{dimensions}; the most is {MAX_IMAGE_PIXELS // 1_000_000} "
        "megapixels: export it at a smaller size"
    )
    _refuse("too_many_pixels", message, field, limit=MAX_IMAGE_PIXELS)


def _pdf(data: bytes, subject: str, field: str) -> DetectedType:
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        encrypted = reader.is_encrypted
        pages = 0 if encrypted else len(reader.pages)
    except Exception as exc:  # pypdf raises many types for malformed input
        raise _Damaged("a PDF reader cannot open it") from exc
    if encrypted:
        message = f"{subject} is a password-protected PDF: save it again without a password"
        _refuse("encrypted", message, field, detected="pdf")
    if pages < 1:
        raise _Damaged("it has no pages")
    return DetectedType("pdf", f"a PDF of {_plural(pages, 'page')}", pages=pages)


def _zip(data: bytes, subject: str, field: str, policy: ArchivePolicy) -> DetectedType:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
            if not infos:
                _refuse("empty", f"{subject} is an empty ZIP archive", field)
            if len(infos) > policy.max_entries:
                message = f"{subject} holds {len(infos):,} entries; the most is {policy.max_entries:,}"
                _refuse("too_many_entries", message, field, limit=policy.max_entries)
            declared = sum(info.file_size for info in infos)
            if declared > policy.max_total_bytes:
                shown, limit = _sizes(declared, policy.max_total_bytes)
                message = f"{subject} unpacks to {shown}; the most is {limit}"
                _refuse("too_large", message, field, limit=policy.max_total_bytes)
            _check_zip_layout(infos)
            unpacked = 0
            for info in infos:
                _clean_path(info.filename)
                kind = stat.S_IFMT(_zip_mode(info))
                if kind == stat.S_IFLNK:
                    raise UnsafeArchive("the archive contains a symbolic link", details={"rule": "link"})
                if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
                    message = "the archive contains a special file"
                    raise UnsafeArchive(message, details={"rule": "special_file"})
                if info.flag_bits & 0x1:
                    _refuse("encrypted", f"{subject} is a password-protected ZIP archive", field)
                if not info.is_dir():
                    unpacked = _unpack_counting(archive, info, unpacked, policy, subject, field)
            label = _zip_label(archive, infos)
    except UnsafeArchive as unsafe:
        message = f"{subject} is not a safe ZIP archive: {unsafe.message}"
        raise UnsafeArchive(message, details={**unsafe.details, "field": field}) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, ValueError) as exc:
        raise _Damaged(type(exc).__name__) from exc
    except NotImplementedError:
        _refuse("unsupported", f"{subject} uses a ZIP compression method that is not supported", field)
    return DetectedType("zip", label, members=len(infos), unpacked_bytes=unpacked)


def _unpack_counting(
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    unpacked: int,
    policy: ArchivePolicy,
    subject: str,
    field: str,
) -> int:
    """Decompress one entry into nothing, counting real bytes: headers may lie about sizes, and reading
    to the end makes zipfile check the CRC."""
    written = 0
    with archive.open(info) as stream:
        while chunk := stream.read(_CHUNK):
            written += len(chunk)
            unpacked += len(chunk)
            if unpacked > policy.max_total_bytes:
                message = f"{subject} unpacks to more than {human_size(policy.max_total_bytes)}"
                _refuse("too_large", message, field, limit=policy.max_total_bytes)
            if written > _RATIO_GRACE_BYTES and written > policy.max_ratio * max(info.compress_size, 1):
                _refuse("ratio", f"{subject} is compressed suspiciously well (a zip bomb?)", field)
    return unpacked


def _zip_label(archive: zipfile.ZipFile, infos: Sequence[zipfile.ZipInfo]) -> str:
    names = {info.filename for info in infos}
    files = sum(1 for info in infos if not info.is_dir())
    # Office documents are zips; saying so lets a refusal suggest "export it as a PDF".
    if "[Content_Types].xml" in names:
        for prefix, what in (
            ("word/", "a Word document"),
            ("xl/", "an Excel workbook"),
            ("ppt/", "a PowerPoint"),
        ):
            if any(name.startswith(prefix) for name in names):
                return f"{what} (a ZIP archive)"
    if "mimetype" in names and archive.read("mimetype").startswith(b"application/vnd.oasis.opendocument"):
        return "an OpenDocument file (a ZIP archive)"
    return f"a ZIP archive of {_plural(files, 'file')}"


def _text(data: bytes, subject: str, field: str) -> DetectedType:
    for magic, offset, what in _OTHER_FORMATS:
        if data[offset : offset + len(magic)] == magic:
            message = f"{subject} is {what}, which no slot takes: export it as PNG, JPEG or PDF"
            _refuse("unsupported", message, field, detected=what)
    not_ours = f"{subject} is not a PDF, PNG, JPEG, text or ZIP file"
    if b"\0" in data:
        _refuse("unsupported", f"{not_ours} (it holds binary data)", field)
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        printable = sum(1 for byte in data[:4096] if byte >= 0x20 or byte in b"\t\n\r")
        if printable < 0.95 * min(len(data), 4096):
            _refuse("unsupported", f"{not_ours} (it holds binary data)", field)
        message = f"{subject} is not UTF-8 text (byte {exc.start:,} is not valid UTF-8): save it as UTF-8"
        _refuse("not_utf8", message, field)
    controls = len(_CONTROLS.findall(text))
    if controls > len(text) // 100:
        message = f"{not_ours} (it holds {_plural(controls, 'control character')}, which plain text does not)"
        _refuse("unsupported", message, field)
    lines = text.count("\n") + (0 if text.endswith("\n") or not text else 1)
    return DetectedType("text", f"a text file of {_plural(lines, 'line')}", lines=lines)


# ---------------------------------------------------------------------------------------------------------
# Files for a slot


@dataclass(frozen=True)
class StoredFile:
    """What a portfolio keeps about one accepted file: all that the automatic checks look at."""

    name: str
    size: int
    sha256: str
    kind: str
    pages: int | None = None
    width: int | None = None
    height: int | None = None
    members: int | None = None

    def describe(self) -> str:
        """Say it for people: "a PDF of 3 pages, 1.2 MB" (no file name: names can carry identity)."""
        if self.kind == "pdf" and self.pages is not None:
            what = f"a PDF of {_plural(self.pages, 'page')}"
        elif self.kind in ("png", "jpeg") and self.width is not None and self.height is not None:
            what = f"{KIND_WORDS[self.kind]} of {self.width} {TIMES} {self.height} pixels"
        elif self.kind == "zip" and self.members is not None:
            what = f"a ZIP archive of {self.members:,} {'entry' if self.members == 1 else 'entries'}"
        else:
            what = KIND_WORDS.get(self.kind, f"a {self.kind} file")
        return f"{what}, {human_size(self.size)}"


@dataclass(frozen=True)
class FileCheck:
    """An accepted file: its safe name, size, digest, the slot type it counts as, and what was found."""

    name: str
    size: int
    sha256: str
    kind: str  # one of the slot's types: "markdown" for text when the slot takes Markdown
    mime: str
    detected: DetectedType

    def stored(self) -> StoredFile:
        found = self.detected
        return StoredFile(
            self.name,
            self.size,
            self.sha256,
            self.kind,
            found.pages,
            found.width,
            found.height,
            found.members,
        )


def _slot_kind(detected: str, slot_types: Sequence[str]) -> str:
    # Markdown is text: a text file counts as Markdown wherever the slot takes Markdown.
    if detected == "text" and "markdown" in slot_types:
        return "markdown"
    return detected


def _fits(kind: str, slot_types: Sequence[str]) -> bool:
    """Whether a stored kind suits the slot's types (Markdown and text stand in for each other)."""
    if kind in ("text", "markdown"):
        return "text" in slot_types or "markdown" in slot_types
    return kind in slot_types


def check_file(
    slot_types: Sequence[str], max_bytes: int, name: str, data: bytes, *, field: str = "file", title: str = ""
) -> FileCheck:
    """Accept `data` for a slot taking `slot_types` (pdf, png, jpeg, text, markdown, zip) up to `max_bytes`,
    or raise `InvalidInput` (`PayloadTooLarge` for size) naming the slot's file by `title`."""
    clean = safe_file_name(name, field=field)
    subject = _subject(title, clean)
    if len(data) > max_bytes:
        size, limit = _sizes(len(data), max_bytes)
        raise PayloadTooLarge(
            f"{subject} is {size}; the most is {limit}",
            details={"field": field, "rule": "too_large", "limit": max_bytes, "size": len(data)},
        )
    detected = detect_type(data, subject=subject, field=field, name=clean)
    kind = _slot_kind(detected.kind, slot_types)
    if kind not in slot_types:
        message = f"{subject} is {detected.label}; this slot takes {_in_words(slot_types)}"
        _refuse("type_not_allowed", message, field, detected=detected.kind, allowed=list(slot_types))
    digest = hashlib.sha256(data).hexdigest()
    return FileCheck(clean, len(data), digest, kind, MIME_TYPES[kind], detected)


def check_file_count(count: int, max_files: int, *, field: str = "file", title: str = "") -> None:
    """Refuse a slot handed more than `max_files` files."""
    if count > max_files:
        subject = _subject(title, default="this slot")
        handed_in = f"{_plural(count, 'file')} {'was' if count == 1 else 'were'} handed in"
        message = f"{handed_in} for {subject}; the most is {max_files}"
        _refuse("too_many_files", message, field, limit=max_files, count=count)


class _Readable(Protocol):
    def read(self, size: int, /) -> bytes: ...


class SizeGuard(io.RawIOBase):
    """A read-only stream over an upload that raises `PayloadTooLarge` as soon as more than `max_bytes`
    arrived, so an oversized file is refused while it streams, never held whole.

    It reads from `stream` at most one byte past the limit, in chunks of at most 64 KiB; it can be handed to
    anything that reads a file (hashing, `shutil.copyfileobj`, an object store's upload).
    """

    def __init__(
        self, stream: _Readable, max_bytes: int, *, field: str = "file", title: str = "", name: str = ""
    ) -> None:
        super().__init__()
        self._stream = stream
        self._max_bytes = max_bytes
        self._field = field
        self._subject = _subject(title, name)
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), _CHUNK, self._max_bytes + 1 - self.bytes_read)
        chunk = self._stream.read(wanted) if wanted > 0 else b""
        view[: len(chunk)] = chunk
        self.bytes_read += len(chunk)
        if self.bytes_read > self._max_bytes:
            raise PayloadTooLarge(
                f"{self._subject} is larger than {human_size(self._max_bytes)}, the most it may be",
                details={"field": self._field, "rule": "too_large", "limit": self._max_bytes},
            )
        return len(chunk)


def read_upload(
    stream: _Readable, max_bytes: int, *, field: str = "file", title: str = "", name: str = ""
) -> bytes:
    """The upload's bytes, read in chunks through a `SizeGuard`: at most `max_bytes + 1` are ever read."""
    guard = SizeGuard(stream, max_bytes, field=field, title=title, name=name)
    out = io.BytesIO()
    while chunk := guard.read(_CHUNK):
        out.write(chunk)
    return out.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Links


@dataclass(frozen=True)
class LinkCheck:
    """An accepted link, as text: it is never fetched. `host` is ASCII (punycode); `shown_host` is the
    name a reviewer reads; `private` flags an address or name that points into a local network."""

    url: str
    scheme: str
    host: str
    shown_host: str
    port: int | None
    private: bool
    private_reason: str = ""


_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Printable ASCII is kept as typed (existing %XX escapes too); anything else in a path is percent-encoded.
_URL_SAFE = "".join(ch for ch in string.printable if ch not in string.whitespace)
# Names that never reach the public internet (RFC 6761, RFC 6762 mDNS, RFC 8375, ICANN's .internal),
# and the common home and office suffixes.
_LOCAL_SUFFIXES = (
    "localhost",
    "local",
    "internal",
    "localdomain",
    "home.arpa",
    "arpa",
    "lan",
    "home",
    "corp",
    "intranet",
    "private",
    "test",
    "invalid",
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def check_link(
    url: str, schemes: Sequence[str], hosts: Sequence[str], *, field: str = "link", title: str = ""
) -> LinkCheck:
    """A well-formed link on an allowed host, normalised, with a `private` flag; or `InvalidInput`.

    No DNS is asked: a name is judged as written. Links into private, loopback, link-local or reserved
    space are accepted (with the flag and its reason), since they are only ever shown as text.
    """
    subject = _subject(title, default="the link")
    text = url.strip()
    shown = _shown(text)
    allowed_schemes = [scheme.lower() for scheme in schemes]
    want = " or ".join(f"{scheme}://" for scheme in allowed_schemes)
    if not text:
        _refuse("empty", f"{subject} is empty: paste the address, starting with {want}", field)
    if len(text) > MAX_URL_LENGTH:
        message = f"{subject} is {len(text):,} characters long; the most is {MAX_URL_LENGTH:,}"
        _refuse("too_long", message, field, limit=MAX_URL_LENGTH)
    for ch in text:
        category = unicodedata.category(ch)
        if ch in BIDI_CONTROLS or category in ("Cf", "Co", "Cn", "Cs", "Zl", "Zp"):
            message = f"{subject} {shown} holds {_code_point(ch)}, an invisible character: paste it again"
            _refuse("invisible_chars", message, field)
        if category == "Cc":
            message = f"{subject} {shown} holds a control character ({_code_point(ch)}): paste it again"
            _refuse("control_chars", message, field)
        if ch.isspace():
            message = f"{subject} {shown} holds a space: a web address has none; paste it again"
            _refuse("spaces", message, field)
    if "\\" in text:
        # Browsers read "\" as "/", other parsers do not: the host could differ between them.
        _refuse("backslash", f"{subject} {shown} holds a backslash: use / in web addresses", field)
    match = _SCHEME_RE.match(text)
    if not match:
        _refuse("scheme", f"{subject} {shown} has no scheme: start it with {want}", field)
    scheme = match.group(1).lower()
    if scheme not in allowed_schemes:
        message = f"{subject} {shown} starts with {scheme}:, which is not accepted here: start it with {want}"
        _refuse("scheme", message, field, allowed=allowed_schemes)
    if not text[len(scheme) + 1 :].startswith("//"):
        _refuse("malformed", f"{subject} {shown} is missing // after {scheme}:", field)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        _refuse("malformed", f"{subject} {shown} is not a valid web address (check the host and port)", field)
    if "@" in parts.netloc:
        message = (
            f"{subject} {shown} holds a user name or password before @: remove it and link the page only"
        )
        _refuse("userinfo", message, field)
    raw_host = parts.netloc.rsplit(":", 1)[0] if not parts.netloc.endswith("]") else parts.netloc
    if "%" in raw_host:
        _refuse("host", f"{subject} {shown} has a percent-encoded host: write the site's name plainly", field)
    host, shown_host, address = _host(parts.hostname or "", raw_host.startswith("["), subject, shown, field)
    allowed_hosts = [_normal_host(allowed) for allowed in hosts]
    if allowed_hosts and not any(
        host == allowed or (address is None and host.endswith("." + allowed)) for allowed in allowed_hosts
    ):
        sites = " or ".join(hosts)
        message = (
            f"{subject} goes to {_shown(shown_host)}, which is not accepted here: "
            f"link to {sites} (or a subdomain)"
        )
        _refuse("host_not_allowed", message, field, allowed=list(hosts))
    reason = _address_reason(address) if address is not None else _name_reason(host)
    if (scheme, port) in (("https", 443), ("http", 80)):
        port = None
    netloc = host if port is None else f"{host}:{port}"
    normal = urlunsplit(
        (
            scheme,
            netloc,
            quote(parts.path, safe=_URL_SAFE),
            quote(parts.query, safe=_URL_SAFE),
            quote(parts.fragment, safe=_URL_SAFE),
        )
    )
    if len(normal) > MAX_URL_LENGTH:
        message = f"{subject} is {len(normal):,} characters long once encoded; the most is {MAX_URL_LENGTH:,}"
        _refuse("too_long", message, field, limit=MAX_URL_LENGTH)
    return LinkCheck(normal, scheme, host, shown_host, port, reason is not None, reason or "")


def _normal_host(host: str) -> str:
    host = host.strip().lower().removesuffix(".")
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return host


def _host(
    hostname: str, bracketed: bool, subject: str, shown: str, field: str
) -> tuple[str, str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
    """The host as ASCII, as a reviewer should read it, and its address when it is an IP literal."""
    if not hostname:
        _refuse("host", f"{subject} {shown} names no site", field)
    if bracketed:
        try:
            v6 = ipaddress.IPv6Address(hostname)
        except ValueError:
            _refuse("host", f"{subject} {shown} has an IPv6 address that is not valid", field)
        literal = f"[{v6.compressed}]"
        return literal, literal, v6
    name = hostname.removesuffix(".")
    try:
        ascii_host = idna.encode(name, uts46=True).decode("ascii")
        shown_host = idna.decode(ascii_host)
    except (idna.IDNAError, UnicodeError):
        # Python's own IDNA 2003 codec would accept names IDNA 2008 refuses; only the idna package decides.
        _refuse("host", f"{subject} {shown} has a site name that is not valid: check the spelling", field)
    v4 = _whatwg_ipv4(ascii_host, subject, shown, field)
    if v4 is not None:
        return str(v4), str(v4), v4
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or not all(_LABEL_RE.match(label) for label in labels):
        _refuse("host", f"{subject} {shown} has a site name that is not valid: check the spelling", field)
    return ascii_host, shown_host, None


def _whatwg_ipv4(host: str, subject: str, shown: str, field: str) -> ipaddress.IPv4Address | None:
    """An IPv4 address as a browser reads the host (the WHATWG URL rules): "2130706433", "0x7f.1" and
    "0177.0.0.1" are all 127.0.0.1. None for a name; `InvalidInput` for a number no browser accepts."""
    parts = host.split(".")
    if not re.fullmatch(r"[0-9]+|0x[0-9a-f]*", parts[-1]):
        return None
    numbers: list[int] = []
    for part in parts:
        if re.fullmatch(r"0x[0-9a-f]*", part):
            numbers.append(int(part[2:] or "0", 16))
        elif re.fullmatch(r"0[0-7]+", part):  # a leading zero makes a part octal, as in inet_aton
            numbers.append(int(part, 8))
        elif re.fullmatch(r"[1-9][0-9]*|0", part):
            numbers.append(int(part))
        else:
            numbers = []
            break
    invalid = (
        not numbers
        or len(numbers) > 4
        or any(n > 255 for n in numbers[:-1])
        or numbers[-1] >= 256 ** (5 - len(numbers))
    )
    if invalid:
        _refuse("host", f"{subject} {shown} has a numeric address that is not valid", field)
    value = numbers[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(numbers[:-1]))
    return ipaddress.IPv4Address(value)


def _address_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    if isinstance(address, ipaddress.IPv6Address):
        embedded = [address.ipv4_mapped, address.sixtofour, address.teredo[1] if address.teredo else None]
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        for v4 in embedded:
            reason = _address_reason(v4) if v4 is not None else None
            if reason:
                return f"{reason} inside an IPv6 address"
        if address.is_site_local:
            return "a private address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_private:
        return "a private address"
    if address.is_reserved or not address.is_global:
        return "a reserved address"
    return None


def _name_reason(host: str) -> str | None:
    for suffix in _LOCAL_SUFFIXES:
        if host == suffix or host.endswith("." + suffix):
            return "a loopback name" if suffix == "localhost" else f"a local network name (.{suffix})"
    if "." not in host:
        return "a name without a dot, which only a local network resolves"
    return None


# ---------------------------------------------------------------------------------------------------------
# Statements

_WORD_SEPARATORS = re.compile(r"[\s\u200b]+")  # zero-width space separates words in Thai and Khmer text
# Scripts written without spaces between words: each character counts as one word, as word processors do.
_IDEOGRAPHIC = re.compile(
    "[\u3005\u3007\u3040-\u30ff\u3100-\u312f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f]"
)


def count_words(text: str) -> int:
    """Words in any script: runs of letters, marks and digits between spaces ("don't", "well-known" and
    "3.14" are one each); each Chinese character, kana and kanji counts as one word."""
    count = 0
    for token in _WORD_SEPARATORS.split(text):
        in_word = False
        for ch in token:
            if _IDEOGRAPHIC.match(ch) and unicodedata.category(ch)[0] in "LN":
                count += 1
                in_word = False
            elif unicodedata.category(ch)[0] in "LMN" and not in_word:
                count += 1
                in_word = True
            # punctuation and symbols inside a token neither count nor split ("e.g.", "yes/no")
    return count


@dataclass(frozen=True)
class StatementCheck:
    """An accepted statement: its text (NFC, newlines as \\n, no trailing space) and its word count."""

    text: str
    words: int


def check_statement(
    text: str,
    min_words: int,
    max_words: int,
    *,
    required: bool = True,
    field: str = "statement",
    title: str = "",
) -> StatementCheck:
    """Accept a statement of `min_words` to `max_words` words, or raise `InvalidInput` saying the count."""
    subject = _subject(title, default="the statement")
    normal = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n")).strip()
    for ch in normal:
        category = unicodedata.category(ch)
        if (category == "Cc" and ch not in "\n\t") or category == "Cs":
            message = f"{subject} holds a control character ({_code_point(ch)}): paste the text again"
            _refuse("control_chars", message, field)
    if not normal:
        if required:
            need = f"write at least {_plural(min_words, 'word')}" if min_words else "write something"
            _refuse("empty", f"{subject} is empty: {need}", field)
        return StatementCheck("", 0)
    # Counting is linear, but nothing this long is a statement of `max_words` words.
    max_chars = max(10_000, 25 * max_words)
    if len(normal) > max_chars:
        message = f"{subject} is {len(normal):,} characters long; the most is {max_chars:,}"
        _refuse("too_long", message, field, limit=max_chars)
    words = count_words(normal)
    if words < min_words:
        message = f"{subject} has {_plural(words, 'word')}; it needs at least {min_words:,}"
        _refuse("too_few_words", message, field, words=words, limit=min_words)
    if words > max_words:
        message = f"{subject} has {_plural(words, 'word')}; the most is {max_words:,}"
        _refuse("too_many_words", message, field, words=words, limit=max_words)
    return StatementCheck(normal, words)


# ---------------------------------------------------------------------------------------------------------
# Automatic checks, as evidence for the rubric


class FileSlot(Protocol):
    """A file slot as the catalog declares it (`grader.catalog.schema.Artifact` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def types(self) -> Sequence[str]: ...
    @property
    def max_bytes(self) -> int: ...
    @property
    def max_files(self) -> int: ...


class LinkSlot(Protocol):
    """A link slot (`grader.catalog.schema.LinkSpec` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def schemes(self) -> Sequence[str]: ...
    @property
    def hosts(self) -> Sequence[str]: ...


class StatementSlot(Protocol):
    """A statement slot (`grader.catalog.schema.Statement` fits)."""

    @property
    def id(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def required(self) -> bool: ...
    @property
    def min_words(self) -> int: ...
    @property
    def max_words(self) -> int: ...


@dataclass(frozen=True)
class CheckResult:
    """One automatic check: `id` is `checks/<slot>/<what>`; `explanation` is one line for people."""

    id: str
    slot: str
    what: str
    passed: bool
    explanation: str


def _result(slot: str, what: str, passed: bool, explanation: str) -> CheckResult:
    return CheckResult(f"checks/{slot}/{what}", slot, what, passed, explanation)


def _present(slot_id: str, title: str, required: bool, handed_in: str | None) -> CheckResult:
    if handed_in:
        return _result(slot_id, "present", True, f"{title}: {handed_in}")
    if required:
        return _result(slot_id, "present", False, f"{title}: nothing handed in, and it is required")
    return _result(slot_id, "present", True, f"{title}: nothing handed in (optional)")


def _nothing(slot_id: str, what: str, title: str, required: bool) -> CheckResult:
    needed = "and it is required" if required else "(optional)"
    return _result(slot_id, what, not required, f"{title}: nothing handed in to check, {needed}")


def portfolio_checks(
    *,
    file_slots: Sequence[FileSlot] = (),
    files: Mapping[str, Sequence[StoredFile]] | None = None,
    link_slots: Sequence[LinkSlot] = (),
    links: Mapping[str, str] | None = None,
    statement_slots: Sequence[StatementSlot] = (),
    statements: Mapping[str, str] | None = None,
) -> list[CheckResult]:
    """Every automatic check of a handed-in portfolio, judged again from what was stored.

    Each slot yields the same checks whether or not anything was handed in, so a rubric can name them:
    files `present`, `count`, `type`, `size`; links `present`, `link`; statements `present`, `words`. An
    optional slot left empty passes. A link into a private or loopback network fails `link` (a reviewer
    cannot open it); it was never fetched.
    """
    results: list[CheckResult] = []
    for slot in file_slots:
        stored = list((files or {}).get(slot.id, ()))
        results.extend(_file_checks(slot, stored))
    for link_slot in link_slots:
        results.extend(_link_checks(link_slot, (links or {}).get(link_slot.id, "")))
    for statement_slot in statement_slots:
        results.extend(_statement_checks(statement_slot, (statements or {}).get(statement_slot.id, "")))
    return results


def _file_checks(slot: FileSlot, stored: Sequence[StoredFile]) -> list[CheckResult]:
    types = list(slot.types)
    handed_in = _plural(len(stored), "file") + " handed in" if stored else None
    count_ok = len(stored) <= slot.max_files
    count_line = f"{slot.title}: {_plural(len(stored), 'file')}, " + (
        f"within the limit of {slot.max_files}" if count_ok else f"more than the {slot.max_files} allowed"
    )
    results = [
        _present(slot.id, slot.title, slot.required, handed_in),
        _result(slot.id, "count", count_ok, count_line),
    ]
    if not stored:
        return [
            *results,
            _nothing(slot.id, "type", slot.title, slot.required),
            _nothing(slot.id, "size", slot.title, slot.required),
        ]
    described = "; ".join(item.describe() for item in stored)
    wrong = [item for item in stored if not _fits(item.kind, types)]
    type_line = (
        f"{slot.title}: {described}"
        if not wrong
        else f"{slot.title}: {KIND_WORDS.get(wrong[0].kind, wrong[0].kind)} instead of {_in_words(types)}"
    )
    too_big = [item for item in stored if item.size > slot.max_bytes]
    sizes = ", ".join(human_size(item.size) for item in stored)
    size_line = f"{slot.title}: {sizes}; the most is {human_size(slot.max_bytes)}"
    return [
        *results,
        _result(slot.id, "type", not wrong, type_line),
        _result(slot.id, "size", not too_big, size_line),
    ]


def _link_checks(slot: LinkSlot, url: str) -> list[CheckResult]:
    if not url.strip():
        return [
            _present(slot.id, slot.title, slot.required, None),
            _nothing(slot.id, "link", slot.title, slot.required),
        ]
    present = _present(slot.id, slot.title, slot.required, "a link handed in")
    try:
        link = check_link(url, slot.schemes, slot.hosts, field=slot.id, title=slot.title)
    except InvalidInput as refused:
        return [present, _result(slot.id, "link", False, f"{slot.title}: {refused.message}")]
    if link.private:
        line = (
            f"{slot.title}: a link to {link.shown_host}, {link.private_reason}, which a reviewer cannot open "
            "(the service never fetches it)"
        )
        return [present, _result(slot.id, "link", False, line)]
    return [
        present,
        _result(slot.id, "link", True, f"{slot.title}: a link to {link.shown_host} ({link.scheme})"),
    ]


def _statement_checks(slot: StatementSlot, text: str) -> list[CheckResult]:
    if not text.strip():
        return [
            _present(slot.id, slot.title, slot.required, None),
            _nothing(slot.id, "words", slot.title, slot.required),
        ]
    words = count_words(text)
    passed = slot.min_words <= words <= slot.max_words
    bounds = (
        f"between {slot.min_words:,} and {slot.max_words:,}"
        if slot.min_words
        else f"at most {slot.max_words:,}"
    )
    line = f"{slot.title}: {_plural(words, 'word')} ({bounds} asked for)"
    return [_present(slot.id, slot.title, slot.required, "written"), _result(slot.id, "words", passed, line)]


def checks_as_evidence(results: Sequence[CheckResult], *, points: float = 1.0) -> tuple[TestEvidence, ...]:
    """The checks as test results for the rubric's automatic criteria (`tests: ["checks/*"]`): each worth
    `points`, earned in full when it passed."""
    return tuple(TestEvidence(r.id, r.passed, points if r.passed else 0.0, points) for r in results)


__all__: Sequence[str] = [
    "MAX_IMAGE_PIXELS",
    "CheckResult",
    "DetectedType",
    "FileCheck",
    "FileSlot",
    "LinkCheck",
    "LinkSlot",
    "SizeGuard",
    "StatementCheck",
    "StatementSlot",
    "StoredFile",
    "check_file",
    "check_file_count",
    "check_link",
    "check_statement",
    "checks_as_evidence",
    "count_words",
    "detect_type",
    "human_size",
    "portfolio_checks",
    "read_upload",
    "safe_file_name",
]
