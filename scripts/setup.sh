#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# setup.sh: install the Debian 12 packages the demo, build, tests and
# benchmarks need, where missing. As root it installs them; otherwise it
# names them.
#   setup.sh demo   only what scripts/demo.sh needs (build the module, run LÖVE)
#   setup.sh test   everything else too: tests, sanitizers, fuzzer, benchmarks,
#                   cross builds (the same as no argument)
set -euo pipefail

set_name=${1:-test}
case "$set_name" in
  demo|test) ;;
  *) echo "usage: setup.sh [demo|test]" >&2; exit 2 ;;
esac

# The demo set: build the core and the Lua module, run the LÖVE demo.
PKGS=(
  build-essential cmake pkg-config        # toolchain
  libluajit-5.1-dev luajit                # the Lua layer (headers; the interpreter for tests)
  libck-dev libhwloc-dev                  # the core: ck_pr/ck_epoch atomics, hwloc placement
  love                                    # LÖVE 11.4, which runs the demo
)
if [ "$set_name" = test ]; then
  PKGS+=(
    libcriterion-dev                        # C tests
    libbenchmark-dev libtbb-dev             # benchmarks; oneTBB is a measured peer
    xvfb xauth                              # a display for the windowed demo's screenshot and LÖVE runs without one
    luarocks                                # the rockspec is tested with `luarocks make`
    lua-luv python3 gnuplot-nox             # benchmarks: luv is a measured peer; the report and its chart; python3 also zips .love files and the release
    clang libclang-rt-14-dev                # the codec fuzzer (libFuzzer); the header checks (clang, clang++, clang as MSVC)
    systemtap-sdt-dev linux-perf            # sys/sdt.h: the static probes perf sees (core/src/probes.h; without it they compile to nothing); perf to read them
  )
  # Cross builds (scripts/cross-aarch64.sh, scripts/cross-windows.sh):
  # aarch64 under qemu-user, Windows x64 with mingw-w64 under Wine. Only the
  # arm64 packages apt can install beside the amd64 ones are listed (libck0 and
  # libcriterion3:arm64 cannot: they would replace the amd64 ones; the aarch64
  # script unpacks libck into build/ instead). dpkg-dev: apt-get source.
  if [ "${ASYNC_SETUP_CROSS:-1}" = 1 ]; then
    PKGS+=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user libc6:arm64 libhwloc-dev:arm64
           gcc-mingw-w64-x86-64 g++-mingw-w64-x86-64 wine wine64 dpkg-dev file)
  fi
  if [ "${ASYNC_SETUP_SANITIZERS:-1}" = 1 ]; then
    # ASan/UBSan/TSan runtimes for gcc-12 (normally pulled in by build-essential)
    PKGS+=(libasan8 libubsan1 libtsan2)
  fi
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup: missing Debian packages: ${missing[*]}" >&2
  echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if [ "$set_name" = test ] && [ "${ASYNC_SETUP_CROSS:-1}" = 1 ]; then
  # arm64 packages need the architecture; the Windows build needs Debian's
  # source packages (ck, hwloc, luajit): a deb-src twin of the deb sources.
  dpkg --print-foreign-architectures | grep -qx arm64 || dpkg --add-architecture arm64
  src=/etc/apt/sources.list.d/debian.sources
  if [ -f "$src" ] && ! grep -rqs "^Types:.*deb-src" /etc/apt/sources.list.d/; then
    sed -e 's/^Types: deb$/Types: deb-src/' "$src" > /etc/apt/sources.list.d/async-deb-src.sources
  fi
fi
apt-get update -qq
# --no-remove: an install that would replace a package (an arm64 library
# without Multi-Arch taking the amd64 one's place, say) fails instead.
apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" >/dev/null
