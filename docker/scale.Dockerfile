# Collage Studio, scale-out image: the CPU studio plus the `scale` extra (Ray, the PostgreSQL driver).
#   docker build -f docker/scale.Dockerfile -t collage-studio:scale .      (from the repository root)
# One image for every process of the compose `scale` profile: the server replicas (CMD below), the Ray head and
# the Ray workers (`ray start …` as their command). Ray runs the workers' render actors from this same code, so
# the replicas and the workers must always be the same build.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    COLLAGE_WEIGHTS_DIR=/app/weights \
    COLLAGE_DATA_DIR=/data

# A fixed non-root uid; /data belongs to it so a fresh named volume mounted there is writable (job files).
RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid studio --create-home studio \
    && install -d -o studio -g studio /data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/serve.sh scripts/
COPY common/ common/
COPY models/ models/
COPY server/ server/
RUN sh scripts/serve.sh install python cpu,scale
COPY frontend/ frontend/
COPY weights/ weights/

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["sh", "scripts/serve.sh", "start", "python", "0.0.0.0", "8000"]
