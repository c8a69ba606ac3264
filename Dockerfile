# One image for the operator, the API and the tenant workers; the command picks
# the process (the Helm chart sets it):
#   node dist/operator.mjs | node dist/api/src/main.js | node dist/worker/src/main.js
# Build: docker build -t tenantry/tenantry:dev .
# The Node.js version of tools/node/versions, which the tests run on.
ARG NODE_IMAGE=node:22.23.5-bookworm-slim

# Compiles the TypeScript to dist/ with every dependency installed.
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

# Production dependencies only (argon2 brings its prebuilt binary; no compiler needed).
FROM ${NODE_IMAGE} AS production-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM ${NODE_IMAGE}
ENV NODE_ENV=production
WORKDIR /app
# The same uid the chart and the operator's worker pods run as (runAsNonRoot needs a numeric user).
RUN groupadd --system --gid 10001 tenantry \
  && useradd --system --uid 10001 --gid tenantry --no-create-home --shell /usr/sbin/nologin tenantry
COPY --from=production-deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
USER 10001:10001
EXPOSE 8080 8081 9090
CMD ["node", "dist/api/src/main.js"]
