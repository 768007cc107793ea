#!/bin/sh
# Install Debian's redis-server for the local aimesh stack, only when none is there.
# `aimesh up` (aimesh.devstack.redis_server) looks for redis-server on PATH and runs this script when it
# finds none; `make setup` runs it too. Needs root (apt-get).
set -eu

if command -v redis-server >/dev/null 2>&1; then
    echo "redis-server already installed: $(command -v redis-server)"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing redis-server needs root. Fix: sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends redis-server
