#!/usr/bin/env bash
# Vendors the browser assets the Go binary embeds (go:embed), so /docs and the console
# work offline: swagger-ui-dist for /docs (pipeline/ingest/docsui/) and htmx for the
# console (pipeline/console/assets/). Versions are pinned here; `npm pack` checks each
# tarball against the registry's integrity hash, and the copied files are checked against
# scripts/ui/SHA256SUMS, so a rebuild gives the same bytes (update the sums on purpose
# with UPDATE=1 after changing a version). Run through `make ui-vendor`.
set -euo pipefail

SWAGGER_UI_VERSION=5.35.0
HTMX_VERSION=2.0.11

root=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

unpack() { # unpack NAME VERSION -> prints the package dir
  local dir="$work/$1"
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "$1@$2" >/dev/null && tar -xzf ./*.tgz)
  echo "$dir/package"
}

sw=$(unpack swagger-ui-dist "$SWAGGER_UI_VERSION")
hx=$(unpack htmx.org "$HTMX_VERSION")

docs="$root/pipeline/ingest/docsui"
con="$root/pipeline/console/assets"
mkdir -p "$docs" "$con"
cp "$sw/swagger-ui-bundle.js" "$sw/swagger-ui.css" "$docs/"
cp "$sw/LICENSE" "$docs/LICENSE.swagger-ui"
echo "swagger-ui-dist $SWAGGER_UI_VERSION" >"$docs/VERSION"
cp "$hx/dist/htmx.min.js" "$con/"
cp "$hx/LICENSE" "$con/LICENSE.htmx"
echo "htmx.org $HTMX_VERSION" >"$con/VERSION"

cd "$root"
files=(pipeline/ingest/docsui/swagger-ui-bundle.js pipeline/ingest/docsui/swagger-ui.css pipeline/console/assets/htmx.min.js)
if [[ "${UPDATE:-}" == 1 ]]; then
  sha256sum "${files[@]}" >scripts/ui/SHA256SUMS
  echo "wrote scripts/ui/SHA256SUMS"
else
  sha256sum -c --quiet scripts/ui/SHA256SUMS
  echo "vendored swagger-ui-dist $SWAGGER_UI_VERSION and htmx.org $HTMX_VERSION; checksums match"
fi
