#!/usr/bin/env bash
# Rolls an image out to a cluster: the migration Job first (to completion), then the roles, then
# waits for every Deployment's rollout; on a failed rollout, rolls the Deployments back and fails.
# Usage: deploy/pipeline/deploy.sh <overlay: dev|prod> <image@sha256:digest> [--render-only]
# (--render-only prints what would be applied and stops: the tests use it.)
set -euo pipefail
cd "$(dirname "$0")/../.."
overlay=$1 image=$2 mode=${3:-apply}
ns=$( [ "$overlay" = dev ] && echo tillpoint-dev || echo tillpoint )
case "$image" in *@sha256:*) ;; *) echo "deploy by digest (image@sha256:...), got $image"; exit 2 ;; esac

# A release kustomization on top of the overlay pins the image by digest.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r deploy/k8s "$work/"
mkdir "$work/release"
cat > "$work/release/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../k8s/overlays/$overlay]
images: [{ name: "${image%@*}", digest: "${image#*@}" }]
YAML
kubectl kustomize "$work/release" > "$work/all.yaml"
grep -q "image: $image" "$work/all.yaml" || { echo "the overlay's image is not ${image%@*}: nothing would change"; exit 2; }
if [ "$mode" = --render-only ]; then cat "$work/all.yaml"; exit 0; fi

# Server-side dry run first: the API server validates every object (unknown fields included).
kubectl apply --server-side --dry-run=server -f "$work/all.yaml" >/dev/null

# 1. Everything but the workloads (namespace, config, secrets, policies), then the migration Job.
kubectl delete job tillpoint-migrate -n "$ns" --ignore-not-found --wait=true
kubectl apply --server-side -f "$work/all.yaml" --selector 'app.kubernetes.io/component notin (api,worker,terminal-gateway)'
kubectl wait -n "$ns" --for=condition=complete job/tillpoint-migrate --timeout=900s || {
  kubectl logs -n "$ns" job/tillpoint-migrate --tail=100 || true
  echo "migration failed: the roles were not rolled out"; exit 1; }

# 2. The roles, and their rollout.
kubectl apply --server-side -f "$work/all.yaml"
for d in tillpoint-api tillpoint-worker tillpoint-terminal-gateway; do
  if ! kubectl rollout status -n "$ns" "deployment/$d" --timeout=600s; then
    echo "rollout of $d failed: rolling back"
    for r in tillpoint-api tillpoint-worker tillpoint-terminal-gateway; do kubectl rollout undo -n "$ns" "deployment/$r" || true; done
    exit 1
  fi
done
echo "deployed $image to $overlay"
