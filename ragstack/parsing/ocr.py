"""OCR, offline: Tesseract (Debian's ``tesseract-ocr`` with its language packs) through
pytesseract.

One image in, paragraphs of text out, with their confidence. What this adds around the
engine:

- **Orientation.** When a first pass reads little, Tesseract's orientation detection (the
  ``osd`` pack) says how the image is turned; it is read again upright and the better pass
  kept.
- **Script.** An image whose text is in a script no configured language covers (Chinese in an
  English set-up) raises ``OcrLanguageMissingError`` naming the pack to install, instead of
  indexing the garbage Tesseract would read.
- **Limits.** Images over ``max_pixels`` are refused (decompression bombs), large ones are
  scaled down before reading, and each image has a time limit (Tesseract is killed).
- **Threads.** Tesseract's own OpenMP threads make it several times slower on a busy machine;
  it runs single-threaded (``OMP_THREAD_LIMIT=1``) and pages are read in parallel instead.

pytesseract and Pillow are imported on first use (the ``ocr`` extra); a missing Tesseract is an
``OcrUnavailableError`` that says how to install it.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ragstack.errors import OcrLanguageMissingError, OcrUnavailableError, ParseError
from ragstack.parsing.layout import join_lines

if TYPE_CHECKING:
    from PIL.Image import Image

OcrMode = Literal["auto", "always", "off"]
OCR_MODES: tuple[OcrMode, ...] = ("auto", "always", "off")
INSTALL_HINT = (
    "install Tesseract: apt-get install tesseract-ocr tesseract-ocr-osd tesseract-ocr-eng "
    "(scripts/setup.sh does), and pip install 'ragstack[ocr]'"
)
_MIN_CONFIDENCE = 45.0  # a paragraph read with less (mean word confidence) is noise
_WORD = re.compile(r"[^\W_]{2,}")
# The script Tesseract's orientation detection names -> language packs that read it.
_SCRIPT_PACKS = {
    "Han": "chi_sim, chi_tra or jpn",
    "Japanese": "jpn",
    "Hangul": "kor",
    "Korean": "kor",
    "Cyrillic": "rus or ukr",
    "Arabic": "ara",
    "Hebrew": "heb",
    "Greek": "ell",
    "Devanagari": "hin",
    "Thai": "tha",
    "Bengali": "ben",
    "Tamil": "tam",
}
_LANGUAGE_SCRIPTS = {
    "chi_sim": {"Han"}, "chi_tra": {"Han"}, "chi_sim_vert": {"Han"}, "chi_tra_vert": {"Han"},
    "jpn": {"Japanese", "Han"}, "jpn_vert": {"Japanese", "Han"}, "kor": {"Hangul", "Korean"},
    "kor_vert": {"Hangul", "Korean"}, "rus": {"Cyrillic"}, "ukr": {"Cyrillic"},
    "bul": {"Cyrillic"}, "srp": {"Cyrillic"}, "bel": {"Cyrillic"}, "mkd": {"Cyrillic"},
    "ara": {"Arabic"}, "fas": {"Arabic"}, "urd": {"Arabic"}, "heb": {"Hebrew"},
    "ell": {"Greek"}, "grc": {"Greek"}, "hin": {"Devanagari"}, "mar": {"Devanagari"},
    "nep": {"Devanagari"}, "san": {"Devanagari"}, "tha": {"Thai"}, "ben": {"Bengali"},
    "tam": {"Tamil"},
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class OcrSettings:
    """How OCR runs; everything here but ``workers`` and ``timeout_s`` changes its output, so
    it is part of the version of every document OCR reads (``tag``)."""

    mode: OcrMode = "auto"
    languages: str = "eng"  # Tesseract's form: eng+deu
    dpi: int = 300
    timeout_s: float = 120.0
    max_pixels: int = 100_000_000
    workers: int = 2

    def tag(self, engine: str) -> str:
        return f"ocr={self.mode};lang={self.languages};dpi={self.dpi};engine={engine}"


@dataclass(frozen=True, slots=True)
class OcrText:
    """What OCR read in one image, top to bottom: paragraphs, and ruled tables as Markdown."""

    blocks: tuple[tuple[Literal["paragraph", "table"], str], ...]
    confidence: float
    seconds: float
    rotated: int = 0  # degrees the image was turned to read it

    @property
    def paragraphs(self) -> tuple[str, ...]:
        return tuple(text for kind, text in self.blocks if kind == "paragraph")


_OCR_READY = threading.Lock()
_ENGINES: dict[str, tuple[str, frozenset[str]] | None] = {}


def _engine() -> tuple[str, frozenset[str]] | None:
    """Tesseract's version and installed languages, or None when it is missing (checked
    once per process)."""
    with _OCR_READY:
        if "tesseract" not in _ENGINES:
            os.environ.setdefault("OMP_THREAD_LIMIT", "1")
            try:
                import pytesseract

                version = str(pytesseract.get_tesseract_version())
                langs = frozenset(pytesseract.get_languages(config=""))
                _ENGINES["tesseract"] = (f"tesseract-{version.split()[0]}", langs)
            except (ImportError, OSError, RuntimeError):  # TesseractNotFoundError is an OSError
                _ENGINES["tesseract"] = None
        return _ENGINES["tesseract"]


class Ocr:
    """Tesseract with our settings. Cheap to construct; nothing runs until ``read``."""

    def __init__(self, settings: OcrSettings) -> None:
        self.settings = settings

    @property
    def engine(self) -> str:
        """``tesseract-5.3.0``, or ``missing`` (part of the parse tag: installing Tesseract
        re-reads the documents that need it)."""
        found = _engine()
        return found[0] if found is not None else "missing"

    def check(self, filename: str) -> None:
        """``OcrUnavailableError`` unless Tesseract and every configured language are here."""
        found = _engine()
        if found is None:
            raise OcrUnavailableError(
                f"ocr-unavailable: {filename} needs OCR and Tesseract is not installed; "
                + INSTALL_HINT
            )
        missing = [lang for lang in self.settings.languages.split("+") if lang not in found[1]]
        if missing:
            packs = " ".join(f"tesseract-ocr-{m.replace('_', '-')}" for m in missing)
            raise OcrUnavailableError(
                f"ocr-unavailable: {filename} needs OCR in {'+'.join(missing)}, whose Tesseract "
                f"language pack is not installed: apt-get install {packs} "
                "(or change RAGSTACK_OCR_LANGUAGES)"
            )

    def _scripts(self) -> set[str]:
        scripts = {"Latin"}
        for lang in self.settings.languages.split("+"):
            scripts |= _LANGUAGE_SCRIPTS.get(lang, set())
        return scripts

    def prepare(self, image: Image, filename: str) -> Image:
        """The image ready for Tesseract: size checked, scaled down when huge, greyscale."""
        width, height = image.size
        if width * height > self.settings.max_pixels:
            from ragstack.errors import DocumentTooLargeError

            raise DocumentTooLargeError(
                f"too large: {filename} is an image of {width:,}x{height:,} pixels, over the "
                f"limit of {self.settings.max_pixels:,} (RAGSTACK_OCR_MAX_PIXELS)"
            )
        budget = 5000 * 5000  # past ~A3 at 300 dpi, more pixels only cost time
        if width * height > budget:
            scale = (budget / (width * height)) ** 0.5
            image = image.resize((max(1, int(width * scale)), max(1, int(height * scale))))
        if image.mode not in ("L", "RGB"):
            image = image.convert("RGB")
        return image.convert("L")

    def read(self, image: Image, filename: str) -> OcrText:
        """Paragraphs of text in one prepared image (may be none)."""
        self.check(filename)
        started = time.perf_counter()
        tables, image = self._tables(image, filename)
        found = self._read_once(image, filename)
        rotated = 0
        if not tables and (found[1] < 70 or len(found[0]) == 0):
            turn, script = self._orientation(image, filename)
            if script is not None and script not in self._scripts() and found[1] < 70:
                raise OcrLanguageMissingError(
                    f"ocr-language-missing: {filename} holds text in the {script} script, which "
                    f"no configured OCR language reads (languages: {self.settings.languages}); "
                    f"install tesseract-ocr-<pack> for {_SCRIPT_PACKS.get(script, script)} and "
                    "add it to RAGSTACK_OCR_LANGUAGES"
                )
            if turn:
                again = self._read_once(image.rotate(-turn, expand=True), filename)
                if _score(again) > _score(found):
                    found, rotated = again, turn
        blocks = sorted(
            [(top, "paragraph", text) for top, text in found[0]]
            + [(top, "table", text) for top, text in tables]
        )
        return OcrText(
            tuple((kind, text) for _top, kind, text in blocks),  # type: ignore[misc]
            found[1],
            time.perf_counter() - started,
            rotated,
        )

    def _tables(self, image: Image, filename: str) -> tuple[list[tuple[int, str]], Image]:
        """Ruled tables as (top, Markdown), and the image with them painted out."""
        import numpy as np
        from PIL import Image as PilImage

        from ragstack.parsing.grid import Word, cells, clean, find_grids
        from ragstack.parsing.tables import markdown_table

        pixels = np.asarray(image, dtype=np.uint8)
        grids = find_grids(pixels)
        if not grids:
            return [], image
        out = []
        rest = image.copy()
        for grid in grids:
            left, top, right, bottom = grid.box
            crop = PilImage.fromarray(clean(pixels, grid)).crop((left, top, right, bottom))
            data = self._data(crop, filename, psm=6)
            words = [
                Word(str(t).strip(), int(x) + left, int(y) + top, int(w), int(h))
                for t, c, x, y, w, h in zip(
                    data["text"],
                    data["conf"],
                    data["left"],
                    data["top"],
                    data["width"],
                    data["height"],
                    strict=True,
                )
                if str(t).strip() and float(str(c)) >= 20
            ]
            table = markdown_table(cells(grid, words))
            if table.count("\n") >= 2:
                out.append((top, table))
                rest.paste(255, (left, top, right + 1, bottom + 1))
        return out, rest

    def _data(self, image: Image, filename: str, psm: int = 3) -> dict[str, list[object]]:
        import pytesseract

        try:
            data: dict[str, list[object]] = pytesseract.image_to_data(
                image,
                lang=self.settings.languages,
                config=f"--psm {psm}",
                output_type=pytesseract.Output.DICT,
                timeout=self.settings.timeout_s,
            )
        except RuntimeError as exc:  # pytesseract's time-out
            raise ParseError(
                f"empty: {filename}: OCR gave up after {self.settings.timeout_s:.0f} s "
                "(RAGSTACK_OCR_TIMEOUT_S)"
            ) from exc
        except pytesseract.TesseractError as exc:
            raise ParseError(f"corrupt: {filename}: OCR failed ({exc})") from exc
        return data

    def _read_once(self, image: Image, filename: str) -> tuple[list[tuple[int, str]], float]:
        return paragraphs_from_data(self._data(image, filename))

    def _orientation(self, image: Image, filename: str) -> tuple[int, str | None]:
        """(degrees to turn the image clockwise, script) from Tesseract's OSD, if it can tell."""
        import pytesseract

        try:
            osd = pytesseract.image_to_osd(image, config="--psm 0", timeout=self.settings.timeout_s)
        except (pytesseract.TesseractError, RuntimeError):
            return 0, None  # too few characters to tell
        rotate = re.search(r"Rotate:\s*(\d+)", osd)
        conf = re.search(r"Orientation confidence:\s*([\d.]+)", osd)
        script = re.search(r"Script:\s*(\w+)", osd)
        turn = int(rotate.group(1)) if rotate and conf and float(conf.group(1)) >= 1.0 else 0
        # asked only when reading failed, so even an unsure guess of the script tells
        return turn, (script.group(1) if script is not None else None)

    def read_many(
        self, images: Sequence[Callable[[], Image]], filename: str
    ) -> list[OcrText | ParseError]:
        """Each image (made on demand, in a worker) read; a page's failure is its result."""

        def one(make: Callable[[], Image]) -> OcrText | ParseError:
            try:
                return self.read(self.prepare(make(), filename), filename)
            except OcrUnavailableError:
                raise
            except ParseError as exc:
                return exc

        if len(images) <= 1 or self.settings.workers <= 1:
            return [one(make) for make in images]
        with ThreadPoolExecutor(max_workers=self.settings.workers) as pool:
            return list(pool.map(one, images))


def _score(found: tuple[list[tuple[int, str]], float]) -> float:
    words = sum(len(_WORD.findall(p)) for _top, p in found[0])
    return words * found[1]


def paragraphs_from_data(data: dict[str, list[object]]) -> tuple[list[tuple[int, str]], float]:
    """Tesseract's word table to paragraphs (its blocks and paragraphs, lines joined, noise
    dropped; each with its top in pixels) and the mean confidence of the words kept."""
    groups: dict[tuple[int, int], list[list[tuple[str, float]]]] = {}
    tops: dict[tuple[int, int], int] = {}
    last_line: dict[tuple[int, int], int] = {}
    for i, word in enumerate(data["text"]):
        text = str(word).strip()
        conf = float(str(data["conf"][i]))
        if not text or conf < 0:
            continue
        key = (int(str(data["block_num"][i])), int(str(data["par_num"][i])))
        line = int(str(data["line_num"][i]))
        tops.setdefault(key, int(str(data["top"][i])))
        lines = groups.setdefault(key, [])
        if not lines or last_line.get(key) != line:
            lines.append([])
            last_line[key] = line
        lines[-1].append((text, conf))
    paragraphs: list[tuple[int, str]] = []
    confidences: list[float] = []
    for key, lines in groups.items():
        words = [w for ln in lines for w in ln]
        mean = sum(c for _t, c in words) / len(words)
        text = join_lines([" ".join(t for t, _c in ln) for ln in lines])
        if mean < _MIN_CONFIDENCE or not _WORD.search(text):
            continue
        paragraphs.append((tops[key], text))
        confidences += [c for _t, c in words]
    return paragraphs, (sum(confidences) / len(confidences) if confidences else 0.0)
