# SPDX-License-Identifier: MIT (see LICENSE)
# toolchain-x86_64-w64-mingw32.cmake: cross-build for Windows x64 with Debian's
# mingw-w64, running the tests under Wine (scripts/cross-windows.sh).
# ASYNC_WINDOWS_PREFIX holds the target's concurrencykit, hwloc and LuaJIT,
# built by that script from Debian's source packages.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR AMD64)
set(CMAKE_C_COMPILER x86_64-w64-mingw32-gcc)
set(CMAKE_CXX_COMPILER x86_64-w64-mingw32-g++)
set(CMAKE_RC_COMPILER x86_64-w64-mingw32-windres)

set(ASYNC_WINDOWS_PREFIX "${CMAKE_CURRENT_LIST_DIR}/../build/cross-windows/prefix" CACHE PATH
  "The target's ck, hwloc and LuaJIT (scripts/cross-windows.sh)")
get_filename_component(ASYNC_WINDOWS_PREFIX "${ASYNC_WINDOWS_PREFIX}" ABSOLUTE)
set(CMAKE_FIND_ROOT_PATH "${ASYNC_WINDOWS_PREFIX}" /usr/x86_64-w64-mingw32)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)
# No host .pc files: the find modules search the roots above by hand.
set(ENV{PKG_CONFIG_LIBDIR} "${ASYNC_WINDOWS_PREFIX}/no-pkgconfig")
# A module links LuaJIT's lua51.dll itself (a DLL resolves every symbol at
# link time), and the tests run Windows LuaJIT.
set(LuaJIT_LIBRARY "${ASYNC_WINDOWS_PREFIX}/bin/lua51.dll" CACHE FILEPATH "")
set(LUAJIT_EXECUTABLE "${ASYNC_WINDOWS_PREFIX}/bin/luajit.exe" CACHE FILEPATH "")

# Windows 8 (WaitOnAddress). Link libgcc and winpthreads statically, so the
# module and the test programs need no mingw DLL beside them.
add_compile_definitions(_WIN32_WINNT=0x0602)
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static")
set(CMAKE_MODULE_LINKER_FLAGS_INIT "-static")

# ctest runs every test program through Wine, in a 64-bit prefix of its own
# under build/ (created on first use). WINEDEBUG=-all keeps Wine's own
# diagnostics out of the tests' output.
get_filename_component(_wineprefix "${ASYNC_WINDOWS_PREFIX}/../wineprefix" ABSOLUTE)
set(CMAKE_CROSSCOMPILING_EMULATOR env WINEDEBUG=-all WINEARCH=win64 WINEPREFIX=${_wineprefix} wine)
