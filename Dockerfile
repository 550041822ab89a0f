# The chant image: chantd (the entrypoint) and the chant CLI; the worker pods run the same
# image as `chant agent worker` (deploy/kubernetes/worker-deployment.yaml). git is in it:
# the daemon follows the reflogs and the workers' agents commit. Build and run:
#   docker build -t chant:0.1.0 .
#   docker run -e CHANT_API_TOKEN="$(openssl rand -hex 32)" -v "$PWD:/data/repo" \
#     -p 8080:8080 -p 9090:9090 chant:0.1.0
# The repository mounted at /data/repo must be writable by UID 10001. Kubernetes ignores
# HEALTHCHECK and probes /livez and /readyz itself; a worker container run with plain docker
# serves no HTTP: give it --no-healthcheck.

# The wheels, built apart so the image carries no build tools.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY chantlib ./chantlib
COPY chant_cli ./chant_cli
COPY chantd ./chantd
RUN pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
# tini as PID 1: forwards SIGTERM to chantd or the worker (both stop cleanly on it) and
# reaps the agents' orphaned children
RUN apt-get update \
    && apt-get install -y --no-install-recommends git tini \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 chant \
    && useradd --system --uid 10001 --gid chant --home-dir /home/chant --create-home \
       --shell /usr/sbin/nologin chant
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --disable-pip-version-check --no-index --find-links /wheels chant-daemon \
    && rm -rf /wheels
# bytecode was compiled at install; a read-only root filesystem stays untouched
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /data/repo
EXPOSE 8080 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/livez', timeout=4)"]
ENTRYPOINT ["tini", "--", "chantd"]
# Beyond loopback the daemon refuses to start without CHANT_API_TOKEN (or
# scale.daemon.api_token): pass one, as above.
CMD ["-C", "/data/repo", "--api-host", "0.0.0.0", "--api-port", "8080", "--metrics-port", "9090"]
