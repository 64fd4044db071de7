#!/usr/bin/env bash
# Fetches the schemas deploy/kubernetes is validated against (tests/deploy/test_kubernetes_manifests.py)
# into a git-ignored cache, once, each download checked against the checksum pinned here:
#   - CloudNativePG's CRDs (Cluster, ScheduledBackup), from its Go module on the Go module proxy;
#   - prometheus-operator's CRDs (ServiceMonitor, PodMonitor), likewise;
#   - Strimzi's model classes (io.strimzi:api) and their dependencies, from Maven Central
#     (pom.xml beside this script; Maven checks each jar's published checksum, -C).
# Core Kubernetes objects need nothing here: kubernetes-validate (PyPI) carries their schemas.
#
# Usage: deploy/kubernetes/validation/fetch.sh [cache dir]   (default var/deploy-schemas of the checkout)
# Exit status 75 when a download failed (offline?), 1 when a checksum did not match.
set -euo pipefail
cd "$(dirname "$0")/../../.."

# A relative cache directory is taken from the checkout's root.
CACHE="$(realpath -m "${1:-var/deploy-schemas}")"
GOPROXY_URL="${GOPROXY_URL:-https://proxy.golang.org}"

CNPG_MODULE=github.com/cloudnative-pg/cloudnative-pg
CNPG_VERSION=v1.30.1
CNPG_SHA256=bfcdf495ee2c31ac35a5b49dd7c442d5e50a300c56157f1df8c9b7b1c57674d9
PROMETHEUS_OPERATOR_MODULE=github.com/prometheus-operator/prometheus-operator
PROMETHEUS_OPERATOR_VERSION=v0.85.0
PROMETHEUS_OPERATOR_SHA256=0bdb88ed823d0f2e86cf909638439b6ad1da744a228172c7411d9987527dc5d1
STRIMZI_VERSION=0.51.0
STRIMZI_API_SHA256=219b54d570c408523f62bffc999041c64ea926afbc784be942290709fbbcde62

# Fetch a Go module's zip, check it, and keep only the listed files (paths inside the module).
fetch_go_module() {
  local module=$1 version=$2 sha256=$3 dest=$4
  shift 4
  if [ -f "$dest/.fetched" ]; then return 0; fi
  local zip
  zip="$(mktemp)"
  trap 'rm -f "$zip"' RETURN
  echo "fetching $module@$version from $GOPROXY_URL" >&2
  curl -fsSL --retry 2 -o "$zip" "$GOPROXY_URL/$module/@v/$version.zip" || exit 75
  if ! echo "$sha256  $zip" | sha256sum -c --status; then
    echo "checksum mismatch for $module@$version: expected $sha256, got $(sha256sum "$zip" | cut -d' ' -f1)" >&2
    exit 1
  fi
  rm -rf "$dest"
  mkdir -p "$dest"
  local file
  for file in "$@"; do
    unzip -q -j -o "$zip" "$module@$version/$file" -d "$dest"
  done
  touch "$dest/.fetched"
}

fetch_go_module "$CNPG_MODULE" "$CNPG_VERSION" "$CNPG_SHA256" "$CACHE/cloudnative-pg-$CNPG_VERSION" \
  config/crd/bases/postgresql.cnpg.io_clusters.yaml \
  config/crd/bases/postgresql.cnpg.io_scheduledbackups.yaml

fetch_go_module "$PROMETHEUS_OPERATOR_MODULE" "$PROMETHEUS_OPERATOR_VERSION" "$PROMETHEUS_OPERATOR_SHA256" \
  "$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" \
  example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml \
  example/prometheus-operator-crd/monitoring.coreos.com_podmonitors.yaml

STRIMZI_DIR="$CACHE/strimzi-$STRIMZI_VERSION"
if [ ! -f "$STRIMZI_DIR/.fetched" ]; then
  echo "fetching io.strimzi:api:$STRIMZI_VERSION from Maven Central" >&2
  mvn -C -q -B -Dstyle.color=never -f deploy/kubernetes/validation/pom.xml dependency:copy-dependencies \
    -Dstrimzi.version="$STRIMZI_VERSION" -DoutputDirectory="$STRIMZI_DIR" -DincludeScope=runtime || exit 75
  if ! echo "$STRIMZI_API_SHA256  $STRIMZI_DIR/api-$STRIMZI_VERSION.jar" | sha256sum -c --status; then
    echo "checksum mismatch for io.strimzi:api:$STRIMZI_VERSION" >&2
    rm -rf "$STRIMZI_DIR"
    exit 1
  fi
  touch "$STRIMZI_DIR/.fetched"
fi
