#!/usr/bin/env python3
# Where a function's time goes, from `perf script` of a call-graph profile: the share of
# all samples under FUNC, split by FUNC's direct callee (inclusive; `<self>` is FUNC's
# own). Build with frame pointers, record, then fold:
#   RUSTFLAGS="-C force-frame-pointers=yes" CARGO_TARGET_DIR=/work/fp-target cargo build --release --bin warden
#   perf record -F 1999 -g -o /tmp/perf.data taskset -c 0 /work/fp-target/release/warden replay --stats FILE
#   perf script -i /tmp/perf.data | benches/callers.py 'NetworkAnalyzer::flow'
import sys, collections, re
func=sys.argv[1]
c=collections.Counter(); tot=0; inside=0
stack=[]
def flush():
    global tot, inside
    if not stack: return
    tot+=1
    fr=stack  # leaf first
    for i,f in enumerate(fr):
        if func in f:
            inside+=1
            child = fr[i-1] if i>0 else '<self>'
            c[child[:120]]+=1
            break
for line in sys.stdin:
    if line and not line[0].isspace():
        flush(); stack=[]; continue
    m=re.match(r'\s+[0-9a-f]+ (.*?)\+0x[0-9a-f]+ \(', line) or re.match(r'\s+[0-9a-f]+ (.*?) \(', line)
    if m: stack.append(m.group(1))
flush()
print(f"total {tot}, in {func}: {100*inside/tot:.1f}%")
for k,v in c.most_common(30): print(f"{100*v/tot:5.1f}% {k}")
