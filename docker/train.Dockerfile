# Collage Studio trainer: the PyTorch CUDA image plus the `train` extra (and `cpu`: export checks ONNX parity
# with onnxruntime). Entry point `collage train`; for several GPUs override it with torchrun:
#   docker compose --profile train run --rm --entrypoint torchrun train --nproc_per_node=4 -m models.train ARGS…
#   docker build -f docker/train.Dockerfile -t collage-studio:train .      (from the repository root)
FROM pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime

# HOME=/tmp: compose may run this image as the host user's uid (so runs/ stays theirs), which has no home here.
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HOME=/tmp

RUN groupadd --system --gid 10001 studio \
    && useradd --system --uid 10001 --gid studio --no-create-home studio

WORKDIR /app
COPY pyproject.toml README.md ./
COPY scripts/serve.sh scripts/
COPY common/ common/
COPY models/ models/
COPY server/ server/
# Keep the base image's CUDA torch: a constraint pins the installed version, so the extra's `torch>=…` never
# pulls another (multi-GB) build over it.
RUN python -c 'import torch; print(f"torch=={torch.__version__}")' > /tmp/torch-constraint.txt \
    && PIP_CONSTRAINT=/tmp/torch-constraint.txt sh scripts/serve.sh install python cpu,train \
    && install -d -o studio -g studio /app/runs
# weights/ carries model.schema.json, which export validates manifests against.
COPY weights/ weights/

USER 10001:10001
ENTRYPOINT ["collage", "train"]
CMD ["--help"]
