#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# rejects.sh SOURCE_DIR LUA_DIR: test/release/check.sh refuses the binaries a
# player's machine could not load, each for its own reason: a module needing
# glibc 2.34, one importing dlopen, the development build's module (it needs
# libhwloc), a file whose size differs from the manifest, and a DLL needing
# mingw's libwinpthread (when mingw-w64 is installed).
set -euo pipefail
src=$(cd "$1" && pwd)
lua=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check=$src/test/release/check.sh

# A release folder holding one binary, under the name $2, with its manifest.
folder() { # binary name
  local d=$tmp/$2
  rm -rf "$d" && mkdir -p "$d"
  cp "$lua"/*.lua "$d/" && cp "$1" "$d/$2"
  (cd "$d" && printf '%s %s %s\n' "$2" "$(stat -c %s "$2")" "$(sha1sum "$2" | cut -d' ' -f1)" >async_native.manifest)
  echo "$d"
}
# check.sh must fail on the folder, saying $2.
rejects() { # folder expected-message case-name
  local out
  if out=$(bash "$check" "$1" 2>&1); then echo "FAILED: check.sh accepted $3: $out"; exit 1; fi
  grep -qF -- "$2" <<<"$out" || { echo "FAILED: check.sh refused $3 for another reason: $out"; exit 1; }
  echo "rejected: $3 ($2)"
}

cat >"$tmp/thread.c" <<'C'
#include <pthread.h>
#ifdef OPEN
#include <dlfcn.h>
#endif
static void *run(void *p) { return p; }
__attribute__((visibility("default"))) int luaopen_async_native(void *L) {
  pthread_t t;
  if (pthread_create(&t, 0, run, L)) return 0;
  pthread_join(t, 0);
#ifdef OPEN
  return dlopen("libhwloc.so.15", RTLD_NOW) != 0;
#else
  return 0;
#endif
}
C
gcc -shared -fPIC -o "$tmp/new.so" "$tmp/thread.c" -lpthread
rejects "$(folder "$tmp/new.so" async_native-linux-x64.so)" "needs GLIBC_2.34" "a module built against glibc 2.36, unpinned"
gcc -shared -fPIC -DOPEN -include "$src/cmake/glibc-compat.h" -o "$tmp/open.so" "$tmp/thread.c" \
  -Wl,--no-as-needed -l:libpthread.so.0 -ldl
rejects "$(folder "$tmp/open.so" async_native-linux-x64.so)" "imports dlopen" "a module that opens a library at run time"
if objdump -p "$lua/async_native.so" | grep "NEEDED.*libhwloc" >/dev/null; then
  rejects "$(folder "$lua/async_native.so" async_native-linux-x64.so)" "libhwloc.so.15" "the development build's module"
fi
d=$(folder "$tmp/new.so" async_native-linux-x64.so)
printf 'x' >>"$d/async_native-linux-x64.so"
rejects "$d" "the manifest has no line" "a binary changed after the manifest was written"
if command -v x86_64-w64-mingw32-gcc >/dev/null; then
  x86_64-w64-mingw32-gcc -shared -o "$tmp/thread.dll" "$tmp/thread.c" -lpthread
  rejects "$(folder "$tmp/thread.dll" async_native-windows-x64.dll)" "imports libwinpthread-1.dll" "a DLL needing mingw's runtime"
fi
echo "release check: all rejected"
