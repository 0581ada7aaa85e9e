//! Embeds the shipped `actors/` folder so that `warden run` works from any directory.

use std::fmt::Write as _;
use std::path::Path;

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    // A folder's own change (a file added, removed or renamed in it) rebuilds too.
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Ok(rel) = p.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn main() {
    // The manifest directory of this build, read when the script runs: `env!` would be
    // the one the script was compiled in, and cargo reuses a compiled build script for
    // another checkout sharing the target directory (a worktree), which then embedded
    // that checkout's actors — or none once it was gone.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest).join("actors");
    let mut files = Vec::new();
    walk(&root, &root, &mut files);
    assert!(
        files.iter().any(|f| f.ends_with("/agent.toml")),
        "no agent definitions under {}: the binary would embed no agents",
        root.display()
    );
    let mut src = String::from(
        "/// Every file of the shipped `actors/` folder: (relative path, contents).\npub static FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        println!("cargo:rerun-if-changed=actors/{f}");
        let abs = root.join(f);
        let _ = writeln!(src, "    ({f:?}, include_str!({:?})),", abs.display().to_string());
    }
    src.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").unwrap()).join("embedded_actors.rs");
    std::fs::write(out, src).unwrap();
}
