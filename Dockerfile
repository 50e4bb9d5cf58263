# Container image of the forwarder: a drop-in for the reference service's image.
#
#   docker build -t mqtt-kafka-forwarder:0.1.0 .
#   docker run --rm -v "$(pwd)/my-config.yaml:/forwarding-service/config.yaml:ro" mqtt-kafka-forwarder:0.1.0
#
# There is no Docker engine on the project's machines: scripts/image-steps replays this file's
# build steps (it reads this file: stages, COPY, RUN, ENV, ENTRYPOINT) in a temporary directory,
# with the production dependencies only, and runs a forwarding smoke test from the result;
# scripts/lint-packaging lints this file with hadolint. Keep the build-stage RUN lines free of
# absolute paths (they are replayed relative to the stage's WORKDIR), and keep every apt-get
# line's package list on the `apt-get install` command (image-steps checks the lists).

# Node.js LTS on Debian 12 (bookworm), the Debian release the librdkafka package names below are
# for (bookworm: libssl3; trixie renamed it libssl3t64).
ARG NODE_IMAGE=node:24-bookworm-slim

# --- build: compile librdkafka (through node-rdkafka's install script) and the TypeScript ------
FROM ${NODE_IMAGE} AS build
# Headers for SSL, SASL (PLAIN, SCRAM, GSSAPI), zstd and lz4: without them librdkafka builds
# silently without those features. Versions come with the Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 pkg-config \
      libssl-dev zlib1g-dev libsasl2-dev libzstd-dev liblz4-dev \
 && rm -rf /var/lib/apt/lists/*
# node-gyp builds the addon against the image's own Node headers instead of downloading them.
ENV npm_config_nodedir=/usr/local
WORKDIR /src
COPY package.json package-lock.json ./
# native/: the _exit addon of the last-resort stop (package.json's postinstall builds it) and the
# patches to node-rdkafka and its librdkafka, applied before they are compiled (native/install).
COPY native ./native
RUN native/install
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
# Compile, drop the dev dependencies, and trim the native build, which leaves ~500 MB behind
# (librdkafka's sources and objects, static archives, headers): at run time only the addon and
# librdkafka's shared libraries are loaded (build/Release/node-librdkafka.node finds them
# through its RPATH $ORIGIN/../deps).
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && rk=node_modules/node-rdkafka \
 && rm -rf "$rk/deps" "$rk/src" "$rk/e2e" "$rk/test" "$rk/bench" "$rk/examples" "$rk/ci" \
 && find "$rk/build" -mindepth 1 -maxdepth 1 ! -name Release ! -name deps -exec rm -rf {} + \
 && find "$rk/build/Release" -mindepth 1 -maxdepth 1 ! -name node-librdkafka.node -exec rm -rf {} + \
 && find "$rk/build/deps" -mindepth 1 -maxdepth 1 ! -name 'librdkafka*.so*' -exec rm -rf {} +

# --- runtime: Node.js and the shared libraries librdkafka links against ------------------------
FROM ${NODE_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="mqtt-kafka-forwarder" \
      org.opencontainers.image.description="Forwards MQTT messages to Apache Kafka by topic mappings, at least once" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
# libsasl2-modules: the SASL mechanisms' plugins (PLAIN, SCRAM); ca-certificates: the system CAs
# for `security.protocol: ssl` without ssl.ca.location.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libsasl2-2 libsasl2-modules \
      libzstd1 liblz4-1 ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /forwarding-service
# Owned by root and not writable by the service's user: the app cannot modify itself, and the
# image runs unchanged with a read-only root filesystem.
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build/src ./build/src
COPY --from=build /src/native/hard-exit/build/Release/hard_exit.node ./native/hard-exit/build/Release/
COPY --from=build /src/bin ./bin
# The reference service's mount path (`-v my-config.yaml:/forwarding-service/config.yaml`).
# `--config` and `-e CONFIG_FILE=...` still choose another file.
ENV CONFIG_FILE=/forwarding-service/config.yaml \
    NODE_ENV=production
# /healthz, /readyz, /metrics (config key `http`, default 0.0.0.0:8080).
EXPOSE 8080
# The base image's `node` user, by number so that Kubernetes' runAsNonRoot can verify it.
USER 1000:1000
# The entrypoint sizes the ingest processes and their Kafka producer pools from the CPUs the
# container may use, then execs node, which becomes PID 1 and handles SIGTERM itself (drain,
# exit 0). With `processes` > 1 it forks the ingest processes and reaps them itself (they start
# no processes of their own), so no init is needed to reap zombies.
#   FORWARDER_CPUS      whole CPUs of the container (the Helm chart passes its CPU limit through
#                       the Downward API, rounded up); unset: nothing is computed.
#   FORWARDER_SIZING    `processes` (the chart's cpuSizing.processes): size the process count
#                       too. Anything else or unset: one process, only the workers are sized.
#   FORWARDER_PROCESSES ingest processes, used by a config that says
#                       `processes: ${FORWARDER_PROCESSES:-1}` (the chart's, with
#                       cpuSizing.processes).
#   FORWARDER_WORKERS   worker threads per ingest process, used by a config that says
#                       `dispatch: { workers: ${FORWARDER_WORKERS:-1} }` (the chart's does).
# Each of the last two, set explicitly (non-empty), wins. Otherwise, from FORWARDER_CPUS:
#   FORWARDER_SIZING=processes and CPUs >= 4: PROCESSES = CPUs / 2 (rounded down, at most 64),
#     WORKERS = 1 (each process: one core for its main thread, which owns its MQTT connection,
#     one for its producer thread);
#   else: PROCESSES = 1, WORKERS = CPUs - 1 (one core stays with the main thread), 0 (producer
#     on the main thread) for one CPU, at most 64.
ENTRYPOINT ["/bin/sh", "-c", "if [ -n \"${FORWARDER_CPUS:-}\" ]; then if [ \"${FORWARDER_SIZING:-}\" = processes ] && [ $(( FORWARDER_CPUS >= 4 )) = 1 ]; then p=$(( FORWARDER_CPUS / 2 > 64 ? 64 : FORWARDER_CPUS / 2 )); w=1; else p=1; w=$(( FORWARDER_CPUS <= 1 ? 0 : (FORWARDER_CPUS > 65 ? 64 : FORWARDER_CPUS - 1) )); fi; export FORWARDER_PROCESSES=\"${FORWARDER_PROCESSES:-$p}\" FORWARDER_WORKERS=\"${FORWARDER_WORKERS:-$w}\"; fi; exec node /forwarding-service/bin/forwarder.js \"$@\"", "forwarder"]
