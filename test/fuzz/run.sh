#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh [SECONDS]: build the codec fuzzer with clang (libFuzzer, ASan,
# UBSan) and run it for SECONDS (default 60) from the seed corpus. A longer
# run: bash test/fuzz/run.sh 3600. Prints libFuzzer's summary; exits non-zero
# on any crash, leak or failed check.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${FUZZ_BUILD:-$root/build/fuzz}
mkdir -p "$out" "$out/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$root/lua" $(pkg-config --cflags luajit) "$here/fuzz_codec.c" "$root/lua/codec.c" "$root/lua/codec_decode.c" "$root/lua/messages.c" \
  $(pkg-config --libs luajit) -o "$out/fuzz_codec"
cp -n "$here"/corpus/* "$out/corpus/" 2>/dev/null || true
"$out/fuzz_codec" -max_total_time="${1:-60}" -rss_limit_mb=2048 -print_final_stats=1 "$out/corpus" 2>&1 | tail -15
echo "fuzz: ${1:-60} s, no crash"
