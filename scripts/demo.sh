#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# demo.sh: the main job. Installs what the demo needs where missing (the
# demo set of setup.sh: no test, benchmark or cross packages), builds the
# module without the tests, and starts the LÖVE demo. With a display it
# opens the game window; without one (a server, CI) it runs the demo
# headless and prints its summary. Extra arguments go to the
# demo (e.g. --workers 4, --units 600; --headless forces the summary).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh demo
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo -DASYNC_BUILD_BENCH=OFF -DASYNC_BUILD_TESTS=OFF >/dev/null
cmake --build build/release -j"$(nproc)" >/dev/null
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$(mktemp -d)}
lib="$PWD/build/release/lua"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && [[ " $* " != *" --headless "* ]]; then
  exec love demo "$lib" "$@"
fi
echo "demo: no display found: running headless (both modes, same workload, then a summary)."
echo "demo: for the window, run this on a desktop, or: xvfb-run -a love demo $lib"
exec love demo "$lib" --headless "$@"
