# syntax=docker/dockerfile:1
# The control-plane image, for self-hosted and air-gapped installs (`serve`, `migrate`, `data-planes create`…).
# Build from the repository root:
#   docker build -f docker/control-plane.Dockerfile -t cairn/control-plane:0.1.0 .
# Multi-stage: the build stage has the whole workspace and its dev tools; the production-deps stage
# installs only production dependencies of @cairn/control-plane and its workspace packages (pnpm --prod);
# the final image has Node.js, those dependencies and the compiled dist/ folders. No compiler, no
# package manager, no sources. The base image is pinned to an exact Node.js release on Debian 12.

FROM node:24.21.0-bookworm-slim AS build
RUN npm install --global pnpm@12.4.2
WORKDIR /src
COPY . .
RUN pnpm install --frozen-lockfile
RUN pnpm exec tsc -b apps/control-plane && pnpm --filter @cairn/console build
# The workspace manifests alone, for the production install below.
RUN mkdir -p /manifests \
 && cp package.json pnpm-lock.yaml pnpm-workspace.yaml /manifests/ \
 && find packages apps examples test bench -maxdepth 2 -name package.json -not -path '*/node_modules/*' \
      -exec sh -c 'mkdir -p "/manifests/$(dirname "$1")" && cp "$1" "/manifests/$1"' _ {} \;

FROM node:24.21.0-bookworm-slim AS prod-deps
RUN npm install --global pnpm@12.4.2
WORKDIR /app
COPY --from=build /manifests/ ./
RUN pnpm install --frozen-lockfile --prod --ignore-scripts --filter "@cairn/control-plane..."

FROM node:24.21.0-bookworm-slim
# Package managers are build tools: none in the running image.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack /usr/local/bin/yarn /usr/local/bin/yarnpkg /opt/yarn-*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps /app ./
COPY --from=build /src/packages/common/dist packages/common/dist
COPY --from=build /src/packages/proto/dist packages/proto/dist
COPY --from=build /src/apps/control-plane/dist apps/control-plane/dist
# The console's built files, served by the control plane at / (CAIRN_CP_CONSOLE_DIR).
COPY --from=build /src/apps/console/dist apps/console/dist
# A numeric non-root user, so Kubernetes can verify runAsNonRoot.
USER 10001:10001
EXPOSE 8080 7233
ENTRYPOINT ["node", "apps/control-plane/dist/main.js"]
CMD ["serve"]
