# syntax=docker/dockerfile:1
# The worker base image customers build their workflow images on: Node.js with @cairn/worker and @cairn/sdk.
# Build from the repository root:
#   docker build -f docker/worker-base.Dockerfile -t cairn/worker-base:0.1.0 .
# Multi-stage: the build stage has the whole workspace and its dev tools; the production-deps stage
# installs only production dependencies of @cairn/worker and its workspace packages (pnpm --prod);
# the final image has Node.js, those dependencies and the compiled dist/ folders. No compiler, no
# package manager, no sources. The base image is pinned to an exact Node.js release on Debian 12.

FROM node:24.21.0-bookworm-slim AS build
RUN npm install --global pnpm@12.4.2
WORKDIR /src
COPY . .
RUN pnpm install --frozen-lockfile
RUN pnpm exec tsc -b packages/worker
# The workspace manifests alone, for the production install below.
RUN mkdir -p /manifests \
 && cp package.json pnpm-lock.yaml pnpm-workspace.yaml /manifests/ \
 && find packages apps examples test bench -maxdepth 2 -name package.json -not -path '*/node_modules/*' \
      -exec sh -c 'mkdir -p "/manifests/$(dirname "$1")" && cp "$1" "/manifests/$1"' _ {} \;

FROM node:24.21.0-bookworm-slim AS prod-deps
RUN npm install --global pnpm@12.4.2
WORKDIR /app
COPY --from=build /manifests/ ./
RUN pnpm install --frozen-lockfile --prod --ignore-scripts --filter "@cairn/worker..."

FROM node:24.21.0-bookworm-slim
# Package managers are build tools: none in the running image.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps /app ./
COPY --from=build /src/packages/common/dist packages/common/dist
COPY --from=build /src/packages/sdk/dist packages/sdk/dist
COPY --from=build /src/packages/proto/dist packages/proto/dist
COPY --from=build /src/packages/payload-store/dist packages/payload-store/dist
COPY --from=build /src/packages/worker/dist packages/worker/dist
# Workflow code imports @cairn/worker and @cairn/sdk by name from /app (see docs/install.md).
RUN mkdir -p node_modules/@cairn \
 && ln -s ../../packages/worker node_modules/@cairn/worker \
 && ln -s ../../packages/sdk node_modules/@cairn/sdk
ENV CAIRN_WORKER_HEALTH_PORT=8090
# A numeric non-root user, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8090
# Your image copies its compiled workflows to /app/workflows and its own production dependencies
# (without @cairn/*) to /app/node_modules; this runs workflows/worker.js (override CMD otherwise).
ENTRYPOINT ["node"]
CMD ["workflows/worker.js"]
