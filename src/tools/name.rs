//! The name of a tool, as agents declare it and a model sees it: one of the registry's.

use serde::{Deserialize, Serialize};

use super::Tool;

/// A registered tool's name. Only names in the registry can be made from text, so a
/// definition naming an unknown tool does not load.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ToolName(&'static str);

impl ToolName {
    /// The name of tool `T`.
    pub const fn of<T: Tool>() -> ToolName {
        ToolName(T::NAME)
    }

    /// The registered tool of that name.
    pub fn parse(name: &str) -> Option<ToolName> {
        super::registry::TOOLS.iter().find(|t| t.name.0 == name).map(|t| t.name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl std::fmt::Display for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::fmt::Debug for ToolName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl Serialize for ToolName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de> Deserialize<'de> for ToolName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        static NAMES: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
        let name = String::deserialize(d)?;
        ToolName::parse(&name).ok_or_else(|| {
            let known = NAMES.get_or_init(|| super::registry::TOOLS.iter().map(|t| t.name.0).collect());
            serde::de::Error::unknown_variant(&crate::text::sanitize(&name, 64), known)
        })
    }
}
