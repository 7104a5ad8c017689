# SPDX-License-Identifier: MIT (see LICENSE)
# toolchain-aarch64-linux-gnu.cmake: cross-build for aarch64 Linux with Debian's
# gcc-aarch64-linux-gnu, running the tests under qemu-user (scripts/cross-aarch64.sh).
#
# Libraries come from two places: the arm64 packages apt can install beside the
# amd64 ones (libc6, libhwloc-dev: Multi-Arch: same, in /usr/lib/aarch64-linux-gnu)
# and ASYNC_AARCH64_SYSROOT, where the script unpacks libck0/libck-dev, which
# apt cannot (libck0 has no Multi-Arch field, so the arm64 one replaces the
# amd64 one). The sysroot is searched first: its ck_md.h says CK_MD_RMO (weak
# memory), the amd64 one CK_MD_TSO. libcriterion-dev:arm64 cannot be
# co-installed either (its libnanomsg5 has a different binNMU version on arm64),
# so the suites run on the in-process stand-in (test/tsan-shim, see
# test/CMakeLists.txt).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

set(ASYNC_AARCH64_SYSROOT "${CMAKE_CURRENT_LIST_DIR}/../build/aarch64-sysroot" CACHE PATH
  "Unpacked arm64 packages that cannot be co-installed (scripts/cross-aarch64.sh)")
get_filename_component(ASYNC_AARCH64_SYSROOT "${ASYNC_AARCH64_SYSROOT}" ABSOLUTE)
set(CMAKE_FIND_ROOT_PATH "${ASYNC_AARCH64_SYSROOT}" /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# pkg-config would hand back the amd64 flags: give it no .pc files, so the
# find modules search the roots above by hand.
set(ENV{PKG_CONFIG_LIBDIR} "${ASYNC_AARCH64_SYSROOT}/no-pkgconfig")

# ctest runs every test executable through qemu. No -L: the guest's loader and
# libc are both libc6:arm64's (multiarch, in /lib/aarch64-linux-gnu). With
# -L /usr/aarch64-linux-gnu the loader came from the cross package (2.36-8)
# and libc.so.6 from libc6:arm64 (2.36-9): a threaded program then hung at
# pthread_create or exit. The sysroot's libraries come through LD_LIBRARY_PATH.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64
  -E "LD_LIBRARY_PATH=${ASYNC_AARCH64_SYSROOT}/usr/lib/aarch64-linux-gnu")
