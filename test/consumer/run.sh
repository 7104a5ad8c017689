#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh BUILD_DIR: install the core into a temporary prefix, then build and
# run a consumer with find_package(async), another with pkg-config, and the
# same source as C++; the .pc file must hand consumers nothing but include
# paths (no flag of ck's or hwloc's, whose headers the public ones never
# include).
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
for flags in "$(pkg-config --cflags async-core)" "$(pkg-config --cflags --static async-core)"; do
  for f in $flags; do
    case $f in
      -I*) ;;
      *) echo "pkg-config --cflags async-core passes $f to consumers"; exit 1 ;;
    esac
  done
done
echo "pkg-config cflags: include paths only"
# A shared core is found at run time through the prefix's lib folder.
libdir=$(pkg-config --variable=libdir async-core)
cc -o "$tmp/pc" "$here/main.c" $(pkg-config --cflags --libs async-core)
LD_LIBRARY_PATH="$libdir" "$tmp/pc" | sed 's/^/pkg-config /'
c++ -x c++ -std=c++11 -Wall -Wextra -o "$tmp/pcxx" "$here/main.c" -x none $(pkg-config --cflags --libs async-core)
LD_LIBRARY_PATH="$libdir" "$tmp/pcxx" | sed 's/^/C++ /'
