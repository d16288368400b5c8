#!/bin/sh
# kcat, the Kafka client the `logbroker serve` tests drive besides the Python ones, comes from the
# OS (Debian/Ubuntu package kcat), not from PyPI. Installs it when missing and possible; otherwise
# says so and leaves the kcat tests to skip (or, under CI=true, to fail).
command -v kcat >/dev/null 2>&1 && exit 0
if [ "$(id -u)" = 0 ]; then
    SUDO=
elif command -v sudo >/dev/null 2>&1; then
    SUDO=sudo
else
    echo "kcat is not installed and cannot be installed without root: apt-get install -y kcat" >&2
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    $SUDO apt-get update -qq >/dev/null && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat >/dev/null
else
    echo "kcat is not installed and this is not a Debian-like system: install kcat by hand" >&2
fi
exit 0
