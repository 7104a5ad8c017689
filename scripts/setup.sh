#!/usr/bin/env bash
# setup.sh: install the Debian 12 packages the build, tests, benchmarks and
# demo need, where missing. As root it installs them; otherwise it names them.
set -euo pipefail

PKGS=(
  build-essential cmake pkg-config        # toolchain
  libluajit-5.1-dev luajit                # the Lua layer (headers; the interpreter for tests)
  libck-dev libhwloc-dev                  # the core: ck_pr/ck_epoch atomics, hwloc placement
  libcriterion-dev                        # C tests
  libbenchmark-dev libtbb-dev             # benchmarks; oneTBB is a measured peer
  love xvfb xauth                         # LÖVE 11.4, and a display for headless runs
  luarocks                                # the rockspec is tested with `luarocks make`
  lua-luv python3 gnuplot-nox             # benchmarks: luv is a measured peer; the report and its chart; python3 also zips .love files and the release
  clang libclang-rt-14-dev                # the codec fuzzer (libFuzzer)
)
if [ "${ASYNC_SETUP_SANITIZERS:-1}" = 1 ]; then
  # ASan/UBSan/TSan runtimes for gcc-12 (normally pulled in by build-essential)
  PKGS+=(libasan8 libubsan1 libtsan2)
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
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
