#!/bin/sh
# The one place that says how Collage Studio is installed for serving and how the server starts.
# `make run` and docker/server*.Dockerfile (and the trainer image's install) call this script, so a laptop and an
# image can never drift apart; tests/docker/test_docker.py checks that they all call it.
#
#   sh scripts/serve.sh install PYTHON EXTRAS           editable install with EXTRAS (cpu | gpu | cpu,train …)
#   sh scripts/serve.sh start PYTHON HOST PORT [ARGS…]  exec the server (uvicorn inside, websocket deflate off)
#
# Editable on purpose: the code finds frontend/ and weights/ relative to its package folders, as in a checkout.
# Both commands run from the repository root, so relative COLLAGE_* paths resolve the same way everywhere.
set -eu

usage() {
    echo "usage: sh scripts/serve.sh install PYTHON EXTRAS | start PYTHON HOST PORT [ARGS...]" >&2
    exit 2
}

[ $# -ge 2 ] || usage
command=$1
python=$2
shift 2
# A relative interpreter path (the Makefile's .venv/bin/python) must survive the cd below.
case $python in
    /*) ;;
    */*) python="$PWD/$python" ;;
esac
cd "$(dirname "$0")/.."
case $command in
    install)
        [ $# -eq 1 ] || usage
        exec "$python" -m pip install -q -e ".[$1]"
        ;;
    start)
        [ $# -ge 2 ] || usage
        host=$1
        port=$2
        shift 2
        exec "$python" -m server --host "$host" --port "$port" "$@"
        ;;
    *)
        usage
        ;;
esac
