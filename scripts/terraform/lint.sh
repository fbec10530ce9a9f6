#!/usr/bin/env bash
# Lints terraform/ offline: tflint with its bundled terraform ruleset over every module and
# environment, then checkov's Terraform checks. Installs both on first use (idempotent):
#   tflint  TFLINT_VERSION, built with `go install` into $SLUICE_CACHE/bin
#   checkov CHECKOV_VERSION, from PyPI into the virtualenv $SLUICE_CACHE/checkov-<version>
# Every checkov skip must carry a reason: `#checkov:skip=CKV_...:why`.
# Exits non-zero if either tool reports a finding. Needs no terraform binary, no cloud
# credentials, and no plugin download (tflint --init is not run).
set -euo pipefail

TFLINT_VERSION="${TFLINT_VERSION:-v0.64.0}"
CHECKOV_VERSION="${CHECKOV_VERSION:-3.3.30}"
SLUICE_CACHE="${SLUICE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice}"
GO="${GO:-go}"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tfdir="$repo/terraform"
bindir="$SLUICE_CACHE/bin"
venv="$SLUICE_CACHE/checkov-$CHECKOV_VERSION"
mkdir -p "$bindir"

log() { printf '== %s\n' "$*" >&2; }

# elapsed START: seconds since START (from $SECONDS).
elapsed() { echo "$((SECONDS - $1))s"; }

install_tflint() {
  local tflint="$bindir/tflint" have=""
  [[ -x "$tflint" ]] && have="$("$tflint" --version 2>/dev/null || true)"
  if [[ "${have%%$'\n'*}" == "TFLint version ${TFLINT_VERSION#v}" ]]; then
    return
  fi
  log "installing tflint $TFLINT_VERSION (go install)"
  local t=$SECONDS
  GOBIN="$bindir" GOFLAGS=-mod=mod "$GO" install "github.com/terraform-linters/tflint@$TFLINT_VERSION"
  log "tflint installed in $(elapsed "$t")"
}

install_checkov() {
  if [[ -x "$venv/bin/checkov" ]] && [[ "$("$venv/bin/checkov" --version 2>/dev/null)" == "$CHECKOV_VERSION" ]]; then
    return
  fi
  log "installing checkov $CHECKOV_VERSION into $venv"
  local t=$SECONDS
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "checkov==$CHECKOV_VERSION"
  log "checkov installed in $(elapsed "$t")"
}

# check_skip_reasons fails on a checkov skip comment without a reason after the id.
check_skip_reasons() {
  local bad
  bad="$(grep -rnE 'checkov:skip=' "$tfdir" --include='*.tf' | grep -vE 'checkov:skip=CKV2?_[A-Z0-9_]+:[[:space:]]*[^[:space:]].{9,}' || true)"
  if [[ -n "$bad" ]]; then
    echo "checkov skips without a reason (write #checkov:skip=CKV_...:why):" >&2
    echo "$bad" >&2
    return 1
  fi
}

install_tflint
install_checkov

status=0

log "tflint (bundled terraform ruleset, preset all) over every module and env"
t=$SECONDS
if ! "$bindir/tflint" --chdir="$tfdir" --recursive --config="$tfdir/.tflint.hcl" \
  --minimum-failure-severity=notice --format=compact; then
  status=1
fi
log "tflint took $(elapsed "$t")"

log "checkov skip reasons"
check_skip_reasons || status=1

log "checkov -d terraform --framework terraform"
t=$SECONDS
# --skip-download: no calls home for guidelines or severities; results are the same.
if ! (cd "$repo" && ANSI_COLORS_DISABLED=1 "$venv/bin/checkov" -d terraform --framework terraform \
  --quiet --compact --skip-download); then
  status=1
fi
log "checkov took $(elapsed "$t")"

if [[ $status -ne 0 ]]; then
  log "terraform lint: FAILED"
else
  log "terraform lint: clean"
fi
exit "$status"
