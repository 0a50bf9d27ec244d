#!/usr/bin/env bash
# Fetch the official AsyncAPI JSON Schemas (npm package @asyncapi/specs) once into the
# cache and print the path of the 3.0.0 schema. Used by `make test` and by
# tests/unit/test_asyncapi.py to validate `forewarn schemas --asyncapi`.
set -euo pipefail
FW_COMPONENT=asyncapi-spec
# shellcheck source=common.sh
source "$(dirname "$0")/common.sh"

VERSION=6.11.1
DIR=$FOREWARN_CACHE_DIR/asyncapi-specs-$VERSION
SCHEMA=$DIR/package/schemas/3.0.0.json
if [[ ! -s $SCHEMA ]]; then
    command -v npm >/dev/null || fw_die "npm is needed to fetch @asyncapi/specs (apt-get install npm)"
    mkdir -p "$DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent "@asyncapi/specs@$VERSION" >/dev/null) \
        || fw_die "npm pack @asyncapi/specs@$VERSION failed"
    tar -xzf "$tmp"/asyncapi-specs-"$VERSION".tgz -C "$DIR" package/schemas/3.0.0.json package/LICENSE
    fw_info "AsyncAPI schemas $VERSION in $DIR"
fi
printf '%s\n' "$SCHEMA"
