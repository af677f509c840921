# mlwarden: the agent image. Build: docker build -t mlwarden:0.1.0 .
# Config by mount at /etc/mlwarden/mlwarden.yaml (a ConfigMap); secrets by environment.
# See docs/deployment.md for the Kubernetes manifests in deploy/.
ARG PYTHON_VERSION=3.12

FROM python:${PYTHON_VERSION}-slim AS build
# extras to install: postgres (shared state); add e.g. gpu where a GPU check needs NVML
ARG EXTRAS=postgres
WORKDIR /src
COPY pyproject.toml setup.cfg ./
COPY agent ./agent
COPY checks ./checks
RUN python -m venv /opt/mlwarden \
 && /opt/mlwarden/bin/pip install --no-cache-dir --upgrade pip \
 && /opt/mlwarden/bin/pip install --no-cache-dir ".[${EXTRAS}]"

FROM python:${PYTHON_VERSION}-slim
RUN groupadd --system --gid 10001 mlwarden \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlwarden --create-home \
    --shell /usr/sbin/nologin mlwarden
COPY --from=build /opt/mlwarden /opt/mlwarden
# a starter config; the ConfigMap mounted on /etc/mlwarden replaces it
COPY agent/data/agent.yaml.example /etc/mlwarden/mlwarden.yaml
ENV PATH=/opt/mlwarden/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLWARDEN_CONFIG=/etc/mlwarden/mlwarden.yaml \
    MPLCONFIGDIR=/tmp/matplotlib
# the SQLite history (single-agent mode) lives here; mount a volume to keep it
WORKDIR /var/lib/mlwarden
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["mlwarden", "run"]
# listen on every interface so kubelet probes and Prometheus reach /healthz /readyz /metrics
CMD ["--listen", "0.0.0.0:9464"]
