"""Safe renditions of portfolio files, on real inputs: images re-encoded without their metadata, PDF pages
rendered by pdftoppm inside the real sandbox (bubblewrap and Docker), a PDF's document information read
and removed, and what a worker without a sandbox records instead of pages."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from pypdf import PdfReader, PdfWriter

from grader.config import Settings
from grader.services import renditions
from grader.storage import file_store
from tests.support.sandboxes import make_runner

ARTIST = 0x013B
ORIENTATION = 0x0112
RED, GREEN, BLUE = (200, 30, 30), (30, 160, 60), (40, 60, 200)


def photo(width: int, height: int, *, artist: str = "Ada Lovelace", orientation: int = 1) -> bytes:
    """A JPEG as a phone writes one: EXIF naming its owner, and an orientation tag."""
    image = Image.new("RGB", (width, height), RED)
    image.paste(BLUE, (0, 0, width // 4, height // 4))  # a mark in the stored top-left corner
    exif = Image.Exif()
    exif[ARTIST] = artist
    exif[ORIENTATION] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", exif=exif, quality=90)
    return out.getvalue()


def pdf(
    colours: list[tuple[int, int, int]], *, author: str = "Ada Lovelace", title: str = "Ada's report"
) -> bytes:
    """A PDF of one plain-coloured page per colour, with document information naming its author."""
    pages = [Image.new("RGB", (850, 1100), colour) for colour in colours]
    first = io.BytesIO()
    pages[0].save(first, format="PDF", save_all=True, append_images=pages[1:], resolution=100)
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(first.getvalue())))
    writer.add_metadata({"/Author": author, "/Title": title})
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tolerance: int = 12) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(pixel[:3], colour, strict=True))


def test_a_photo_is_re_encoded_upright_bounded_and_without_its_exif() -> None:
    original = photo(2400, 1200, orientation=6)  # stored landscape, to be shown turned a quarter right
    picture = renditions.reencode_image(original)

    shown = Image.open(io.BytesIO(picture.png))
    assert shown.format == "PNG" and picture.png != original
    assert (shown.width, shown.height) == (picture.width, picture.height) == (800, 1600)
    assert dict(shown.getexif()) == {} and b"Lovelace" not in picture.png and b"Exif" not in picture.png
    # Orientation 6 turns the stored top-left corner to the top right: the blue mark is there.
    assert near(shown.convert("RGB").getpixel((790, 10)), BLUE)
    assert near(shown.convert("RGB").getpixel((10, 10)), RED)


def test_a_png_keeps_its_pixels_and_loses_its_text_chunks_and_profile() -> None:
    image = Image.new("RGBA", (40, 30), (10, 20, 30, 128))
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Ada Lovelace")
    out = io.BytesIO()
    image.save(out, format="PNG", pnginfo=info, icc_profile=b"\0" * 64)
    picture = renditions.reencode_image(out.getvalue())

    shown = Image.open(io.BytesIO(picture.png))
    assert (shown.width, shown.height, shown.mode) == (40, 30, "RGBA")
    assert shown.getpixel((5, 5)) == (10, 20, 30, 128)
    assert "Author" not in shown.info and "icc_profile" not in shown.info and b"Lovelace" not in picture.png


def test_anything_but_a_png_or_jpeg_is_no_picture() -> None:
    for data in (b"GIF89a" + b"\0" * 64, b"%PDF-1.7\n", b"\x89PNG\r\n\x1a\n" + b"\0" * 20):
        with pytest.raises(renditions.RenditionFailed, match="cannot be decoded"):
            renditions.reencode_image(data)


@pytest.mark.parametrize("backend", ["bwrap", "docker"])
def test_pdf_pages_are_rendered_in_the_box_as_images_of_what_they_show(
    sandbox_ready: None, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = pdf([RED, GREEN, BLUE])
    rendered = renditions.render_pdf(make_runner(backend), document, 3)
    assert rendered.problem is None
    assert [
        near(Image.open(io.BytesIO(p.png)).convert("RGB").getpixel((50, 50)), c)
        for p, c in zip(rendered.pictures, (RED, GREEN, BLUE), strict=True)
    ] == [True, True, True]
    first = rendered.pictures[0]
    assert max(first.width, first.height) == renditions.MAX_EDGE  # a US Letter page, 1237 x 1600
    # Only the first MAX_PDF_PAGES are rendered, whatever the page count says.
    monkeypatch.setattr(renditions, "MAX_PDF_PAGES", 2)
    assert len(renditions.render_pdf(make_runner(backend), document, 3).pictures) == 2


def test_a_pdf_the_reader_cannot_render_gives_a_reason_not_pages(sandbox_ready: None) -> None:
    broken = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
    rendered = renditions.render_pdf(make_runner("bwrap"), broken, 1)
    assert rendered.pictures == () and rendered.problem == "the PDF reader could not render page 1"


def test_document_information_is_read_and_a_copy_without_it_kept() -> None:
    document = pdf([RED])
    assert renditions.pdf_details(document) == {"title": "Ada's report", "author": "Ada Lovelace"}
    stripped = renditions.without_metadata(document)
    assert stripped is not None and b"Lovelace" not in stripped
    reader = PdfReader(io.BytesIO(stripped))
    assert reader.metadata is None and len(reader.pages) == 1


def test_a_worker_without_a_sandbox_records_why_the_pages_are_missing(
    settings: Settings, tmp_path: Path
) -> None:
    store = file_store(settings)
    document, shot = pdf([RED]), photo(300, 200)
    files = [
        {"slot": "report", "sha256": store.put(document), "type": "pdf", "details": {"pages": 1}},
        {"slot": "shot", "sha256": store.put(shot), "type": "jpeg", "details": {}},
    ]
    nowhere = Settings(
        data_dir=settings.data_dir, sandbox_backend="bwrap", sandbox_rootfs=tmp_path / "no-rootfs"
    )
    renditions.clear_cache()
    made = renditions.Renderer(nowhere).prepare(store, files)

    report = made[files[0]["sha256"]]
    assert report["pages"] == [] and report["problem"].startswith("no sandbox on the worker could render")
    assert report["details"]["author"] == "Ada Lovelace"
    assert b"Lovelace" not in store.get(report["anonymous"])
    image = made[files[1]["sha256"]]["image"]
    assert (image["width"], image["height"]) == (300, 200)
    assert Image.open(io.BytesIO(store.get(image["sha256"]))).format == "PNG"
