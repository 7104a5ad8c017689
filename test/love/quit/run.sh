#!/usr/bin/env bash
# SPDX-License-Identifier: MIT (see LICENSE)
# run.sh LUA_BUILD_DIR: a game whose jobs never end quits, on both backends,
# each way a game quits: async.shutdown() in love.quit where the jobs check
# async.cancelled(), async.shutdown{timeout = 0.5} whether they check or
# not, no shutdown at all, and SIGTERM (what closing the window also
# becomes: SDL's quit event). Each run has a kill timer: a hang is killed
# and fails; the time bound is loose (a hang, not a speed, is the failure).
# Prints "quit: all cases passed" at the end; exits non-zero on a failure.
set -uo pipefail
lua=$(cd "$1" && pwd)
game=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export XDG_DATA_HOME=$tmp/data XDG_RUNTIME_DIR=$tmp/xdg
mkdir -p "$XDG_RUNTIME_DIR"
KILL_AFTER=${QUIT_KILL_AFTER:-60} # seconds: past this the run counts as a hang
BOUND=20      # seconds a quit may take, loosely (the grace is 0.5 s)
failed=0
fail() { echo "FAILED: $*"; failed=$((failed + 1)); }

# play BACKEND JOB HOW: runs the game, keeps its output in $out, its exit
# status in $rc and its seconds in $secs.
play() {
  local start=$SECONDS
  if [ "$3" = term ]; then
    ASYNC_BACKEND=$1 timeout -s KILL $KILL_AFTER love "$game" "$lua" "$2" term >"$tmp/out" 2>&1 &
    local pid=$!
    for _ in $(seq 300); do grep -q "^waiting for SIGTERM" "$tmp/out" && break; sleep 0.1; done
    start=$SECONDS
    pkill -TERM -P "$pid" # the game, a child of timeout
    wait "$pid"; rc=$?
  else
    ASYNC_BACKEND=$1 timeout -s KILL $KILL_AFTER love "$game" "$lua" "$2" "$3" >"$tmp/out" 2>&1; rc=$?
  fi
  secs=$((SECONDS - start))
  out=$(cat "$tmp/out")
  echo "--- $1 $2 $3: exit $rc after ${secs} s"
  grep -v "^backend: \|^running: " <<<"$out"
}

expect() { grep -q "$1" <<<"$out" || fail "$case: no line '$1'"; }

for backend in native thread; do
  for c in "check shutdown" "check timeout" "check none" "check term" \
           "spin timeout" "spin none" "spin term" "interp timeout" "interp none"; do
    set -- $c
    case="$backend $c"
    play "$backend" "$1" "$2"
    [ "$rc" = 0 ] || { fail "$case: exit status $rc (137: killed after $KILL_AFTER s, a hang)"; continue; }
    [ "$secs" -le $BOUND ] || fail "$case: quitting took $secs s"
    expect "^backend: $backend$"
    expect "^running: 2$"
    case "$2" in shutdown | timeout)
      expect "^loaded after shutdown: false$"
      expect "^queued calls: 0 ran, 20 cancelled$"
      case "$1" in
        check) expect "^running jobs: 2 ok, 0 failed, 0 cancelled$" ;;
        # the JIT compiled the loop: no hook runs there, the jobs are left
        spin) expect "^running jobs: 0 ok, 0 failed, 0 cancelled$" ;;
        # interpreted: the hook stopped both jobs at the deadline
        interp) expect "^running jobs: 0 ok, 2 failed, 0 cancelled$"
                expect "^error heard: stopped: async.shutdown's deadline passed" ;;
      esac
    esac
  done
done
if [ $failed -ne 0 ]; then echo "quit: $failed failed"; exit 1; fi
echo "quit: all cases passed"
