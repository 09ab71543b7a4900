# knowgen's environment server: SearchGenEnv served to the OpenEnv specification.
#   docker build -t knowgen-searchgen .
#   docker run -p 8000:8000 knowgen-searchgen
#   docker run -p 8000:8000 -e KNOWGEN_ENV_TOKEN=... knowgen-searchgen   # bearer token required
# KNOWGEN_SERVE_ARGS adds flags of `knowgen serve env` (e.g. "--max-sessions 64 --split train").
# Built from this checkout (see .dockerignore); openenv.yaml is its OpenEnv manifest.
FROM python:3.11-slim

# OpenCV, which the offline image judge's OCR (rapidocr) loads, needs libGL and GLib.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

# Hugging Face Spaces run containers as uid 1000.
RUN useradd --create-home --uid 1000 knowgen
WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY knowgen ./knowgen
COPY envs ./envs
COPY agents ./agents
COPY reference_policies ./reference_policies
COPY leaderboard ./leaderboard
RUN pip install --no-cache-dir ".[openenv]"

USER knowgen
ENV HOME=/home/knowgen PYTHONUNBUFFERED=1
WORKDIR /home/knowgen
# Render the offline world's ground-truth images now rather than in the first session.
RUN python -c "from knowgen.benchmarks.world import WorldBenchmark; WorldBenchmark().tasks('test')"

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 CMD python -c "\
import os, urllib.request; t = os.environ.get('KNOWGEN_ENV_TOKEN', ''); \
r = urllib.request.Request('http://127.0.0.1:8000/health', headers={'Authorization': 'Bearer ' + t}); \
urllib.request.urlopen(r, timeout=4)"
# Listens on all interfaces of the container; with KNOWGEN_ENV_TOKEN set, every request needs it.
CMD ["sh", "-c", "exec knowgen serve env --host 0.0.0.0 --port 8000 ${KNOWGEN_ENV_TOKEN:+--token-env KNOWGEN_ENV_TOKEN} ${KNOWGEN_SERVE_ARGS}"]
