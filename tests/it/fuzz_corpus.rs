//! Every fuzz target over its committed seeds and every input a fuzzing run found to
//! crash or hang (`fuzz/regressions/TARGET/`): each must now run to its end. The same
//! target code the AFL++ harness runs (`fuzz/src/targets.rs`).

#[path = "../../fuzz/src/targets.rs"]
mod targets;

use std::path::Path;

#[test]
fn every_seed_and_every_crash_found_runs_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for target in targets::TARGETS {
        let mut inputs = 0;
        for kind in ["seeds", "regressions"] {
            let Ok(dir) = std::fs::read_dir(root.join(kind).join(target)) else { continue };
            for f in dir.flatten() {
                let data = std::fs::read(f.path()).unwrap();
                assert!(targets::run(target, &data), "{target}");
                inputs += 1;
            }
        }
        assert!(inputs > 0, "no seed for fuzz target {target}");
        ran += inputs;
    }
    assert!(!targets::run("no-such-target", b""));
    assert!(ran >= targets::TARGETS.len());
}
