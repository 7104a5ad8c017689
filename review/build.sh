#!/bin/sh
# SPDX-License-Identifier: MIT (see LICENSE)
# build.sh BUILD_DIR PROG.c [extra flags]: a review program against the core built in BUILD_DIR
# (sanitizer flags follow the build's name: tsan, asan, else none).
set -e
b=$1; src=$2; shift 2
case "$b" in
  *tsan*) san="-fsanitize=thread -O1" ;;
  *asan*) san="-fsanitize=address,undefined -O1" ;;
  *) san="-O2" ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
out="$root/$b/review-$(basename "$src" .c)"
cc -std=gnu11 -g -Wall -Wextra $san -I"$root/core/include" -I"$root/core/src" "$src" "$root/$b/libasync-core.a" -lck -lhwloc -lpthread -lm "$@" -o "$out"
echo "$out"
