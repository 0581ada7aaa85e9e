//! Where definitions are read from: a folder on disk, or the copy of `actors/` built
//! into the binary — the agent files, their rules, playbooks, feeds and prompts.

use std::path::{Path, PathBuf};

use super::{LintError, embedded};

/// Where definitions are read from.
#[derive(Debug, Clone)]
pub enum ActorsDir {
    Disk(PathBuf),
    /// The `actors/` folder of the source tree, built into the binary.
    Embedded,
}

impl ActorsDir {
    /// `dir` if given, else `./actors` if it exists, else the embedded copy.
    pub fn resolve(dir: Option<&Path>) -> ActorsDir {
        match dir {
            Some(d) => ActorsDir::Disk(d.to_path_buf()),
            None if Path::new("actors").is_dir() => ActorsDir::Disk(PathBuf::from("actors")),
            None => ActorsDir::Embedded,
        }
    }

    pub(super) fn display(&self) -> String {
        match self {
            ActorsDir::Disk(p) => p.display().to_string(),
            ActorsDir::Embedded => "<embedded>/actors".to_string(),
        }
    }

    /// `(agent folder name, agent.toml path for messages, its text)` for every agent.
    pub(super) fn agent_files(&self) -> Result<Vec<(String, String, String)>, LintError> {
        match self {
            ActorsDir::Embedded => Ok(embedded::FILES
                .iter()
                .filter_map(|(p, text)| {
                    let agent = p.strip_suffix("/agent.toml")?;
                    (!agent.contains('/'))
                        .then(|| (agent.to_string(), format!("<embedded>/actors/{p}"), text.to_string()))
                })
                .collect()),
            ActorsDir::Disk(dir) => {
                let entries = std::fs::read_dir(dir).map_err(|e| LintError {
                    file: dir.display().to_string(),
                    line: 0,
                    message: format!("cannot read the actors folder: {e}"),
                })?;
                let mut out = Vec::new();
                let mut names: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                names.sort();
                for sub in names.into_iter().filter(|p| p.is_dir()) {
                    let file = sub.join("agent.toml");
                    let name = sub.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                    match std::fs::read_to_string(&file) {
                        Ok(text) => out.push((name, file.display().to_string(), text)),
                        Err(e) => {
                            return Err(LintError {
                                file: file.display().to_string(),
                                line: 0,
                                message: format!("cannot read agent definition: {e}"),
                            });
                        }
                    }
                }
                Ok(out)
            }
        }
    }

    /// Every `*.yml`/`*.yaml` file below `rel` in an agent's folder: (path, text).
    pub(super) fn read_tree(&self, agent: &str, rel: &str) -> Option<Vec<(String, String)>> {
        match self {
            ActorsDir::Disk(dir) => {
                let root = dir.join(agent).join(rel);
                let files = crate::tools::detection::sigma::rule_files(&root).ok()?;
                Some(
                    files
                        .into_iter()
                        .map(|p| {
                            let text = std::fs::read_to_string(&p).unwrap_or_default();
                            (p.display().to_string(), text)
                        })
                        .collect(),
                )
            }
            ActorsDir::Embedded => {
                let prefix = format!("{agent}/{}/", rel.trim_end_matches('/'));
                let files: Vec<_> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix) && (p.ends_with(".yml") || p.ends_with(".yaml")))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(files)
            }
        }
    }

    /// Reads a file of an agent's folder (its prompt, rules, ...).
    /// How a file of an agent's folder is named in messages.
    pub(super) fn display_path(&self, agent: &str, rel: &str) -> String {
        match self {
            ActorsDir::Disk(dir) => dir.join(agent).join(rel).display().to_string(),
            ActorsDir::Embedded => format!("<embedded>/actors/{agent}/{rel}"),
        }
    }

    /// Where a feed's files are: an absolute path as is (it may not exist yet), a
    /// relative one inside the agent's folder (it must exist).
    pub(super) fn feed_source(&self, agent: &str, rel: &str) -> Option<crate::tools::detection::ioc::FeedSource> {
        use crate::tools::detection::ioc::FeedSource;
        if Path::new(rel).is_absolute() {
            return Some(FeedSource::Path(PathBuf::from(rel)));
        }
        match self {
            ActorsDir::Disk(dir) => {
                let p = dir.join(agent).join(rel);
                p.exists().then_some(FeedSource::Path(p))
            }
            ActorsDir::Embedded => {
                let want = format!("{agent}/{}", rel.trim_end_matches('/'));
                let files: Vec<(String, String)> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| *p == want || p.starts_with(&format!("{want}/")))
                    .filter(|(p, _)| !p.rsplit('/').next().is_some_and(|n| n.starts_with('.')))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(FeedSource::Embedded(files))
            }
        }
    }

    /// Every `.toml` file below a folder of an agent's: (path for messages, text).
    pub(super) fn read_toml_tree(&self, agent: &str, rel: &str) -> Option<Vec<(String, String)>> {
        match self {
            ActorsDir::Disk(dir) => {
                let root = dir.join(agent).join(rel);
                let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                    .collect();
                files.sort();
                Some(
                    files
                        .into_iter()
                        .map(|p| (p.display().to_string(), std::fs::read_to_string(&p).unwrap_or_default()))
                        .collect(),
                )
            }
            ActorsDir::Embedded => {
                let prefix = format!("{agent}/{}/", rel.trim_end_matches('/'));
                let files: Vec<_> = embedded::FILES
                    .iter()
                    .filter(|(p, _)| p.starts_with(&prefix) && p.ends_with(".toml"))
                    .map(|(p, t)| (format!("<embedded>/actors/{p}"), t.to_string()))
                    .collect();
                (!files.is_empty()).then_some(files)
            }
        }
    }

    pub(super) fn read(&self, agent: &str, rel: &str) -> Option<String> {
        match self {
            ActorsDir::Disk(dir) => std::fs::read_to_string(dir.join(agent).join(rel)).ok(),
            ActorsDir::Embedded => {
                // `../other-agent/file` names a sibling agent's file.
                let want = match rel.strip_prefix("../") {
                    Some(sibling) => sibling.to_string(),
                    None => format!("{agent}/{rel}"),
                };
                embedded::FILES.iter().find(|(p, _)| *p == want).map(|(_, t)| t.to_string())
            }
        }
    }
}

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|b| *b == b'\n').count() + 1
}
