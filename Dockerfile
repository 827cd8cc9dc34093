# syntax=docker/dockerfile:1
# Tillpoint's image: one image, three roles (api, worker, terminal-gateway: `serve --role`), plus
# the `waf-gateway` target (nginx + ModSecurity + OWASP CRS driven by `tillpoint gateway start`).
#
# The base is a build argument so the image builds where public registries cannot be reached:
# any Debian bookworm image with Node.js 24 at /usr/local/bin/node works (deploy/README.md,
# "Building the image"). In the pipeline it is the official image pinned by digest.
ARG BASE_IMAGE=node:24.21.0-bookworm-slim

# --- production dependencies only (no TypeScript compiler, no test libraries) ---------------
FROM ${BASE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# argon2 and esbuild (tsx's transpiler) come with prebuilt binaries from the registry.
# npm_ca (optional build secret): a CA bundle for a TLS-inspecting proxy between the build and the
# registry; mounted for this step only, never stored in a layer.
RUN --mount=type=secret,id=npm_ca,required=false \
    if [ -s /run/secrets/npm_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/npm_ca; fi \
 && npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && rm -rf /root/.npm /tmp/*

# --- the operator console, built once here (the image never builds at start) ----------------
FROM deps AS console
COPY console ./console
RUN node console/build.mjs

# --- the application ---------------------------------------------------------------------
FROM ${BASE_IMAGE} AS app
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY --from=console /app/console/dist ./console/dist
COPY deploy/gateway ./deploy/gateway
COPY deploy/docker/healthcheck.mjs ./deploy/docker/healthcheck.mjs
# Owned by root, read-only to the app: the process cannot change its own code.
RUN chmod -R a-w,a+rX /app \
 && mkdir -p /var/lib/tillpoint && chown 10001:10001 /var/lib/tillpoint

# --- the WAF gateway (PCI DSS 6.4.2) -------------------------------------------------------
FROM app AS waf-gateway
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-http-modsecurity modsecurity-crs \
 && rm -rf /var/lib/apt/lists/* /var/log/nginx/* \
 && chown -R 10001:10001 /var/lib/nginx /var/log/nginx
USER 10001:10001
ENV NODE_ENV=production TILLPOINT_DATA_DIR=/var/lib/tillpoint
EXPOSE 8443
ENTRYPOINT ["node", "/app/bin/tillpoint.mjs"]
CMD ["gateway", "start", "--listen", "0.0.0.0:8443", "--upstream", "http://api:8080"]

# --- the platform (default target) ---------------------------------------------------------
FROM app AS runtime
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="tillpoint" \
      org.opencontainers.image.description="UPI payments and reward points for point-of-sale fleets (api, worker, terminal-gateway roles)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/tillpoint/tillpoint" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
# No secret is baked in: every key, password and certificate comes from the environment or from
# files mounted at run time (SECRETS_DIR, *_FILE settings; deploy/README.md).
# TMPDIR: tsx keeps its transpile cache there; with a read-only root filesystem it is a mounted
# tmpfs/emptyDir. HEALTH_PORT: the worker and terminal-gateway roles answer /healthz there.
# TILLPOINT_CONSOLE_BUILD=off: the console was built in the image (console/dist); the root
# filesystem is read-only, so the start must not try to build it again.
# NODE_OPTIONS: V8's young generation capped at 16 MB a semi-space, Node.js 20's size. Node.js 24
# sizes it larger by default: the api's peak RSS under bench:payments went from 218-225 MB to
# 294-321 MB with no measurable CPU saved (bench/PROFILE.md, "Session 9: the production runtime").
# --v8-pool-size=1: one background thread for V8's garbage collection and compilation instead of
# four. The pods are limited to a core or less; four helper threads marking at once took the
# cores from every process's main thread, and the terminal gateway's create p99 at 1,000/s went
# from 82-132 ms to 66-83 ms with it (bench/PROFILE.md, "Session 13").
ENV NODE_ENV=production \
    NODE_OPTIONS="--max-semi-space-size=16 --v8-pool-size=1" \
    TILLPOINT_DATA_DIR=/var/lib/tillpoint \
    TILLPOINT_CONSOLE_BUILD=off \
    TMPDIR=/tmp \
    PORT=8443 \
    HEALTH_PORT=9464
USER 10001:10001
EXPOSE 8443 8883 9464
# node is PID 1 and handles SIGTERM itself: stops taking work, finishes what is in flight,
# closes the database, exits 0 (src/cli/command.ts onShutdown).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "/app/deploy/docker/healthcheck.mjs"]
ENTRYPOINT ["node", "/app/bin/tillpoint.mjs"]
CMD ["serve", "--role", "api"]
