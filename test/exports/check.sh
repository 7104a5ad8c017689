#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# check.sh LIB CC INCLUDE_DIR: the shared core LIB exports exactly the
# functions the public headers declare: nothing internal (deque, placement,
# OS layer), and nothing public missing (a declaration without ASYNC_API is
# hidden by the build's -fvisibility=hidden). GCC's -aux-info lists the
# declarations as the compiler sees them; nm -D lists the exports.
set -euo pipefail
lib=$1 cc=$2 inc=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for path in "$inc"/async/*.h; do
  printf '#include <async/%s>\n' "$(basename "$path")"
done > "$tmp/all.c"
"$cc" -std=gnu11 -fsyntax-only -aux-info "$tmp/decls" -I"$inc" "$tmp/all.c"
# Lines like: /* .../async/pool.h:129:NC */ extern int async_pool_create (...);
grep -F "$inc/async/" "$tmp/decls" | grep -E '\*/ extern ' |
  sed -E 's/^.*[^A-Za-z0-9_]([A-Za-z_][A-Za-z0-9_]*) \(.*$/\1/' | sort -u > "$tmp/public"
nm -D --defined-only "$lib" | awk '$2 ~ /^[TtDdBbRrVvWwi]$/ { print $3 }' |
  grep -v -E '^(_init|_fini|_edata|_end|__bss_start)$' | sort -u > "$tmp/exported"
extra=$(comm -13 "$tmp/public" "$tmp/exported")
missing=$(comm -23 "$tmp/public" "$tmp/exported")
echo "public functions: $(wc -l < "$tmp/public"), exported symbols: $(wc -l < "$tmp/exported")"
status=0
if [ -n "$extra" ]; then
  echo "exported but not in the public headers:"; echo "$extra" | sed 's/^/  /'; status=1
fi
if [ -n "$missing" ]; then
  echo "declared in the public headers but not exported (ASYNC_API missing?):"; echo "$missing" | sed 's/^/  /'; status=1
fi
[ $status -eq 0 ] && echo "exports: exactly the public API"
exit $status
