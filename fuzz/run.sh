#!/usr/bin/env bash
# Coverage-guided fuzzing of Warden's parsers and decoders with AFL++ on stable Rust.
#   fuzz/run.sh TARGET|all [SECONDS]     (default 600 s of CPU per target)
# Needs cargo-afl once: `cargo install cargo-afl --locked && cargo afl config --build`.
# Findings are copied to fuzz/regressions/TARGET/ (replayed by tests/it/fuzz_corpus.rs);
# the figures of each run are printed from AFL++'s fuzzer_stats.
set -euo pipefail
cd "$(dirname "$0")"
which=${1:?usage: fuzz/run.sh TARGET|all [SECONDS]}
secs=${2:-600}
cargo afl build --release --locked 2>&1 | tail -1
bin=target/release/warden-fuzz
targets=$(sed -n '/^pub const TARGETS/,/^];/p' src/targets.rs | grep -o '"[a-z_]*"' | tr -d '"')
[ "$which" = all ] || targets=$which
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_QUIET=1
for t in $targets; do
  out=out/$t
  rm -rf "$out"
  mkdir -p "$out" "regressions/$t"
  # Each target runs until it has used SECONDS of CPU — afl-fuzz and every target
  # process it forked, as a cpuacct cgroup counts them — so a run that shares its core
  # with other work runs longer instead of shorter. Without a writable cpuacct
  # hierarchy, SECONDS of wall time (and the CPU column says "?").
  cg=/sys/fs/cgroup/cpuacct/warden-fuzz-$t
  if mkdir -p "$cg" 2>/dev/null && [ -w "$cg/cgroup.procs" ]; then
    (echo "$BASHPID" > "$cg/cgroup.procs"
     exec env WARDEN_FUZZ_TARGET="$t" cargo afl fuzz -i "seeds/$t" -o "$out" -- "$bin") > "$out/afl.log" 2>&1 &
    runner=$!
    started=$SECONDS
    base=$(cat "$cg/cpuacct.usage")  # what an earlier run left in a cgroup not removed
    while kill -0 "$runner" 2>/dev/null; do
      sleep 5
      cpu=$(( ($(cat "$cg/cpuacct.usage") - base) / 1000000000 ))
      if [ "$cpu" -ge "$secs" ] || [ $((SECONDS - started)) -ge $((secs * 4)) ]; then
        pkill -INT -f "afl-fuzz .*-o $out " || true
        wait "$runner" || true
      fi
    done
    cpu=$(( ($(cat "$cg/cpuacct.usage") - base) / 1000000000 ))
    rmdir "$cg" 2>/dev/null || true
  else
    WARDEN_FUZZ_TARGET=$t cargo afl fuzz -V "$secs" -i "seeds/$t" -o "$out" -- "$bin" > "$out/afl.log" 2>&1 || true
    cpu="?"
  fi
  stats=$out/default/fuzzer_stats
  if [ ! -f "$stats" ]; then echo "$t: afl-fuzz did not start (see fuzz/$out/afl.log)"; continue; fi
  get() { sed -n "s/^$1 *: *//p" "$stats"; }
  printf '%-12s %6s s wall %6s s CPU  %10s execs  %6s/s  corpus %5s  coverage %7s  crashes %s  hangs %s\n' \
    "$t" "$(get run_time)" "$cpu" "$(get execs_done)" "$(get execs_per_sec)" "$(get corpus_count)" \
    "$(get bitmap_cvg)" "$(get saved_crashes)" "$(get saved_hangs)"
  for f in "$out"/default/crashes/id:* "$out"/default/hangs/id:*; do
    [ -f "$f" ] && cp "$f" "regressions/$t/$(basename "$(dirname "$f")")-$(sha256sum "$f" | cut -c1-16)"
  done
done
