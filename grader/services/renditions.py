"""Safe renditions of a portfolio's files: what a reviewer's browser is given instead of the upload.

A learner's file is never served as it was uploaded on the app's origin: a browser that decodes it
(or sniffs it as something else) runs the learner's bytes through its own parsers, and a PDF viewer
on our origin would be a second browser. So reviewers are shown renditions made here:

- Images (PNG, JPEG) are decoded by Pillow under the intake's pixel bound, turned upright by their
  EXIF orientation, copied pixel by pixel into a fresh image, shrunk to at most `MAX_EDGE` pixels a
  side and encoded again as PNG. EXIF, XMP, ICC profiles and text chunks (a camera's owner, where a
  photo was taken, an author) stay behind; the browser only decodes bytes our encoder wrote.
- PDFs: their first `MAX_PDF_PAGES` pages are rendered by Poppler's `pdftoppm` inside the sandbox
  (no network, no host files, limits on time, memory, processes and output), never in a web or
  worker process. Each page leaves the box as untrusted bytes and is re-encoded as an image is.
  Their document information (title, author) is read with pypdf, for reviewers allowed to see it,
  and a copy without it (no /Info, no XMP) is kept for blind reviewers to download.
- ZIP archives are listed from their central directory (names and sizes); nothing is extracted.

The renditions are content-addressed in the file store like everything else, and a portfolio's
result records each one under the SHA-256 of its original (`Renderer.prepare`, run by the worker
when the checks run, so rendering costs the reviewer nothing). An image whose result records no
rendition (graded before renditions existed) is re-encoded on first view by `image_for`, stored,
and remembered by the original's hash in a bounded cache.

No Flask and no Celery here: the worker's grader and the reviewer pages call these functions.
"""

from __future__ import annotations

import io
import re
import unicodedata
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps
from pypdf import PdfReader, PdfWriter

from grader.config import Settings
from grader.errors import NotFound
from grader.intake.artifacts import MAX_IMAGE_PIXELS
from grader.services.content_cache import ContentCache
from grader.storage import FileStore
from sandbox.contract import BoxFile, JobSpec, Limits, Outcome, Runner
from sandbox.errors import SandboxUnavailable
from sandbox.select import select_runner

# A reviewer's screen shows a page or a screenshot whole at about this size; 1600 px keeps a page's
# body text readable while a rendition stays around 100 to 300 KB.
MAX_EDGE = 1600
# The pages a reviewer sees as images; the page count says how many more the PDF has.
MAX_PDF_PAGES = 10
MAX_ZIP_MEMBERS_SHOWN = 500
MAX_DETAIL_CHARS = 200
IMAGE_TYPES = frozenset({"png", "jpeg"})
# Ten text pages take about 5 s (4 s of CPU) here; a PDF built to make Poppler work hard meets these first.
RENDER_LIMITS = Limits(
    wall_seconds=60,
    cpu_seconds=40,
    memory_mb=768,
    pids=16,
    output_bytes=64 * 1024,
    file_size_mb=32,
    disk_mb=256,
    collect_bytes=32 * 1024 * 1024,
)
# One pdftoppm per page with -singlefile, so each page has a name that does not depend on how
# pdftoppm pads page numbers; a page it cannot render stops the loop, and the pages before it stay.
_RENDER_SCRIPT = (
    'i=1; while [ "$i" -le "$1" ]; do '
    'pdftoppm -q -png -scale-to "$2" -f "$i" -l "$i" -singlefile in.pdf "page-$i" || exit $?; '
    "i=$((i + 1)); done"
)
_KEPT_MODES = frozenset({"1", "L", "LA", "RGB", "RGBA"})
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class RenditionFailed(Exception):
    """A file that cannot be shown as an image; the message says why, for the reviewer."""


@dataclass(frozen=True)
class Picture:
    """A PNG this module encoded, and its size in pixels."""

    png: bytes
    width: int
    height: int


def reencode_image(data: bytes, *, max_edge: int = MAX_EDGE) -> Picture:
    """`data` (PNG or JPEG) decoded, upright, at most `max_edge` pixels a side, encoded again as PNG
    without any of the original's metadata; `RenditionFailed` for anything else."""
    try:
        with Image.open(io.BytesIO(data), formats=("PNG", "JPEG")) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise RenditionFailed(
                    f"the image is {image.width} \u00d7 {image.height} pixels, more than can be shown"
                )
            if image.format == "JPEG":
                # Let the JPEG decoder scale down by a power of two while it decodes: less to hold.
                image.draft("RGB", (max_edge, max_edge))
            upright = ImageOps.exif_transpose(image)
        if upright.mode not in _KEPT_MODES:
            has_alpha = "A" in upright.getbands() or "transparency" in upright.info
            upright = upright.convert("RGBA" if has_alpha else "RGB")
        upright.thumbnail((max_edge, max_edge), Image.Resampling.LANCZOS)
        # A fresh image from the pixels alone: nothing of the original's `info` (EXIF, ICC, XMP, text
        # chunks, DPI) can reach the encoder.
        clean = Image.frombytes(upright.mode, upright.size, upright.tobytes())
        out = io.BytesIO()
        clean.save(out, format="PNG", compress_level=3)  # 3: as small as 6 for pages, and faster
    except RenditionFailed:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise RenditionFailed(f"the image cannot be decoded ({type(exc).__name__})") from None
    return Picture(out.getvalue(), clean.width, clean.height)


def _shown_detail(value: object) -> str:
    text = unicodedata.normalize("NFC", str(value))
    return _CONTROLS.sub(" ", text).strip()[:MAX_DETAIL_CHARS]


def pdf_details(data: bytes) -> dict[str, str]:
    """The PDF's title and author from its document information, as far as they can be read."""
    try:
        info = PdfReader(io.BytesIO(data), strict=False).metadata
        found = {"title": info.title if info else None, "author": info.author if info else None}
    except Exception:  # pypdf raises many types for malformed input: then there is nothing to show
        return {}
    return {key: _shown_detail(value) for key, value in found.items() if value and _shown_detail(value)}


def without_metadata(data: bytes) -> bytes | None:
    """A copy of the PDF without its document information and XMP metadata (None if it cannot be
    rewritten). The pages' own content is the learner's work and stays as it was."""
    try:
        writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data), strict=False))
        writer.metadata = None
        writer.xmp_metadata = None
        out = io.BytesIO()
        writer.write(out)
    except Exception:  # as above: a PDF pypdf cannot rewrite is offered to no blind reviewer
        return None
    return out.getvalue()


@dataclass(frozen=True)
class RenderedPages:
    pictures: tuple[Picture, ...]
    problem: str | None  # why fewer pages than asked were rendered, in words


def render_pdf(runner: Runner, data: bytes, pages: int) -> RenderedPages:
    """The first `pages` pages (at most `MAX_PDF_PAGES`) as pictures, rendered in a box by pdftoppm."""
    wanted = max(0, min(pages, MAX_PDF_PAGES))
    if wanted == 0:
        return RenderedPages((), None)
    names = tuple(f"page-{number}.png" for number in range(1, wanted + 1))
    result = runner.run(
        JobSpec(
            command=("sh", "-c", _RENDER_SCRIPT, "render", str(wanted), str(MAX_EDGE)),
            files=(BoxFile("in.pdf", data),),
            limits=RENDER_LIMITS,
            collect=names,
        )
    )
    pictures: list[Picture] = []
    problem: str | None = None
    for number, name in enumerate(names, start=1):
        produced = result.files.get(name)
        if produced is None:
            break
        try:
            pictures.append(reencode_image(produced))
        except RenditionFailed as exc:
            problem = f"page {number} did not render as an image: {exc}"
            break
    if problem is None and len(pictures) < wanted:
        problem = _why_not_rendered(result.outcome, result.error, len(pictures) + 1)
    return RenderedPages(tuple(pictures), problem)


def _why_not_rendered(outcome: Outcome, error: str | None, page: int) -> str:
    if outcome is Outcome.TIMEOUT:
        return f"rendering stopped at page {page}: it took longer than {RENDER_LIMITS.wall_seconds:g} s"
    if outcome is Outcome.MEMORY_LIMIT:
        return f"rendering stopped at page {page}: it needed more than {RENDER_LIMITS.memory_mb} MB"
    if outcome is Outcome.SANDBOX_ERROR:
        return f"the sandbox failed while rendering page {page}: {error or 'no reason given'}"
    if outcome is Outcome.OUTPUT_LIMIT:
        return f"rendering stopped at page {page}: the page image was too large"
    return f"the PDF reader could not render page {page}"


@dataclass(frozen=True)
class Member:
    name: str
    size: int
    folder: bool


@dataclass(frozen=True)
class Listing:
    members: tuple[Member, ...]  # at most MAX_ZIP_MEMBERS_SHOWN
    total: int  # every entry of the archive
    problem: str | None = None


def zip_listing(data: bytes) -> Listing:
    """The archive's entries from its central directory (no member is read or extracted)."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError):
        return Listing((), 0, "the archive's list of files cannot be read")
    members = tuple(
        Member(info.filename, info.file_size, info.is_dir()) for info in infos[:MAX_ZIP_MEMBERS_SHOWN]
    )
    return Listing(members, len(infos))


# ---------------------------------------------------------------- renditions of a whole portfolio


def _picture_entry(store: FileStore, picture: Picture) -> dict[str, Any]:
    return {"sha256": store.put(picture.png), "width": picture.width, "height": picture.height}


def image_rendition(store: FileStore, data: bytes) -> dict[str, Any]:
    """What a result records of an image: its rendition in the store, or why there is none."""
    try:
        return {"kind": "image", "image": _picture_entry(store, reencode_image(data))}
    except RenditionFailed as exc:
        return {"kind": "image", "problem": str(exc)}


def pdf_rendition(store: FileStore, data: bytes, pages: int, box: Callable[[], Runner]) -> dict[str, Any]:
    """What a result records of a PDF: its page images, details and anonymous copy in the store."""
    entry: dict[str, Any] = {"kind": "pdf", "page_count": pages, "details": pdf_details(data)}
    anonymous = without_metadata(data)
    if anonymous is not None:
        entry["anonymous"] = store.put(anonymous)
    try:
        rendered = render_pdf(box(), data, pages)
    except SandboxUnavailable as exc:
        entry["pages"] = []
        entry["problem"] = f"no sandbox on the worker could render the pages: {exc}"
        return entry
    entry["pages"] = [_picture_entry(store, picture) for picture in rendered.pictures]
    if rendered.problem is not None:
        entry["problem"] = rendered.problem
    return entry


class Renderer:
    """Makes the renditions of a portfolio's files on a worker; the sandbox is chosen on first use."""

    def __init__(self, settings: Settings, runner: Runner | None = None) -> None:
        self.settings = settings
        self._runner = runner

    def _box(self) -> Runner:
        if self._runner is None:
            self._runner = select_runner(
                self.settings.sandbox_backend,
                image=self.settings.sandbox_image,
                rootfs=self.settings.sandbox_rootfs,
                docker_warm_pool=self.settings.docker_warm_pool,
            )
        return self._runner

    def prepare(self, store: FileStore, files: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """Each image's and PDF's renditions, by the SHA-256 of the original (as a result records them).

        Nothing here decides the grade: a file that cannot be rendered is recorded with the reason,
        and the reviewer reads it there. A store that fails raises `ServiceUnavailable`, as the checks do.
        """
        made: dict[str, dict[str, Any]] = {}
        for entry in files:
            key, kind = str(entry.get("sha256", "")), entry.get("type")
            if key in made or kind not in IMAGE_TYPES | {"pdf"}:
                continue
            known = _renditions.get(key)
            if known is not None:
                made[key] = known
                continue
            try:
                data = store.get(key)
            except NotFound:
                made[key] = {"kind": kind, "problem": "the file store no longer holds this file"}
                continue
            if kind == "pdf":
                details = entry.get("details")
                pages = details.get("pages") if isinstance(details, Mapping) else None
                made[key] = pdf_rendition(store, data, int(pages or MAX_PDF_PAGES), self._box)
            else:
                made[key] = image_rendition(store, data)
            if "problem" not in made[key]:
                _renditions.put(key, made[key])
        return made


# What was made of each original, by its SHA-256: a regrade on the same worker, and the web's
# first view of an image graded before renditions existed, need not make it again.
_renditions: ContentCache[str, dict[str, Any]] = ContentCache(
    entries=4096, budget=4 * 1024 * 1024, weigh=lambda entry: 200 + 120 * len(entry.get("pages", ()))
)


def image_for(store: FileStore, original: str) -> dict[str, Any]:
    """The rendition of a stored image no result recorded one for: made once, then remembered."""
    known = _renditions.get(original)
    if known is not None:
        return known
    made = image_rendition(store, store.get(original))
    if "problem" not in made:
        _renditions.put(original, made)
    return made


def clear_cache() -> None:
    _renditions.clear()
