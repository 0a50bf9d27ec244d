# syntax=docker/dockerfile:1
#
# The forewarn image: `docker run forewarn:local worker` runs `forewarn worker`.
# Configuration comes only from FOREWARN_* variables at run time (docker-compose.yml);
# no secret is baked into the image.

# Build stage: a virtualenv holding forewarn and its dependencies. The compiler is
# here only for platforms without wheels (faust-streaming has no arm64 wheel); it
# never reaches the runtime image.
FROM python:3.11-slim AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# hadolint ignore=DL3008 # build-only stage; the toolchain follows the base image
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*

RUN python -m venv /opt/forewarn

WORKDIR /src
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY schemas ./schemas
RUN /opt/forewarn/bin/pip install .

# Runtime stage: the same base, the virtualenv, and an unprivileged user.
FROM python:3.11-slim

ENV PATH="/opt/forewarn/bin:${PATH}" \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    FOREWARN_CACHE_DIR=/var/lib/forewarn/cache \
    FOREWARN_STATE_DIR=/var/lib/forewarn/state

RUN groupadd --system --gid 10001 forewarn \
 && useradd --system --uid 10001 --gid forewarn --create-home --home-dir /home/forewarn forewarn \
 && mkdir -p /var/lib/forewarn/cache /var/lib/forewarn/state \
 && chown -R forewarn:forewarn /var/lib/forewarn

COPY --from=build /opt/forewarn /opt/forewarn

# Numeric, so that runtimes (e.g. Kubernetes runAsNonRoot) can tell it is not root.
USER 10001:10001
WORKDIR /home/forewarn

ENTRYPOINT ["forewarn"]
CMD ["--help"]
