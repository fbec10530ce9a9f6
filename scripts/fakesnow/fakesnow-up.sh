#!/usr/bin/env bash
# Starts fakesnow (a Snowflake look-alike over DuckDB) in server mode on loopback, for the
# Snowflake dialect tests of pipeline/sink. fakesnow and its server extras are installed
# once, pinned, into their own virtualenv under a cache dir (no system packages change);
# each run stops a server an earlier run left on the same state dir, starts a fresh one in
# the background (in-memory databases: every start is empty) and waits until it answers a
# login. Stop it with scripts/fakesnow/fakesnow-down.sh.
#
# Env:
#   SLUICE_FAKESNOW_PORT     port on 127.0.0.1 (default 29480)
#   SLUICE_FAKESNOW_STATE    state dir: log, pid (default /tmp/sluice-fakesnow-<port>)
#   SLUICE_FAKESNOW_HOME     virtualenv cache (default $HOME/.cache/sluice/fakesnow-<version>)
#   SLUICE_FAKESNOW_PYTHON   Python 3.11+ that makes the virtualenv (default python3)
#   SLUICE_FAKESNOW_TIMEOUT  seconds to wait for the server (default 60)
#
# Stdout gets only KEY=VALUE lines (FAKESNOW, FAKESNOW_PID, FAKESNOW_STATE); progress goes
# to stderr. Run the tests with SLUICE_TEST_FAKESNOW set to the FAKESNOW value.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The pins: fakesnow itself, and the dependencies it leaves open that a newer release
# breaks (snowflake-connector-python 5.x dropped snowflake.connector.converter, which
# fakesnow 0.12.1 imports). Changing one of these re-creates the virtualenv.
version="0.12.1"
pins=(
  "fakesnow[server]==${version}"
  "snowflake-connector-python==4.8.1"
  "duckdb==2.0.1"
  "sqlglot==30.22.0"
  "pyarrow==26.0.1"
  "starlette==1.10.0"
  "uvicorn==0.54.0"
)

log() { printf 'fakesnow-up: %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# Below Linux's ephemeral port range, so no outgoing connection can hold it (kafka-up.sh).
port="${SLUICE_FAKESNOW_PORT:-29480}"
if [[ ! "${port}" =~ ^[1-9][0-9]*$ ]] || ((port > 65535)); then
  die "bad SLUICE_FAKESNOW_PORT=${port}"
fi
timeout_s="${SLUICE_FAKESNOW_TIMEOUT:-60}"
[[ "${timeout_s}" =~ ^[1-9][0-9]*$ ]] || die "bad SLUICE_FAKESNOW_TIMEOUT=${timeout_s}"
python="${SLUICE_FAKESNOW_PYTHON:-python3}"
home="${SLUICE_FAKESNOW_HOME:-${HOME}/.cache/sluice/fakesnow-${version}}"
venv="${home}/venv"
state="${SLUICE_FAKESNOW_STATE:-/tmp/sluice-fakesnow-${port}}"
[[ "${state}" == /* && "${state}" != "/" ]] || die "SLUICE_FAKESNOW_STATE must be an absolute dir, not ${state}"
marker="${state}/.sluice-fakesnow-state"
pidfile="${state}/fakesnow.pid"
logfile="${state}/fakesnow.log"

# --- 1. the virtualenv, made once per pin set -----------------------------------------------
want="$(printf '%s\n' "${pins[@]}")"
if [[ ! -x "${venv}/bin/fakesnow" || "$(cat "${home}/.complete" 2>/dev/null)" != "${want}" ]]; then
  command -v "${python}" >/dev/null || die "${python} (3.11+) is required"
  "${python}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "fakesnow ${version} needs Python 3.11+, ${python} is $("${python}" -V 2>&1)"
  log "installing ${pins[*]} into ${venv} (once)"
  t0="${SECONDS}"
  rm -rf "${venv}" "${home}/.complete"
  mkdir -p "${home}"
  "${python}" -m venv "${venv}" || die "${python} -m venv failed (Debian: apt-get install python3-venv)"
  if ! "${venv}/bin/pip" install -q --disable-pip-version-check "${pins[@]}" >"${home}/pip.log" 2>&1; then
    cat "${home}/pip.log" >&2
    die "pip could not install ${pins[*]} (log: ${home}/pip.log)"
  fi
  "${venv}/bin/python" -c 'import fakesnow.server, uvicorn' || die "fakesnow ${version} does not import"
  printf '%s\n' "${want}" >"${home}/.complete"
  log "installed in $((SECONDS - t0)) s"
fi

# --- 2. stop an earlier server, fresh state dir ------------------------------------------------
if [[ -f "${pidfile}" ]]; then
  SLUICE_FAKESNOW_PORT="${port}" SLUICE_FAKESNOW_STATE="${state}" "${script_dir}/fakesnow-down.sh"
fi
shopt -s dotglob nullglob
existing=("${state}"/*)
shopt -u dotglob nullglob
if [[ -d "${state}" && ! -f "${marker}" && ${#existing[@]} -gt 0 ]]; then
  die "${state} exists, is not empty and was not made by fakesnow-up.sh; refusing to wipe it"
fi
rm -rf "${state}"
mkdir -p "${state}"
: >"${marker}"

# can_connect: true if something accepts TCP connections on 127.0.0.1:port.
can_connect() {
  # shellcheck disable=SC2016 # $1 belongs to the inner bash.
  timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "${port}" 2>/dev/null
}
can_connect && die "127.0.0.1:${port} is already in use (set SLUICE_FAKESNOW_PORT to another port)"

# --- 3. start -----------------------------------------------------------------------------------
# The launcher runs fakesnow's own CLI after working around two fakesnow 0.12.1 bugs that
# make any transaction fail once it has written a table ("a single transaction can only
# write to a single attached database"): after CREATE TABLE (and after the temporary
# table each MERGE is rewritten into) fakesnow writes the table's comment, even a missing
# one (as the text 'None'), and its text column lengths into its own metadata database.
# Both records are skipped: a table without a comment needs none, and the lengths only
# feed INFORMATION_SCHEMA.COLUMNS.CHARACTER_MAXIMUM_LENGTH, which Sluice does not read.
cat >"${state}/launch.py" <<'EOF'
import sys

import fakesnow.info_schema as info_schema
from fakesnow.cli import main

_insert_table_comment_sql = info_schema.insert_table_comment_sql


def insert_table_comment_sql(catalog, schema, table, comment):
    if comment is None:
        return "SELECT 1"
    return _insert_table_comment_sql(catalog, schema, table, comment)


info_schema.insert_table_comment_sql = insert_table_comment_sql
info_schema.insert_text_lengths_sql = lambda *args: "SELECT 1"
sys.exit(main(sys.argv[1:]))
EOF

log "starting fakesnow ${version} on 127.0.0.1:${port} (state ${state})"
t0="${SECONDS}"
# The inner bash writes its own pid and execs the server, so the pid file holds its pid.
# shellcheck disable=SC2016 # $$, $0 and $@ belong to the inner bash.
nohup setsid bash -c 'echo "$$" >"$0"; exec "$@"' "${pidfile}" \
  "${venv}/bin/python" "${state}/launch.py" --server --host 127.0.0.1 --port "${port}" \
  >"${logfile}" 2>&1 </dev/null &

# alive PID: true while PID runs (a zombie counts as gone: the server is our child until we exit).
alive() {
  local st
  kill -0 "$1" 2>/dev/null || return 1
  st="$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null || true)"
  [[ -n "${st}" && "${st}" != "Z" ]]
}

# fail MSG: show the server's log, stop it, exit 1.
fail() {
  log "error: $*; last 40 lines of ${logfile}:"
  tail -n 40 "${logfile}" >&2 2>/dev/null || true
  SLUICE_FAKESNOW_PORT="${port}" SLUICE_FAKESNOW_STATE="${state}" "${script_dir}/fakesnow-down.sh" || true
  exit 1
}

# logs_in: true if the server answers a login request the way gosnowflake expects.
logs_in() {
  "${venv}/bin/python" - "${port}" <<'EOF' 2>/dev/null
import json, sys, urllib.request
body = json.dumps({"data": {"SESSION_PARAMETERS": {}}}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[1]}/session/v1/login-request",
                             data=body, headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=2) as r:
    sys.exit(0 if json.load(r).get("success") else 1)
EOF
}

deadline=$((SECONDS + timeout_s))
pid=""
while ((SECONDS < deadline)); do
  [[ -s "${pidfile}" ]] && pid="$(<"${pidfile}")" && break
  sleep 0.1
done
[[ -n "${pid}" ]] || fail "no pid file after ${timeout_s} s"
until can_connect && logs_in; do
  alive "${pid}" || fail "fakesnow pid ${pid} exited"
  ((SECONDS < deadline)) || fail "no login on 127.0.0.1:${port} after ${timeout_s} s"
  sleep 0.2
done
log "fakesnow pid ${pid} up in $((SECONDS - t0)) s"

printf 'FAKESNOW=127.0.0.1:%s\n' "${port}"
printf 'FAKESNOW_PID=%s\n' "${pid}"
printf 'FAKESNOW_STATE=%s\n' "${state}"
