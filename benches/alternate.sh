#!/usr/bin/env bash
# Before/after on a noisy machine: runs two `warden` binaries in turns on the same
# generated files (`cargo bench --bench replay` writes them to target/tmp/bench) and
# prints wall time (from `--stats`), CPU time (`/usr/bin/time`), peak RSS and incidents.
#   OLD=/tmp/warden-old NEW=target/release/warden N=3 KINDS="auth web zeek" PIN="taskset -c 0" benches/alternate.sh
# Build the baseline in a worktree with a target directory of its own
# (`git worktree add /tmp/old REV && cd /tmp/old && CARGO_TARGET_DIR=/tmp/old-target
# cargo build --release`): a shared target directory shares the build script, and a
# build.rs from before 2c220f9 then embeds the worktree's `actors/` into this
# checkout's binary — or none once the worktree is gone.
set -euo pipefail
cd "$(dirname "$0")/../target/tmp/bench"
OLD=${OLD:?path of the baseline binary} NEW=${NEW:?path of the new binary}
for k in ${KINDS:-auth}; do
  for _ in $(seq "${N:-3}"); do
    for b in old new; do
      bin=$OLD; [ "$b" = new ] && bin=$NEW
      out=$( { /usr/bin/time -f "cpu %U %S" ${PIN:-} "$bin" replay --stats "$k-1000000.log" 2>&1 1>&3 3>&-; } 3>&1 )
      wall=$(echo "$out" | grep -oP 'replayed \d+ lines in \K[0-9.]+')
      cpu=$(echo "$out" | grep -oP 'cpu \K[0-9.]+ [0-9.]+' | awk '{print $1+$2}')
      rss=$(echo "$out" | grep -oP 'peak RSS: \K[0-9.]+')
      inc=$(echo "$out" | grep -oP '\d+ incidents' | head -1)
      echo "$k $b wall=$wall cpu=$cpu rss=$rss $inc"
    done
  done
done
