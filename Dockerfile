# Multi-stage image of the forwarder. Not yet validated (there is no Docker engine on the
# project's machines); issue "Packaging" adds a script that replays these steps outside Docker
# and a Dockerfile linter. Until then treat it as a draft.

# --- build: compile librdkafka (via node-rdkafka) and TypeScript ---------------------------
FROM node:24-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential python3 pkg-config \
      libssl-dev zlib1g-dev libsasl2-dev libzstd-dev liblz4-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci
COPY tsconfig.json ./
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json && npm prune --omit=dev

# --- runtime: only the shared libraries librdkafka links against ---------------------------
FROM node:24-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl3 zlib1g libsasl2-2 libsasl2-modules \
      libzstd1 liblz4-1 ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /forwarding-service
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/build/src ./build/src
COPY --from=build /src/bin ./bin
# The reference service's mount path; CONFIG_FILE still wins.
ENV CONFIG_FILE=/forwarding-service/config.yaml NODE_ENV=production
USER node
# tini as PID 1 forwards SIGTERM to node, which drains before exiting.
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/forwarding-service/bin/forwarder.js"]
