#!/usr/bin/env bash
# check.sh ROOT: every source file of the project names its licence on one of
# its first three lines (SPDX-License-Identifier: MIT), LICENSE is the MIT
# text, and the rockspec declares it. Fails naming each file that does not.
set -uo pipefail
root=$1
cd "$root" || exit 1
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files)
else
  files=$(find . -type f -not -path './build*' -not -path './.git/*' | sed 's|^\./||')
fi
missing=0 checked=0
while IFS= read -r f; do
  case $f in
    test/fuzz/corpus/*) continue ;;
    *.c|*.h|*.cpp|*.lua|*.sh|*.py|*.cmake|*CMakeLists.txt|.ci/run) ;;
    *) continue ;;
  esac
  checked=$((checked + 1))
  if ! head -n 3 "$f" | grep -q 'SPDX-License-Identifier: MIT'; then
    echo "no licence line: $f"
    missing=$((missing + 1))
  fi
done <<< "$files"
grep -q '^MIT License' LICENSE || { echo "LICENSE is not the MIT licence"; missing=$((missing + 1)); }
grep -q 'license *= *"MIT"' async-scm-1.rockspec || { echo "the rockspec declares no MIT licence"; missing=$((missing + 1)); }
echo "licence: $checked source files checked, $missing problem(s)"
[ "$missing" -eq 0 ]
