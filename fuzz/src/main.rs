//! The AFL++ harness: `WARDEN_FUZZ_TARGET=NAME cargo afl fuzz -i seeds/NAME -o out/NAME
//! target/release/warden-fuzz` (see `fuzz/run.sh`). Every target is in `targets.rs`.

mod targets;

fn main() {
    let target = std::env::var("WARDEN_FUZZ_TARGET").unwrap_or_default();
    if !targets::TARGETS.contains(&target.as_str()) {
        eprintln!("WARDEN_FUZZ_TARGET must be one of: {}", targets::TARGETS.join(", "));
        std::process::exit(2);
    }
    afl::fuzz!(|data: &[u8]| {
        targets::run(&target, data);
    });
}
