//! The shipped `actors/` folder, built into the binary by `build.rs`.

include!(concat!(env!("OUT_DIR"), "/embedded_actors.rs"));
