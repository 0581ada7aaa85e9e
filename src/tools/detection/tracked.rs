//! A map of per-key detector state that remembers which keys changed, so a batch
//! stores only what it touched (`take_delta`) in the commit of its checkpoint, and a
//! restart reads the keys back (`load`). Network analytics, the IoC matcher and the
//! correlator keep their state in it.

use crate::tools::StateError;
use std::collections::{HashMap, HashSet};

use serde::Serialize;

/// Keys tracked per map; past this new keys are counted as dropped, not tracked.
pub const MAX_KEYS: usize = 200_000;

/// A state key: hashed as a value, written as text only when stored.
pub trait StateKey: std::hash::Hash + Eq + Clone {
    fn encode(&self) -> String;
    fn decode(s: &str) -> Option<Self>;
}

/// A transport protocol's name as Warden spells it (any case accepted).
/// Plain text keys.
impl StateKey for String {
    fn encode(&self) -> String {
        self.clone()
    }
    fn decode(s: &str) -> Option<Self> {
        Some(s.to_string())
    }
}

/// Ids (correlation groups).
impl StateKey for uuid::Uuid {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// A map of per-key state that remembers which keys changed.
#[derive(Debug, Clone)]
pub struct Tracked<K, T> {
    pub map: HashMap<K, T>,
    dirty: HashSet<K>,
    removed: HashSet<K>,
}

impl<K, T> Default for Tracked<K, T> {
    fn default() -> Self {
        Tracked { map: HashMap::new(), dirty: HashSet::new(), removed: HashSet::new() }
    }
}

impl<K: StateKey, T: Default + Serialize + serde::de::DeserializeOwned> Tracked<K, T> {
    /// The entry for `key`, created if there is room; marks it changed.
    pub fn touch(&mut self, key: &K, dropped: &mut u64) -> Option<&mut T> {
        if !self.map.contains_key(key) {
            if self.map.len() >= MAX_KEYS {
                *dropped += 1;
                return None;
            }
            self.map.insert(key.clone(), T::default());
            self.removed.remove(key);
        }
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
        self.map.get_mut(key)
    }

    /// Sets an entry (marked changed).
    pub fn insert(&mut self, key: K, value: T) {
        self.removed.remove(&key);
        self.dirty.insert(key.clone());
        self.map.insert(key, value);
    }

    /// Marks an entry changed after it was modified through `map`.
    pub fn mark(&mut self, key: &K) {
        if !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
    }

    /// Removes an entry (its deletion is part of the next delta).
    pub fn remove(&mut self, key: &K) -> Option<T> {
        let v = self.map.remove(key)?;
        self.dirty.remove(key);
        self.removed.insert(key.clone());
        Some(v)
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        let gone: Vec<K> = self.map.iter().filter(|(_, v)| !keep(v)).map(|(k, _)| k.clone()).collect();
        for k in gone {
            self.map.remove(&k);
            self.dirty.remove(&k);
            self.removed.insert(k);
        }
    }

    pub fn discard(&mut self) {
        self.dirty.clear();
        self.removed.clear();
    }

    pub fn drain(&mut self, prefix: &str, out: &mut Vec<(String, Option<serde_json::Value>)>) {
        for k in self.dirty.drain() {
            if let Some(v) = self.map.get(&k) {
                out.push((format!("{prefix}{}", k.encode()), serde_json::to_value(v).ok()));
            }
        }
        for k in self.removed.drain() {
            out.push((format!("{prefix}{}", k.encode()), None));
        }
    }

    /// Restores one stored entry.
    pub fn load(&mut self, key: &str, value: serde_json::Value) -> Result<&T, StateError> {
        let k = K::decode(key).ok_or_else(|| StateError::Key { key: key.to_string() })?;
        let v: T =
            serde_json::from_value(value).map_err(|source| StateError::Value { key: key.to_string(), source })?;
        self.map.insert(k.clone(), v);
        Ok(&self.map[&k])
    }
}
