#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# check.sh MODE INCLUDE_DIR [SKIP...]: compiles each public header alone, as
# its own translation unit, in one MODE, and fails naming every header that
# does not compile cleanly. SKIP names headers left out of this mode.
#   c11 CC        C11, -Wpedantic -Werror, with the C compiler CC
#   cxx CXX       C++11, -Wpedantic -Werror, with the C++ compiler CXX
#   msvc CLANG    clang as MSVC (x86_64-pc-windows-msvc, -fms-compatibility),
#                 C and C++, with GCC's extensions poisoned: MSVC has no
#                 __attribute__, __builtin_* or __atomic_*, and clang would
#                 accept them even as MSVC
#   names         none of our names is reserved: no double underscore (C++
#                 reserves it anywhere in a name) and no leading underscore
set -uo pipefail
mode=$1
shift
compiler=""
if [ "$mode" != names ]; then
  compiler=$1
  shift
fi
inc=$1
shift
skip=" $* "
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
warn=(-Wall -Wextra -Wpedantic -Werror)
poison=('-D__attribute__(x)=@' '-D__builtin_expect(x, y)=@' '-D__typeof__(x)=@')
for op in load_n store_n fetch_add fetch_sub compare_exchange_n exchange_n thread_fence; do
  poison+=("-D__atomic_$op=@")
done
failed=0 checked=0
for path in "$inc"/async/*.h; do
  h=$(basename "$path")
  case "$skip" in *" $h "*) echo "skipped: $h"; continue ;; esac
  checked=$((checked + 1))
  # A declaration after the header keeps a header of macros alone from
  # being an empty translation unit.
  printf '#include <async/%s>\nint async_header_check;\n' "$h" > "$tmp/t.c"
  cp "$tmp/t.c" "$tmp/t.cpp"
  case $mode in
    c11) out=$("$compiler" -std=c11 "${warn[@]}" -fsyntax-only -I"$inc" "$tmp/t.c" 2>&1) ;;
    cxx) out=$("$compiler" -std=c++11 "${warn[@]}" -fsyntax-only -I"$inc" "$tmp/t.cpp" 2>&1) ;;
    msvc)
      ms=(--target=x86_64-pc-windows-msvc -fms-compatibility "${warn[@]}" "${poison[@]}" -fsyntax-only -I"$inc")
      out=$("$compiler" -x c -std=c11 "${ms[@]}" "$tmp/t.c" 2>&1 &&
            "$compiler" -x c++ -std=c++14 "${ms[@]}" "$tmp/t.cpp" 2>&1) ;;
    names) out=$(grep -n -E '\b(async|ASYNC)[A-Za-z0-9_]*__|\b_+(async|ASYNC)' "$path") ;;
    *) echo "unknown mode $mode"; exit 2 ;;
  esac
  if [ $? -ne 0 ] || [ -n "$out" ]; then
    [ "$mode" = names ] && [ -z "$out" ] && continue
    echo "FAIL: $h ($mode)"
    echo "$out" | head -20
    failed=$((failed + 1))
  else
    echo "ok: $h"
  fi
done
echo "headers: $checked checked, $failed failed ($mode)"
[ "$checked" -gt 0 ] && [ "$failed" -eq 0 ]
