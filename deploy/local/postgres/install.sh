#!/bin/sh
# Install Debian's PostgreSQL server binaries for the local aimesh stack, only when none are there.
# `aimesh up` (aimesh.devstack.postgres) looks for /usr/lib/postgresql/*/bin/initdb and runs this
# script when it finds none; `make setup` runs it too. Needs root (apt-get).
set -eu

for initdb in /usr/lib/postgresql/*/bin/initdb; do
    if [ -x "$initdb" ]; then
        echo "PostgreSQL already installed: $initdb"
        exit 0
    fi
done

if [ "$(id -u)" -ne 0 ]; then
    echo "error: installing PostgreSQL needs root. Fix: sudo $0" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends postgresql
