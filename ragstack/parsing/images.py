"""Images through OCR: image files (PNG, JPEG, TIFF with its pages, BMP, GIF, WebP, HEIC) and
the pictures inside DOCX and PPTX files.

Pixels are counted from the file's header before anything is decoded (decompression bombs
are refused with ``DocumentTooLargeError``), a multi-page TIFF reads at most ``MAX_FRAMES``
pages, and the pictures of an Office file are read from its zip only when their stated size is
sane (zip bombs).
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ragstack.errors import DocumentTooLargeError, ParseError
from ragstack.parsing.layout import is_page_number
from ragstack.parsing.model import Block
from ragstack.parsing.ocr import Ocr, OcrText

if TYPE_CHECKING:
    from PIL.Image import Image

MAX_FRAMES = 500
_OFFICE_PICTURES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
_MAX_PICTURE_BYTES = 40 * 1024 * 1024
_MIN_PICTURE_PIXELS = 120 * 40  # smaller pictures are icons and bullets
_MAX_OFFICE_PICTURES = 40


@dataclass
class OcrBlocks:
    blocks: list[Block]
    inputs: int  # images OCR reads (or would)
    pages: int = 0
    seconds: float = 0.0
    failures: tuple[ParseError, ...] = ()


def _register_heif() -> None:
    try:
        from pi_heif import register_heif_opener
    except ImportError:
        return  # HEIC photos then fail to open, with a message naming the extra
    register_heif_opener()


def open_image(data: bytes, filename: str, max_pixels: int) -> Image:
    """The image, not yet decoded, after its size is checked."""
    _register_heif()
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError as exc:
        if PurePosixPath(filename).suffix.lower() in (".heic", ".heif"):
            raise ParseError(
                f"unsupported: {filename} is a HEIC photo; reading it needs pi-heif: "
                "pip install 'ragstack[ocr]'"
            ) from exc
        raise ParseError(f"corrupt: {filename} is not a readable image ({exc})") from exc
    except Image.DecompressionBombError as exc:
        raise DocumentTooLargeError(f"too large: {filename}: {exc}") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise ParseError(f"corrupt: {filename} is not a readable image ({exc})") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise DocumentTooLargeError(
            f"too large: {filename} is an image of {width:,}x{height:,} pixels, over the limit "
            f"of {max_pixels:,} (RAGSTACK_OCR_MAX_PIXELS)"
        )
    return image


def _frame(data: bytes, filename: str, max_pixels: int, index: int) -> Callable[[], Image]:
    def load() -> Image:
        from PIL import Image

        image = open_image(data, filename, max_pixels)
        try:
            image.seek(index)
            image.load()
        except (OSError, ValueError, EOFError, Image.DecompressionBombError) as exc:
            raise ParseError(
                f"corrupt: {filename}: page {index + 1} is unreadable ({exc})"
            ) from exc
        return image

    return load


def _blocks(found: OcrText, page: int | None) -> list[Block]:
    return [
        Block(text, kind, page, ocr=True) for kind, text in found.blocks if not is_page_number(text)
    ]


def read_image(data: bytes, filename: str, ocr: Ocr) -> OcrBlocks:
    """An image file's text, a page per frame (multi-page TIFF)."""
    image = open_image(data, filename, ocr.settings.max_pixels)
    frames = min(int(getattr(image, "n_frames", 1) or 1), MAX_FRAMES)
    if ocr.settings.mode == "off":
        raise ParseError(
            f"unsupported: {filename} is an image; reading it needs OCR, which is off for this "
            "collection (ragstack ingest --ocr auto)"
        )
    ocr.check(filename)
    loaders = [_frame(data, filename, ocr.settings.max_pixels, i) for i in range(frames)]
    out = OcrBlocks([], frames)
    failures = []
    for number, found in enumerate(ocr.read_many(loaders, filename), 1):
        if isinstance(found, ParseError):
            failures.append(found)
            continue
        out.pages += 1
        out.seconds += found.seconds
        out.blocks += _blocks(found, number if frames > 1 else None)
    if not out.blocks:
        if failures:
            raise failures[0]
        raise ParseError(
            f"no-text: {filename} is an image in which OCR found no text ({ocr.settings.languages})"
        )
    return out


def _slide_of(names: list[str], z: zipfile.ZipFile) -> dict[str, int]:
    """``ppt/media/<file>`` -> the first slide number showing it."""
    slides: dict[str, int] = {}
    rels = re.compile(r"ppt/slides/_rels/slide(\d+)\.xml\.rels$")
    for name in sorted(names, key=lambda n: int(m.group(1)) if (m := rels.match(n)) else 0):
        m = rels.match(name)
        if m is None:
            continue
        info = z.getinfo(name)
        if info.file_size > 1_000_000:
            continue
        xml = z.read(name).decode("utf-8", "replace")
        for target in re.findall(r'Target="\.\./media/([^"]+)"', xml):
            slides.setdefault(f"ppt/media/{target}", int(m.group(1)))
    return slides


def office_pictures(data: bytes, filename: str, ocr: Ocr) -> OcrBlocks:
    """The text in the pictures of a DOCX or PPTX (a slide's pictures carry its number)."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return OcrBlocks([], 0)
    with z:
        names = z.namelist()
        media = [
            info
            for info in z.infolist()
            if re.match(r"(word|ppt)/media/", info.filename)
            and PurePosixPath(info.filename).suffix.lower() in _OFFICE_PICTURES
            and 0 < info.file_size <= _MAX_PICTURE_BYTES
            and info.file_size <= 200 * max(info.compress_size, 1)  # no zip bombs
        ][:_MAX_OFFICE_PICTURES]
        slides = _slide_of(names, z)
        pictures = [(info.filename, z.read(info.filename)) for info in media]
    out = OcrBlocks([], 0)
    loaders: list[Callable[[], Image]] = []
    pages: list[int | None] = []
    for name, raw in pictures:
        try:
            image = open_image(raw, name, ocr.settings.max_pixels)
        except (ParseError, DocumentTooLargeError):
            continue
        if image.size[0] * image.size[1] < _MIN_PICTURE_PIXELS:
            continue
        loaders.append(_frame(raw, name, ocr.settings.max_pixels, 0))
        pages.append(slides.get(name))
    out.inputs = len(loaders)
    if not loaders or ocr.settings.mode == "off":
        return out
    ocr.check(filename)
    failures = []
    for page, found in zip(pages, ocr.read_many(loaders, filename), strict=True):
        if isinstance(found, ParseError):
            failures.append(found)
            continue
        out.pages += 1
        out.seconds += found.seconds
        out.blocks += _blocks(found, page)
    out.failures = tuple(failures)
    return out
