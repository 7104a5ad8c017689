#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# check.sh RELEASE_FOLDER: checks every native binary of a release folder
# (scripts/release.sh runs it on what it built; the release_binaries test runs
# that) and prints one line per check:
#   - async_native.manifest lists each binary with its size and SHA-1;
#   - a Linux module is an ELF of its architecture, exports
#     luaopen_async_native, needs no library beyond glibc's own (libc, libm,
#     libpthread, libdl, the loader), imports no dlopen (so it cannot open
#     libck or libhwloc by name either) and no glibc symbol version above 2.28;
#   - linux-x64 (on an x86-64 host, as root): loads and runs a call in a chroot
#     that holds luajit, the libraries `ldd luajit` names, glibc's own and the
#     release folder, and nothing else (no libck, no libhwloc anywhere), with
#     the host's /proc and /sys bound in a private mount namespace so that
#     hwloc reads the real topology;
#   - linux-arm64 (when qemu-aarch64 and the arm64 luajit of
#     scripts/cross-linux.sh are there): loads and runs a call under qemu;
#   - windows-x64: a PE32+ x86-64 DLL exporting luaopen_async_native that
#     imports only Windows' own DLLs and lua51.dll; when Wine and the Windows
#     LuaJIT of scripts/cross-windows.sh are there, it runs a call under Wine.
# Exits non-zero on the first failure.
set -euo pipefail
dir=$(cd "${1:?usage: check.sh RELEASE_FOLDER}" && pwd)
root=$(cd "$(dirname "$0")/../.." && pwd)
fail() { echo "FAILED: $*" >&2; exit 1; }
max_glibc=2.28

# ---- the manifest
manifest=$dir/async_native.manifest
[ -f "$manifest" ] || fail "no async_native.manifest in $dir"
shopt -s nullglob
bins=("$dir"/async_native-*.so "$dir"/async_native-*.dll)
[ ${#bins[@]} -gt 0 ] || fail "no native binary in $dir"
[ "$(wc -l <"$manifest")" -eq ${#bins[@]} ] || fail "the manifest lists $(wc -l <"$manifest") binaries, the folder has ${#bins[@]}"
for f in "${bins[@]}"; do
  name=$(basename "$f")
  want="$name $(stat -c %s "$f") $(sha1sum "$f" | cut -d' ' -f1)"
  grep -qxF "$want" "$manifest" || fail "the manifest has no line '$want'"
done
echo "manifest: ${#bins[@]} binaries, sizes and SHA-1 match"

# A call through the release folder's own loader.
call_lua=$root/test/release/call.lua

linux_static() { # file arch-name-in-file(1)
  local f=$1 name pattern=$2 needed bad newest
  name=$(basename "$f")
  file -L "$f" | grep "ELF 64-bit.*$pattern" >/dev/null || fail "$name is not a 64-bit $pattern ELF: $(file -L "$f")"
  objdump -T "$f" | grep " luaopen_async_native$" >/dev/null || fail "$name does not export luaopen_async_native"
  needed=$(objdump -p "$f" | awk '$1 == "NEEDED" {print $2}' | sort | tr '\n' ' ')
  bad=$(tr ' ' '\n' <<<"$needed" | grep -vE '^(libc\.so\.6|libm\.so\.6|libpthread\.so\.0|libdl\.so\.2|ld-linux-(x86-64|aarch64)\.so\.[12])?$' || true)
  [ -z "$bad" ] || fail "$name needs $(tr '\n' ' ' <<<"$bad")(NEEDED: $needed)"
  if objdump -T "$f" | grep -E '\*UND\*.* (dlopen|dlmopen)$' >/dev/null; then fail "$name imports dlopen"; fi
  newest=$(objdump -T "$f" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ "$(printf '%s\n%s\n' "$newest" "$max_glibc" | sort -V | tail -1)" != "$max_glibc" ]; then
    fail "$name needs GLIBC_$newest: $(objdump -T "$f" | grep -E "GLIBC_$newest" | awk '{print $NF}' | sort -u | tr '\n' ' ')"
  fi
  echo "$name: NEEDED $needed; newest glibc symbol version $newest (<= $max_glibc); no dlopen"
}

# Copies a file into the chroot $1 at its own path (links resolved).
put() { mkdir -p "$1$(dirname "$2")" && cp -L "$2" "$1$2"; }

linux_x64_chroot() {
  local f=$1 r out lib luajit
  if [ "$(uname -m)" != x86_64 ] || [ "$(id -u)" -ne 0 ] || ! command -v unshare >/dev/null; then
    echo "$(basename "$f"): load in a chroot skipped (needs root, unshare and an x86-64 host)"; return
  fi
  r=$(mktemp -d)
  trap 'rm -rf "$r"; trap - RETURN' RETURN
  luajit=$(readlink -f "$(command -v luajit)")
  put "$r" "$luajit"
  # luajit's own libraries, then glibc's (the module may need any of them).
  for lib in $(ldd "$luajit" | grep -o '/[^ ]*') /lib/x86_64-linux-gnu/libpthread.so.0 \
             /lib/x86_64-linux-gnu/libdl.so.2 /lib/x86_64-linux-gnu/libm.so.6; do
    put "$r" "$lib"
  done
  if find "$r" -name 'libck*' -o -name 'libhwloc*' -o -name 'libudev*' | grep . >/dev/null; then
    fail "the chroot holds libck, libhwloc or libudev"
  fi
  mkdir -p "$r/game" "$r/proc" "$r/sys" "$r/tmp"
  cp "$dir"/*.lua "$f" "$call_lua" "$r/game/"
  out=$(unshare -m sh -c 'mount --rbind /proc "$1/proc" && mount --rbind /sys "$1/sys" &&
      exec unshare --root="$1" --wd=/game "$2" call.lua' \
      sh "$r" "$luajit" 2>&1) || true
  [ "$out" = "native 144" ] || fail "$(basename "$f") in a chroot without libck and libhwloc: $out"
  echo "$(basename "$f"): loads and runs a call in a chroot without libck, libhwloc or libudev ($out)"
}

linux_arm64_qemu() {
  local f=$1 lj out
  lj=$root/build/cross-linux/arm64/luajit
  if ! command -v qemu-aarch64 >/dev/null || [ ! -x "$lj/usr/bin/luajit" ]; then
    echo "$(basename "$f"): run under qemu skipped (needs qemu-aarch64 and the arm64 luajit of scripts/cross-linux.sh arm64)"; return
  fi
  local g
  g=$(mktemp -d)
  trap 'rm -rf "$g"; trap - RETURN' RETURN
  cp "$dir"/*.lua "$f" "$g/"
  out=$(cd "$g" && qemu-aarch64 -E LD_LIBRARY_PATH="$lj/usr/lib/aarch64-linux-gnu" "$lj/usr/bin/luajit" "$call_lua" 2>&1) || true
  [ "$out" = "native 144" ] || fail "$(basename "$f") under qemu-aarch64: $out"
  echo "$(basename "$f"): loads and runs a call under qemu-aarch64 ($out)"
}

windows_dll() {
  local f=$1 name imports bad
  name=$(basename "$f")
  file -L "$f" | grep "PE32+ executable (DLL).*x86-64" >/dev/null || fail "$name is not an x86-64 DLL: $(file -L "$f")"
  objdump -p "$f" | grep -E '\] luaopen_async_native$' >/dev/null || fail "$name does not export luaopen_async_native"
  imports=$(objdump -p "$f" | awk '/DLL Name:/ {print $3}' | sort -u | tr '\n' ' ')
  # Windows' own DLLs (the API sets included) and the game's lua51.dll: no
  # mingw runtime (libwinpthread, libgcc_s), no ck or hwloc DLL.
  bad=$(tr ' ' '\n' <<<"$imports" | grep -viE '^(kernel32|msvcrt|ucrtbase|advapi32|user32|ws2_32|ntdll|bcrypt|api-ms-win-[a-z0-9-]+|lua51)\.dll$|^$' || true)
  [ -z "$bad" ] || fail "$name imports $(tr '\n' ' ' <<<"$bad")(all: $imports)"
  echo "$name: imports $imports"
  windows_wine "$f"
}

# Under Wine, in a folder holding Windows LuaJIT (scripts/cross-windows.sh),
# the DLL and the Lua files only: no mingw runtime DLL beside it.
windows_wine() {
  local f=$1 lj=$root/build/cross-windows/prefix/bin g out
  if ! command -v wine >/dev/null || [ ! -f "$lj/luajit.exe" ]; then
    echo "$(basename "$f"): run under Wine skipped (needs wine and the luajit.exe of scripts/cross-windows.sh)"; return
  fi
  g=$(mktemp -d)
  trap 'rm -rf "$g"; trap - RETURN' RETURN
  cp "$dir"/*.lua "$f" "$call_lua" "$lj/luajit.exe" "$lj/lua51.dll" "$g/"
  out=$(cd "$g" && WINEDEBUG=-all WINEARCH=win64 WINEPREFIX="$root/build/cross-windows/wineprefix" \
        timeout 300 wine luajit.exe call.lua 2>&1 | tr -d '\r' | tail -1) || true
  [ "$out" = "native 144" ] || fail "$(basename "$f") under Wine: $out"
  echo "$(basename "$f"): loads and runs a call under Wine beside luajit.exe and lua51.dll only ($out)"
}

for f in "${bins[@]}"; do
  case $(basename "$f") in
    async_native-linux-x64.so) linux_static "$f" x86-64; linux_x64_chroot "$f" ;;
    async_native-linux-arm64.so) linux_static "$f" aarch64; linux_arm64_qemu "$f" ;;
    async_native-windows-x64.dll) windows_dll "$f" ;;
    *) echo "$(basename "$f"): no check for this platform here" ;;
  esac
done
echo "release binaries: ok"
