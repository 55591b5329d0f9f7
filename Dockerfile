# Images of the RockNet testbed, installed from a wheelhouse with no network access.
# Build with docker/build-images.sh (it builds the base image and the wheelhouse first):
#   docker build --target node        -t rocknet-node:latest .
#   docker build --target coordinator -t rocknet-coordinator:latest .
# BASE_IMAGE is any glibc image with python3 and its venv module: the default is built
# locally by docker/build-base-image.sh; where a registry is reachable python:3.11-slim works.
# Plain Dockerfile syntax: works with the legacy builder and with BuildKit.
#
# Layers, bottom up (both images share the first two; a change of the project's code
# rebuilds only the small project and numba-cache layers):
#   node:        runtime | dependencies venv |                | project | numba cache
#   coordinator: runtime | dependencies venv | extra packages | project | numba cache
ARG BASE_IMAGE=rocknet-base:bookworm

# --- runtime: what every image starts from ------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/rocknet \
    PATH=/opt/rocknet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/cache/rocknet/numba \
    NUMBA_NUM_THREADS=1 \
    MPLCONFIGDIR=/tmp/matplotlib
COPY docker/healthcheck.sh /usr/local/bin/rocknet-healthcheck
RUN chmod 0755 /usr/local/bin/rocknet-healthcheck \
 && useradd --uid 10001 --user-group --create-home --home-dir /home/rocknet \
        --shell /bin/sh rocknet \
 && mkdir -p /runs /var/cache/rocknet/numba \
 && chown rocknet:rocknet /runs /var/cache/rocknet/numba

# --- build-deps: a venv with the node's dependencies (no pip left in it) -------------------
FROM runtime AS build-deps
COPY wheelhouse/requirements-node.txt wheelhouse/requirements-coordinator.txt /wheels/
COPY wheelhouse/deps/ /wheels/deps/
COPY docker/venv-diff.sh /usr/local/bin/venv-diff
RUN python3 -m venv /opt/rocknet \
 && /opt/rocknet/bin/pip install --no-cache-dir --no-index --find-links /wheels/deps \
        -r /wheels/requirements-node.txt \
 && /opt/rocknet/bin/pip uninstall -q -y pip setuptools \
 && find /opt/rocknet/lib -type d -name tests -prune -exec rm -rf {} + \
 && python3 -m venv /opt/pip \
 && venv-diff snapshot /opt/rocknet /opt/deps.list

# --- build-extras: the `coordinator` extra (datasets, plots), staged under /opt/layer -----
# Installed with everything already in the venv pinned (-c), so nothing below changes.
FROM build-deps AS build-extras
RUN pip="/opt/pip/bin/pip --python /opt/rocknet/bin/python" \
 && $pip list --format=freeze >/tmp/installed.txt \
 && $pip install --no-cache-dir --no-index --find-links /wheels/deps -c /tmp/installed.txt \
        -r /wheels/requirements-coordinator.txt \
 && find /opt/rocknet/lib -type d -name tests -prune -exec rm -rf {} + \
 && venv-diff stage /opt/rocknet /opt/deps.list /opt/layer

# --- build-node: the project, staged under /opt/layer; numba cache warmed ------------------
FROM build-deps AS build-node
COPY wheelhouse/project/ /wheels/project/
RUN /opt/pip/bin/pip --python /opt/rocknet/bin/python install --no-cache-dir --no-index \
        --no-deps /wheels/project/*.whl \
 && venv-diff stage /opt/rocknet /opt/deps.list /opt/layer
# Compile every numba kernel once, as the user that runs them, into NUMBA_CACHE_DIR.
USER rocknet
RUN python -m node.offline.warmup

# --- node: no dataset code, no plotting -------------------------------------------------
FROM runtime AS node
COPY --from=build-deps /opt/rocknet /opt/rocknet
COPY --from=build-node /opt/layer/ /
COPY --from=build-node --chown=rocknet:rocknet /var/cache/rocknet/numba /var/cache/rocknet/numba
USER rocknet
WORKDIR /runs
# Python turns SIGINT into KeyboardInterrupt: the process shuts down cleanly on `docker stop`.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["rocknet-healthcheck", "connected", "7100"]
CMD ["rocknet", "node", "--connect", "tcp://coordinator:7100", "--checkpoint-dir", "/runs/checkpoints"]

# --- coordinator: the node's layers plus the extra's packages -----------------------------
FROM runtime AS coordinator
COPY --from=build-deps /opt/rocknet /opt/rocknet
COPY --from=build-extras /opt/layer/ /
COPY --from=build-node /opt/layer/ /
COPY --from=build-node --chown=rocknet:rocknet /var/cache/rocknet/numba /var/cache/rocknet/numba
USER rocknet
WORKDIR /runs
STOPSIGNAL SIGINT
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["rocknet-healthcheck", "listening", "7102"]
CMD ["rocknet", "coordinator", "--host", "0.0.0.0", "--out", "/runs/run"]
