#!/bin/sh
# SPDX-License-Identifier: MIT (see LICENSE)
# check_probes.sh LIB [PROBE...]: the library LIB (static or shared) holds
# the static probes perf lists as sdt_async:<PROBE>, a stapsdt note each
# (readelf -n). Without PROBEs: the core's five.
set -eu
lib=$1
shift
probes=${*:-job_start job_end steal sleep wake}
notes=$(readelf -n "$lib")
status=0
for probe in $probes; do
  # readelf prints each note's Provider line just above its Name line.
  if printf '%s\n' "$notes" | grep -B1 "Name: $probe\$" | grep -q 'Provider: async'; then
    echo "probe: async:$probe"
  else
    echo "missing probe: async:$probe"; status=1
  fi
done
[ $status -eq 0 ] && echo "probes: all present"
exit $status
