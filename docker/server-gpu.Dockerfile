# Collage Studio, GPU serving image: onnxruntime-gpu on CUDA 13 + cuDNN 9 (host driver >= 580).
#   docker build -f docker/server-gpu.Dockerfile -t collage-studio:gpu .      (from the repository root)
# onnxruntime-gpu 1.31 on PyPI is built for CUDA 13.x and cuDNN 9.x (its `cuda` extra pins nvidia-cuda-runtime~=13.0,
# `cudnn` pins nvidia-cudnn-cu13~=9.0); the build below fails if the installed wheel's CUDA major ever differs.
# At start the server logs the execution providers its sessions really use (CUDA, or CPU after a silent fallback).
FROM nvidia/cuda:13.0.2-cudnn-runtime-ubuntu24.04

ARG DEBIAN_FRONTEND=noninteractive
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    COLLAGE_WEIGHTS_DIR=/app/weights \
    COLLAGE_DATA_DIR=/data

# Ubuntu 24.04's Python (3.12) in a venv: the system interpreter is externally managed (PEP 668).
# DL3008 (pin apt versions) is ignored: Ubuntu's archive drops superseded versions, so exact pins break rebuilds
# within weeks; the base image tag already pins the release.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && python3 -m venv /opt/venv

RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid studio --create-home studio \
    && install -d -o studio -g studio /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/serve.sh scripts/
COPY common/ common/
COPY models/ models/
COPY server/ server/
RUN sh scripts/serve.sh install python gpu \
    && python -c 'import os, onnxruntime as ort; built, base = ort.cuda_version, os.environ["CUDA_VERSION"]; \
assert built.split(".")[0] == base.split(".")[0], f"onnxruntime-gpu {ort.__version__} needs CUDA {built}, base has {base}"'
COPY frontend/ frontend/
COPY weights/ weights/

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["sh", "scripts/serve.sh", "start", "python", "0.0.0.0", "8000"]
