# Collage Studio, CPU serving image: FastAPI + OpenVINO (onnxruntime as its fallback) + numpy, no torch.
#   docker build -f docker/server.Dockerfile -t collage-studio:cpu .      (from the repository root)
# Install line and start command come from scripts/serve.sh, the same script `make run` calls.
FROM python:3.11-slim-bookworm

# Unbuffered logs; no .pyc files (the code is read-only for the app user); no pip cache kept in the layer.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    COLLAGE_WEIGHTS_DIR=/app/weights \
    COLLAGE_DATA_DIR=/data

# A fixed non-root uid; /data belongs to it so a fresh named volume mounted there is writable (jobs, styles).
RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid studio --create-home studio \
    && install -d -o studio -g studio /data

WORKDIR /app
# What pip needs: models/ is part of the same distribution and installs without torch (torch is the train extra).
COPY pyproject.toml README.md ./
COPY scripts/serve.sh scripts/
COPY common/ common/
COPY models/ models/
COPY server/ server/
RUN sh scripts/serve.sh install python cpu
# Last, because they change most often: the browser app and the served models.
COPY frontend/ frontend/
COPY weights/ weights/

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["sh", "scripts/serve.sh", "start", "python", "0.0.0.0", "8000"]
