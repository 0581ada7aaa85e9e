//! The data directory: created owner-only, and corrected to owner-only when found
//! open — it holds log lines, incidents, evidence and the admin token.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result, bail};

/// What [`prepare`] changed: paths whose mode lost its group and other bits.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Corrected {
    pub paths: Vec<String>,
}

/// Makes everything Warden creates from now on owner-only (umask 077), creates the data
/// directory (0700) if needed, refuses one owned by another user, and takes group and
/// other permissions off it and everything below it (symbolic links are not followed).
pub fn prepare(dir: &Path) -> Result<Corrected> {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    if !dir.exists() {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).with_context(|| {
            format!("cannot create the data directory {} (choose another with --data-dir)", dir.display())
        })?;
    }
    let meta = std::fs::symlink_metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
    if !meta.is_dir() {
        bail!("data directory {} is not a directory", dir.display());
    }
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        bail!(
            "data directory {} belongs to uid {}, not to this process (uid {me}): its owner could read and change \
             Warden's records; chown it to uid {me} or choose another with --data-dir",
            dir.display(),
            meta.uid()
        );
    }
    let mut corrected = Corrected::default();
    restrict(dir, &mut corrected, 0)?;
    for p in &corrected.paths {
        tracing::warn!(path = %p, "was readable or writable by other users: now owner-only");
    }
    let probe = dir.join(".warden-write-test");
    std::fs::write(&probe, b"ok").with_context(|| {
        format!("data directory {} is not writable (choose another with --data-dir)", dir.display())
    })?;
    let _ = std::fs::remove_file(probe);
    Ok(corrected)
}

/// Deeper than this, nothing Warden writes exists: stop (a hostile tree).
const MAX_DEPTH: usize = 16;

fn restrict(path: &Path, out: &mut Corrected, depth: usize) -> Result<()> {
    let meta = std::fs::symlink_metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700)).with_context(|| {
            format!("{} is readable by other users and its mode cannot be changed (chmod go-rwx it)", path.display())
        })?;
        out.paths.push(path.display().to_string());
    }
    if meta.is_dir() && depth < MAX_DEPTH {
        for e in std::fs::read_dir(path).with_context(|| format!("cannot list {}", path.display()))? {
            restrict(&e?.path(), out, depth + 1)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn an_open_data_directory_is_made_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(dir.join("db")).unwrap();
        std::fs::write(dir.join("db/conf"), b"x").unwrap();
        std::fs::write(dir.join("admin.token"), b"secret").unwrap();
        std::fs::write(tmp.path().join("outside"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), dir.join("link")).unwrap();
        for (p, m) in [
            (dir.clone(), 0o755),
            (dir.join("db"), 0o775),
            (dir.join("db/conf"), 0o644),
            (dir.join("admin.token"), 0o640),
        ] {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(m)).unwrap();
        }
        std::fs::set_permissions(tmp.path().join("outside"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = prepare(&dir).unwrap();
        assert_eq!(c.paths.len(), 4, "{c:?}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("db")), 0o700);
        assert_eq!(mode(&dir.join("db/conf")), 0o600);
        assert_eq!(mode(&dir.join("admin.token")), 0o600);
        assert_eq!(mode(&tmp.path().join("outside")), 0o644, "a link is not followed");
        assert_eq!(prepare(&dir).unwrap(), Corrected::default(), "nothing left to correct");
        // From now on, what the process creates is owner-only.
        std::fs::write(dir.join("new"), b"x").unwrap();
        assert_eq!(mode(&dir.join("new")), 0o600);
    }

    #[test]
    fn a_missing_data_directory_is_created_owner_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        prepare(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        std::fs::write(tmp.path().join("file"), b"x").unwrap();
        assert!(prepare(&tmp.path().join("file")).unwrap_err().to_string().contains("not a directory"));
    }

    /// Run as root (CI is): another user's directory is refused, not taken over.
    #[test]
    fn a_data_directory_of_another_user_is_refused() {
        if rustix::process::geteuid().as_raw() != 0 {
            eprintln!("SKIPPED: needs root to give a directory to another user");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("theirs");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
        let e = prepare(&dir).unwrap_err().to_string();
        assert!(e.contains("belongs to uid 65534") && e.contains("chown"), "{e}");
    }
}
