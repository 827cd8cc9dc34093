#!/usr/bin/env bash
# Builds the real Dockerfile where no public image registry can be reached: assembles a base
# image (Debian bookworm's rootfs from debootstrap + Node.js 24 and npm from the npm registry),
# builds Dockerfile on it with buildah, then runs the image with a read-only root filesystem and
# waits for /readyz on its health port. Needs root, buildah, podman and debootstrap (Debian
# packages). Usage: deploy/docker/build-local.sh [image-tag]   (deploy/README.md)
set -euo pipefail
cd "$(dirname "$0")/../.."

NODE_VERSION=${NODE_VERSION:-24.21.0}
NPM_VERSION=${NPM_VERSION:-11.21.2}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=localhost/tillpoint-base:bookworm-node$NODE_VERSION
IMAGE=${1:-localhost/tillpoint:dev}
WORK=$(mktemp -d /tmp/tillpoint-image.XXXXXX)
ctr="" runner=""
descendants() { local p; for p in $(ps -o pid= --ppid "$1"); do echo "$p"; descendants "$p"; done; }
# On any exit: stop a still-running app (by the PID of our own buildah run), remove the container.
cleanup() {
  if [ -n "$runner" ] && kill -0 "$runner" 2>/dev/null; then
    for p in $(descendants "$runner") "$runner"; do kill -TERM "$p" 2>/dev/null; done
    sleep 5
    for p in $(descendants "$runner") "$runner"; do kill -KILL "$p" 2>/dev/null; done
  fi
  [ -n "$ctr" ] && buildah rm "$ctr" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
log() { printf '\n=== %s\n' "$*"; }

if ! buildah inspect --type image "$BASE" >/dev/null 2>&1; then
  log "base: Debian bookworm (debootstrap, minbase)"
  debootstrap --variant=minbase --include=ca-certificates bookworm "$WORK/rootfs" "$DEBIAN_MIRROR" >"$WORK/debootstrap.log" \
    || { tail -20 "$WORK/debootstrap.log"; exit 1; }
  rm -rf "$WORK/rootfs/var/lib/apt/lists/"* "$WORK/rootfs/var/cache/apt/"*.bin
  log "base: Node.js $NODE_VERSION and npm $NPM_VERSION from the npm registry"
  npm install --prefix "$WORK/node" --no-save --no-audit --no-fund "node@$NODE_VERSION" >/dev/null
  install -m 0755 "$WORK/node/node_modules/node/bin/node" "$WORK/rootfs/usr/local/bin/node"
  (cd "$WORK" && npm pack --silent "npm@$NPM_VERSION" >/dev/null)
  mkdir -p "$WORK/rootfs/usr/local/lib/node_modules/npm"
  tar -xzf "$WORK/npm-$NPM_VERSION.tgz" -C "$WORK/rootfs/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/local/bin/npx"
  ctr=$(buildah from scratch)
  buildah copy "$ctr" "$WORK/rootfs" / >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd node "$ctr"
  buildah commit --quiet "$ctr" "$BASE" >/dev/null
  buildah rm "$ctr" >/dev/null; ctr=""
fi

log "image: $IMAGE from Dockerfile on $BASE"
# The host's CA bundle goes in as a build secret when NODE_EXTRA_CA_CERTS names one (a
# TLS-inspecting proxy in front of the registry); it is not stored in the image.
secret=()
[ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -s "$NODE_EXTRA_CA_CERTS" ] && secret=(--secret "id=npm_ca,src=$NODE_EXTRA_CA_CERTS")
# chroot isolation: this VM's crun cannot create cgroups in hybrid mode (deploy/README.md).
buildah build --format docker --layers --isolation chroot --network host "${secret[@]}" --build-arg "BASE_IMAGE=$BASE" \
  --build-arg "REVISION=$(git rev-parse HEAD 2>/dev/null || echo unknown)" --build-arg "CREATED=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
  --target runtime -t "$IMAGE" -f Dockerfile .
buildah images "$IMAGE"

# Run it: `serve --role all` as uid 10001 under chroot isolation (this VM's crun cannot start
# containers: setrlimit is refused), wait until the image's own HEALTHCHECK passes, then SIGTERM
# the app and check that it drains and exits 0.
log "run: the image as uid 10001; HEALTHCHECK; SIGTERM"
HEALTH_PORT=${HEALTH_PORT:-19464}
API_PORT=${API_PORT:-18464}
ctr=$(buildah from "$IMAGE")
run_env=(--env NODE_ENV=development --env "PORT=$API_PORT" --env "HEALTH_PORT=$HEALTH_PORT" --env MQTT_PORT=off --env MQTTS_PORT=off --env TILLPOINT_DATA_DIR=/tmp/data --env LOG_LEVEL=info)
buildah run --isolation chroot --user 10001:10001 --network host "${run_env[@]}" "$ctr" -- node /app/bin/tillpoint.mjs serve --role all >"$WORK/run.log" 2>&1 &
runner=$!
healthy=""
for _ in $(seq 120); do
  if buildah run --isolation chroot --user 10001:10001 --network host "${run_env[@]}" "$ctr" -- node /app/deploy/docker/healthcheck.mjs >/dev/null 2>&1; then healthy=1; break; fi
  kill -0 "$runner" 2>/dev/null || break
  sleep 2
done
[ -n "$healthy" ] || { cat "$WORK/run.log"; echo "the image did not become healthy"; exit 1; }
echo "HEALTHCHECK passed: /readyz on :$HEALTH_PORT"
# The app's own process: the node descendant of this buildah run (found by parent, not by name).
app=""
for p in $(descendants "$runner"); do case "$(ps -o args= -p "$p")" in "/usr/local/bin/node /app/bin/tillpoint.mjs "*) app=$p ;; esac; done
[ -n "$app" ] || { echo "could not find the app's process"; exit 1; }
kill -TERM "$app"
set +e; wait "$runner"; code=$?; set -e
grep -q '"msg":"stopping"' "$WORK/run.log" || { cat "$WORK/run.log"; echo "SIGTERM did not reach the app's shutdown"; exit 1; }
[ "$code" = 0 ] || { cat "$WORK/run.log"; echo "exit code $code after SIGTERM"; exit 1; }
echo "SIGTERM: drained and exited 0"
buildah rm "$ctr" >/dev/null; ctr=""
