#!/usr/bin/env bash
# run.sh BUILD_DIR: install the core into a temporary prefix, then build and
# run a consumer with find_package(async) and another with pkg-config.
set -euo pipefail
build=$1
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cmake -S "$here" -B "$tmp/cm" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm" >/dev/null
"$tmp/cm/consumer"
export PKG_CONFIG_PATH="$tmp/prefix/lib/pkgconfig:$(ls -d "$tmp"/prefix/lib/*/pkgconfig 2>/dev/null | tr '\n' ':')"
cc -o "$tmp/pc" "$here/main.c" $(pkg-config --cflags --libs async-core)
"$tmp/pc" | sed 's/^/pkg-config /'
