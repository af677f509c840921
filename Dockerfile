# mlwarden: the agent image, in two variants from this one file (docs/deployment.md):
#   docker build -t mlwarden:0.1.0 .                        the agent (sidecars, cluster agents)
#   docker build --target gpu -t mlwarden:0.1.0-gpu .       plus NVML, for deploy/daemonset.yaml
# Without Docker: deploy/build-image.sh (buildah), or `make image`.
# Config by mount at /etc/mlwarden/mlwarden.yaml (a ConfigMap); secrets by environment.
ARG PYTHON_VERSION=3.12
# Any Debian-like image with python3 (and its venv module) at /usr/bin or /usr/local/bin;
# deploy/build-image.sh --base debian makes one from Debian packages where no registry is reachable.
ARG BASE_IMAGE=python:${PYTHON_VERSION}-slim
# extras installed in both variants: postgres (shared state in PostgreSQL)
ARG EXTRAS=postgres,charts

FROM ${BASE_IMAGE} AS build
ARG EXTRAS
WORKDIR /src
# the dependencies first, in a layer of their own: a code change does not download them again
COPY setup.cfg pyproject.toml deploy/requirements.py ./
RUN python3 -m venv /opt/mlwarden \
 && python3 requirements.py --extras "${EXTRAS}" --build > requirements.txt \
 && /opt/mlwarden/bin/pip install --no-cache-dir -r requirements.txt
COPY agent ./agent
COPY checks ./checks
# offline: what building the package needs came with the dependencies, and leaves afterwards
RUN /opt/mlwarden/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /opt/mlwarden/bin/pip uninstall --yes --quiet setuptools wheel \
 && /opt/mlwarden/bin/pip check

# NVML bindings (nvidia-ml-py, the gpu extra); the driver's libnvidia-ml.so.1 comes from the
# node at run time (NVIDIA's container toolkit), never from the image
FROM build AS build-gpu
RUN python3 requirements.py --only gpu > requirements-gpu.txt \
 && /opt/mlwarden/bin/pip install --no-cache-dir -r requirements-gpu.txt \
 && /opt/mlwarden/bin/pip check

# what both variants share: the user, the starter config, the environment, the health check
FROM ${BASE_IMAGE} AS runtime
RUN groupadd --system --gid 10001 mlwarden \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/mlwarden --create-home \
    --shell /usr/sbin/nologin mlwarden
# a starter config; the ConfigMap mounted on /etc/mlwarden replaces it
COPY agent/data/agent.yaml.example /etc/mlwarden/mlwarden.yaml
# MLWARDEN_INSTALL=image: a missing extra is reported with the image to use, not a pip command
ENV PATH=/opt/mlwarden/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    MLWARDEN_CONFIG=/etc/mlwarden/mlwarden.yaml \
    MPLCONFIGDIR=/tmp/matplotlib \
    MLWARDEN_INSTALL=image
# the SQLite history (single-agent mode) lives here; mount a volume to keep it
WORKDIR /var/lib/mlwarden
EXPOSE 9464
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:9464/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["mlwarden", "run"]
# listen on every interface so kubelet probes and Prometheus reach /healthz /readyz /metrics
CMD ["--listen", "0.0.0.0:9464"]

# the GPU node image (deploy/daemonset.yaml): --target gpu
FROM runtime AS gpu
COPY --from=build-gpu /opt/mlwarden /opt/mlwarden
USER 10001:10001

# the default target: the agent without NVML (sidecars, cluster agents)
FROM runtime AS agent
COPY --from=build /opt/mlwarden /opt/mlwarden
USER 10001:10001
