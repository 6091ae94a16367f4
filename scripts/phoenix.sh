#!/usr/bin/env bash
# Run Arize Phoenix (a local, offline tracing UI) for Uniwizard's OpenTelemetry traces.
#
#   scripts/phoenix.sh            install Phoenix if missing, then serve it (Ctrl-C stops)
#   scripts/phoenix.sh install    only install it
#   scripts/phoenix.sh env        print the variables that point the stack at it
#
# Phoenix lives in its OWN virtual environment (.envs/phoenix, ~850 MB, installed once from
# PyPI), never in .venv and never part of `make test`. It runs with its own telemetry off and
# loads no external resources, so it works without a network once installed.
#
# Environment (all optional):
#   PHOENIX_VENV          where the virtual environment lives      (default: .envs/phoenix)
#   PHOENIX_SPEC          what pip installs                        (default: arize-phoenix)
#   PHOENIX_HOST          address to listen on                     (default: 127.0.0.1)
#   PHOENIX_PORT          UI, REST/GraphQL API and OTLP over HTTP  (default: 6006)
#   PHOENIX_GRPC_PORT     OTLP over gRPC                           (default: 4317)
#   PHOENIX_WORKING_DIR   Phoenix's SQLite database and state
#                         (default: $UNIWIZARD_DATA_DIR/phoenix, else ~/.local/share/uniwizard/phoenix)
#   PYTHON                interpreter that creates the environment (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PHOENIX_VENV="${PHOENIX_VENV:-$ROOT/.envs/phoenix}"
PHOENIX_SPEC="${PHOENIX_SPEC:-arize-phoenix}"
PYTHON="${PYTHON:-python3}"
export PHOENIX_HOST="${PHOENIX_HOST:-127.0.0.1}"
export PHOENIX_PORT="${PHOENIX_PORT:-6006}"
export PHOENIX_GRPC_PORT="${PHOENIX_GRPC_PORT:-4317}"
export PHOENIX_WORKING_DIR="${PHOENIX_WORKING_DIR:-${UNIWIZARD_DATA_DIR:-$HOME/.local/share/uniwizard}/phoenix}"
# Offline and private: no usage telemetry to Arize, no CDN fonts or scripts in the UI.
export PHOENIX_TELEMETRY_ENABLED=false
export PHOENIX_ALLOW_EXTERNAL_RESOURCES=false

install() {
    if [ -x "$PHOENIX_VENV/bin/phoenix" ]; then
        return 0
    fi
    echo "phoenix.sh: installing $PHOENIX_SPEC into $PHOENIX_VENV (large, a few minutes, once)" >&2
    mkdir -p "$(dirname "$PHOENIX_VENV")"
    "$PYTHON" -m venv "$PHOENIX_VENV"
    "$PHOENIX_VENV/bin/pip" install --quiet --upgrade pip
    "$PHOENIX_VENV/bin/pip" install --quiet "$PHOENIX_SPEC"
    if [ ! -x "$PHOENIX_VENV/bin/phoenix" ]; then
        echo "phoenix.sh: the install finished but $PHOENIX_VENV/bin/phoenix is missing" >&2
        exit 1
    fi
}

print_env() {
    local version
    version="$("$PHOENIX_VENV/bin/python" -c 'import phoenix; print(phoenix.__version__)' 2>/dev/null || echo '?')"
    cat <<EOF
Phoenix $version: UI http://$PHOENIX_HOST:$PHOENIX_PORT   (data: $PHOENIX_WORKING_DIR)
Point the stack at it, in another terminal (OTLP over gRPC, the project's default):

    OTEL_EXPORTER_OTLP_ENDPOINT=http://$PHOENIX_HOST:$PHOENIX_GRPC_PORT OTEL_METRICS_EXPORTER=none \\
    OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=uniwizard .venv/bin/uniwizard up --sim

or OTLP over HTTP to the UI port:

    OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf OTEL_METRICS_EXPORTER=none \\
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=http://$PHOENIX_HOST:$PHOENIX_PORT/v1/traces \\
    OTEL_RESOURCE_ATTRIBUTES=openinference.project.name=uniwizard .venv/bin/uniwizard up --sim

(Phoenix takes traces, not metrics: OTEL_METRICS_EXPORTER=none keeps the services from logging
failed metric exports. Without the resource attribute, spans land in Phoenix's "default" project.)
Then: .venv/bin/uniwizard think "Who was the first emperor of Rome?" and open the UI.
EOF
}

cmd="${1:-serve}"
case "$cmd" in
install)
    install
    ;;
env)
    print_env
    ;;
serve)
    install
    mkdir -p "$PHOENIX_WORKING_DIR"
    print_env
    echo
    exec "$PHOENIX_VENV/bin/phoenix" serve
    ;;
*)
    echo "usage: scripts/phoenix.sh [serve|install|env]" >&2
    exit 2
    ;;
esac
