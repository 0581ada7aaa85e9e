//! The admin bearer token: `<data-dir>/admin.token`, mode 0600, created at first start.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot create the admin token {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("cannot read the admin token {path}: {source} (pass the daemon's --data-dir or --config)")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("admin token {path} has mode {mode:o}; it must not be readable by others (run: chmod 600 {path})")]
    Permissions { path: PathBuf, mode: u32 },
    #[error("admin token {path} is empty")]
    Empty { path: PathBuf },
}

pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin.token")
}

/// Reads the token, creating it (0600, 256 random bits) if it does not exist.
pub fn ensure(data_dir: &Path) -> Result<String, TokenError> {
    let p = path(data_dir);
    if !p.exists() {
        let token = format!("{}{}", uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&p)
            .map_err(|source| TokenError::Create { path: p.clone(), source })?;
        f.write_all(token.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|source| TokenError::Create { path: p.clone(), source })?;
        return Ok(token);
    }
    read(data_dir)
}

/// Reads an existing token, refusing one that others can read.
pub fn read(data_dir: &Path) -> Result<String, TokenError> {
    let p = path(data_dir);
    let meta = std::fs::metadata(&p).map_err(|source| TokenError::Read { path: p.clone(), source })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::Permissions { path: p, mode });
    }
    let t = std::fs::read_to_string(&p).map_err(|source| TokenError::Read { path: p.clone(), source })?;
    let t = t.trim().to_string();
    if t.is_empty() {
        return Err(TokenError::Empty { path: p });
    }
    Ok(t)
}

/// Compares without an early exit, so response time does not leak how much matched.
pub fn equal(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_private_and_refused_when_readable_by_others() {
        let dir = tempfile::tempdir().unwrap();
        let t = ensure(dir.path()).unwrap();
        assert_eq!(t.len(), 64);
        assert_eq!(ensure(dir.path()).unwrap(), t, "the token survives restarts");
        assert_eq!(std::fs::metadata(path(dir.path())).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::set_permissions(path(dir.path()), std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.contains("chmod 600"), "{e}");
        assert!(equal(b"abc", b"abc") && !equal(b"abc", b"abd") && !equal(b"abc", b"ab"));
    }
}
