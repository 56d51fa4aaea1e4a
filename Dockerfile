# The proxy as a container: slim, non-root, configuration and keys from mounts and the environment.
#   docker build -t lip .
#   docker run -p 8000:8000 -v "$PWD/config:/config:ro" -e OPENAI_API_KEY lip
# Build stage: a wheel of the project and its dependencies (no compilers in the final image).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[otel]"

FROM python:3.12-slim
RUN groupadd --system --gid 10001 lip && useradd --system --uid 10001 --gid lip --home-dir /var/lib/lip \
    --create-home --shell /usr/sbin/nologin lip
COPY --from=build /wheels /wheels
# The versions are those of the wheels built above (--no-index: nothing else is reachable).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir --no-index --find-links /wheels "llm-interactive-proxy[otel]" && rm -rf /wheels
# /config: config/ (proxy.yaml, backends/*/backend.yaml), mounted read-only (a ConfigMap in Kubernetes).
# Keys come from the environment (the variables backend.yaml names); nothing secret is in the image.
ENV LIP_CONFIG_DIR=/config \
    LIP_HOST=0.0.0.0 \
    LIP_PORT=8000 \
    XDG_DATA_HOME=/var/lib/lip \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
USER 10001:10001
WORKDIR /var/lib/lip
EXPOSE 8000
# The socket accepts only once warm; SIGTERM drains (server.drain_delay, server.drain_timeout).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/health/live', timeout=2); sys.exit(0)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["lip", "serve"]
