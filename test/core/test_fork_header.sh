#!/bin/sh
# SPDX-License-Identifier: MIT (see LICENSE)
# test_fork_header.sh: the public headers with the typed tasks of async/fork.h
# through the compilers engines use: C11 with -Wpedantic and C++11 (the
# build's own C and C++ compilers), and clang's MSVC front end (MSVC itself
# is not here), warnings as errors. Usage: INCLUDE_DIR CC CXX [CLANG]
set -eu
inc=$1 cc=$2 cxx=$3 clang=${4:-}
src=$(dirname "$0")/test_fork_header.c
flags="-Wall -Wextra -Werror -I$inc -fsyntax-only"
run() { echo "+ $*"; "$@"; }
# GCC-only syntax and reserved names in the headers are the headers_msvc_clang
# and headers_reserved_names tests' (test/headers/check.sh): this one compiles
# every arity of the typed tasks.
run "$cc" -std=c11 -Wpedantic $flags "$src"
run "$cc" -std=c11 -Wpedantic -DNDEBUG $flags "$src"
run "$cxx" -x c++ -std=c++11 -Wpedantic $flags "$src"
# The macros expand in the user's code: C++ engines' usual strict warnings.
run "$cxx" -x c++ -std=c++17 -Wpedantic -Wold-style-cast -Wzero-as-null-pointer-constant $flags "$src"
if [ -n "$clang" ]; then
  run "$clang" --target=x86_64-pc-windows-msvc -fms-compatibility -std=c11 -Wpedantic $flags "$src"
  run "$clang" --target=x86_64-pc-windows-msvc -fms-compatibility -x c++ -std=c++14 $flags "$src"
fi
echo "fork.h: all compilers passed"
