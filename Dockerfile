# Images of the RockNet testbed, installed from a wheelhouse with no network access.
# Build with docker/build-images.sh (it builds the base image and the wheelhouse first):
#   docker build --target node        -t rocknet-node:latest .
#   docker build --target coordinator -t rocknet-coordinator:latest .
# BASE_IMAGE is any glibc image with python3 and its venv module: the default is built
# locally by docker/build-base-image.sh; where a registry is reachable python:3.11-slim works.
# Plain Dockerfile syntax: works with the legacy builder and with BuildKit.
ARG BASE_IMAGE=rocknet-base:bookworm

# --- runtime: what both images share --------------------------------------------------------
FROM ${BASE_IMAGE} AS runtime
ENV VIRTUAL_ENV=/opt/rocknet \
    PATH=/opt/rocknet/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NUMBA_CACHE_DIR=/var/cache/rocknet/numba \
    NUMBA_NUM_THREADS=1 \
    MPLCONFIGDIR=/tmp/matplotlib
RUN useradd --uid 10001 --user-group --create-home --home-dir /home/rocknet \
        --shell /bin/sh rocknet \
 && mkdir -p /runs /var/cache/rocknet/numba \
 && chown rocknet:rocknet /runs /var/cache/rocknet/numba

# --- build-node: venv with the node's dependencies and the project, numba cache warmed -----
FROM runtime AS build-node
COPY wheelhouse/requirements-node.txt wheelhouse/requirements-coordinator.txt /wheels/
COPY wheelhouse/deps/ /wheels/deps/
RUN python3 -m venv /opt/rocknet \
 && pip install --no-cache-dir --no-index --find-links /wheels/deps \
        -r /wheels/requirements-node.txt
COPY wheelhouse/project/ /wheels/project/
COPY docker/healthcheck.sh /opt/rocknet/bin/rocknet-healthcheck
RUN pip install --no-cache-dir --no-index --no-deps /wheels/project/*.whl \
 && pip uninstall -q -y pip setuptools \
 && find /opt/rocknet/lib -type d -name tests -prune -exec rm -rf {} + \
 && chmod 0755 /opt/rocknet/bin/rocknet-healthcheck
# Compile every numba kernel once, as the user that runs them, into NUMBA_CACHE_DIR.
USER rocknet
RUN python -m node.warmup

# --- node: no dataset code, no plotting -------------------------------------------------
FROM runtime AS node
COPY --from=build-node /opt/rocknet /opt/rocknet
COPY --from=build-node --chown=rocknet:rocknet /var/cache/rocknet/numba /var/cache/rocknet/numba
USER rocknet
WORKDIR /runs
# Python turns SIGINT into KeyboardInterrupt: the process shuts down cleanly on `docker stop`.
STOPSIGNAL SIGINT
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["rocknet-healthcheck", "connected", "7100"]
CMD ["rocknet", "node", "--connect", "tcp://coordinator:7100", "--checkpoint-dir", "/runs/checkpoints"]

# --- build-coordinator: the `coordinator` extra (datasets, plots) --------------------------
# Installed into the node's venv with everything already there pinned, then only the new
# entries are kept (under /opt/extras, mirroring /), so the coordinator image is the node
# image plus one layer.
FROM build-node AS build-coordinator
USER root
RUN python3 -m venv /tmp/pip-env \
 && pip="/tmp/pip-env/bin/pip --python /opt/rocknet/bin/python" \
 && site=$(/opt/rocknet/bin/python -c 'import sysconfig; print(sysconfig.get_path("purelib"))') \
 && ls -A "$site" >/tmp/site-before && ls -A /opt/rocknet/bin >/tmp/bin-before \
 && $pip list --format=freeze >/tmp/installed.txt \
 && $pip install --no-cache-dir --no-index --find-links /wheels/deps -c /tmp/installed.txt \
        -r /wheels/requirements-coordinator.txt \
 && find "$site" -type d -name tests -prune -exec rm -rf {} + \
 && mkdir -p "/opt/extras$site" /opt/extras/opt/rocknet/bin \
 && cd "$site" && ls -A | comm -13 /tmp/site-before - | xargs -r cp -a -t "/opt/extras$site" \
 && cd /opt/rocknet/bin && ls -A | comm -13 /tmp/bin-before - | xargs -r cp -a -t /opt/extras/opt/rocknet/bin

# --- coordinator: the node image plus the extra's packages ---------------------------------
FROM node AS coordinator
COPY --from=build-coordinator /opt/extras/ /
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["rocknet-healthcheck", "listening", "7102"]
CMD ["rocknet", "coordinator", "--host", "0.0.0.0", "--out", "/runs/run"]
