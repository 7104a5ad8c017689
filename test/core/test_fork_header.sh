#!/bin/sh
# test_fork_header.sh: the public headers with the typed tasks of async/fork.h
# through the compilers engines use: C11 with -Wpedantic and C++11 (the
# build's own C and C++ compilers), and clang's MSVC front end (MSVC itself
# is not here), warnings as errors. Usage: INCLUDE_DIR CC CXX [CLANG]
set -eu
inc=$1 cc=$2 cxx=$3 clang=${4:-}
src=$(dirname "$0")/test_fork_header.c
flags="-Wall -Wextra -Werror -I$inc -fsyntax-only"
run() { echo "+ $*"; "$@"; }
# clang's MSVC mode still takes GCC's extensions, so they are also looked
# for directly: only the portability macros (#define ASYNC_..._) may use
# them; and no async__ names (reserved in C++).
bad=$(grep -n '__attribute__\|__builtin_\|__atomic_\|async__' "$inc"/async/*.h | grep -v ':#define ASYNC_[A-Z0-9_]*_\>' || true)
if [ -n "$bad" ]; then
  echo "GCC-only syntax or reserved names outside the portability block:"; echo "$bad"; exit 1
fi
run "$cc" -std=c11 -Wpedantic $flags "$src"
run "$cc" -std=c11 -Wpedantic -DNDEBUG $flags "$src"
run "$cxx" -x c++ -std=c++11 -Wpedantic $flags "$src"
if [ -n "$clang" ]; then
  run "$clang" --target=x86_64-pc-windows-msvc -fms-compatibility -std=c11 -Wpedantic $flags "$src"
  run "$clang" --target=x86_64-pc-windows-msvc -fms-compatibility -x c++ -std=c++14 $flags "$src"
fi
echo "fork.h: all compilers passed"
