//! A map of per-key detector state that remembers which keys changed, so a batch
//! stores only what it touched (`take_delta`) in the commit of its checkpoint, and a
//! restart reads the keys back (`load`). Network analytics, the IoC matcher and the
//! correlator keep their state in it.

use serde::Serialize;

use crate::tools::StateError;

/// The maps of detector state: keyed by addresses and names from the logs (attacker
/// controlled), hashed with a per-process random key (aHash), several times faster
/// than the standard SipHash on short keys.
pub type FastMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
pub type FastSet<K> = std::collections::HashSet<K, ahash::RandomState>;

/// A 64-bit digest of a value, keyed once per process: what cannot be chosen to collide
/// with another value, and is never stored (it differs between runs).
pub fn process_digest(v: impl std::hash::Hash) -> u64 {
    static KEY: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(ahash::RandomState::new).hash_one(v)
}

/// Keys tracked per map; past this the least recent tenth is evicted (and counted) to
/// make room — a flood of new keys never locks out the next real one.
pub const MAX_KEYS: usize = 200_000;

/// How recent an entry is (seconds since the epoch of its newest observation): the
/// least recent are evicted first.
pub trait Recency {
    fn recency(&self) -> f64;
}

/// Suppression entries: (last time, count).
impl Recency for (chrono::DateTime<chrono::Utc>, u32) {
    fn recency(&self) -> f64 {
        self.0.timestamp() as f64
    }
}

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

/// A tracked table's map: hashbrown's, for `entry_ref` (one lookup, the key cloned only
/// when it is new), keyed like [`FastMap`].
pub type TableMap<K, V> = hashbrown::HashMap<K, V, ahash::RandomState>;

/// A map of per-key state that remembers which keys changed (unless told that nothing
/// stores them: see [`Tracked::untracked`]).
#[derive(Debug, Clone)]
pub struct Tracked<K, T> {
    pub map: TableMap<K, T>,
    dirty: FastSet<K>,
    removed: FastSet<K>,
    /// Keys held at most ([`MAX_KEYS`] unless set).
    pub cap: usize,
    /// Whether changes are remembered.
    tracking: bool,
    /// Scratch space of eviction (the entries' recency), kept between evictions.
    ages: Vec<f64>,
}

impl<K, T> Default for Tracked<K, T> {
    fn default() -> Self {
        Tracked {
            map: TableMap::default(),
            dirty: FastSet::default(),
            removed: FastSet::default(),
            cap: MAX_KEYS,
            tracking: true,
            ages: Vec::new(),
        }
    }
}

impl<K: StateKey, T: Default + Serialize + serde::de::DeserializeOwned + Recency> Tracked<K, T> {
    /// The entry for `key`, created (evicting the least recent tenth when the map is
    /// full, counted in `evicted`); marks it changed.
    pub fn touch(&mut self, key: &K, evicted: &mut u64) -> Option<&mut T> {
        self.entry(key, evicted, |_, _| {}).map(|(v, _)| v)
    }

    /// The entry for `key` and whether it is new; marks it changed. A new key is added
    /// after room is made for it: when the map is full the least recent tenth goes, each
    /// handed to `gone` (for owners that count what their entries stand for), counted in
    /// `evicted`.
    pub fn entry(&mut self, key: &K, evicted: &mut u64, gone: impl FnMut(K, T)) -> Option<(&mut T, bool)> {
        self.mark(key);
        if self.map.len() >= self.cap.max(1) && !self.map.contains_key(key) {
            *evicted += self.room_for_new(gone);
        }
        match self.map.entry_ref(key) {
            hashbrown::hash_map::EntryRef::Occupied(o) => Some((o.into_mut(), false)),
            hashbrown::hash_map::EntryRef::Vacant(v) => {
                if self.tracking {
                    self.removed.remove(key);
                }
                Some((v.insert(T::default()), true))
            }
        }
    }

    /// Stops remembering changes (state nothing stores, as a replay's): `take_delta`
    /// then gives nothing.
    pub fn untracked(&mut self) {
        self.tracking = false;
        self.discard();
    }

    /// Room for one new key: the least recent tenth goes when the map is full.
    fn room_for_new(&mut self, gone: impl FnMut(K, T)) -> u64 {
        if self.map.len() < self.cap.max(1) {
            return 0;
        }
        self.evict_each((self.cap / 10).max(1), gone)
    }

    /// Removes the `n` least recent entries (their deletion is part of the next delta)
    /// and returns them.
    pub fn evict_least_recent(&mut self, n: usize) -> Vec<(K, T)> {
        let mut out = Vec::new();
        self.evict_each(n, |k, v| out.push((k, v)));
        out
    }

    /// Removes the `n` least recent entries (their deletion is part of the next delta),
    /// each handed to `gone`, in two passes over the map and no key lookup: the recency
    /// of the n-th least recent is found first, then what is older is extracted, with as
    /// many at that recency as make `n`. Returns how many went.
    fn evict_each(&mut self, n: usize, mut gone: impl FnMut(K, T)) -> u64 {
        let n = n.min(self.map.len());
        if n == 0 {
            return 0;
        }
        let mut ages = std::mem::take(&mut self.ages);
        ages.clear();
        ages.extend(self.map.values().map(Recency::recency));
        let (older, cutoff, _) = ages.select_nth_unstable_by(n - 1, f64::total_cmp);
        let cutoff = *cutoff;
        let mut at_cutoff = n - older.iter().filter(|a| a.total_cmp(&cutoff).is_lt()).count();
        self.ages = ages;
        let mut went = 0;
        for (k, v) in self.map.extract_if(|_, v| match v.recency().total_cmp(&cutoff) {
            std::cmp::Ordering::Less => true,
            std::cmp::Ordering::Equal if at_cutoff > 0 => {
                at_cutoff -= 1;
                true
            }
            _ => false,
        }) {
            if self.tracking {
                self.dirty.remove(&k);
                self.removed.insert(k.clone());
            }
            went += 1;
            gone(k, v);
        }
        went
    }

    /// Sets an entry (marked changed).
    pub fn insert(&mut self, key: K, value: T) {
        if self.tracking {
            self.removed.remove(&key);
            self.dirty.insert(key.clone());
        }
        self.map.insert(key, value);
    }

    /// Marks an entry changed after it was modified through `map`.
    pub fn mark(&mut self, key: &K) {
        if self.tracking && !self.dirty.contains(key) {
            self.dirty.insert(key.clone());
        }
    }

    /// Removes an entry (its deletion is part of the next delta).
    pub fn remove(&mut self, key: &K) -> Option<T> {
        let v = self.map.remove(key)?;
        if self.tracking {
            self.dirty.remove(key);
            self.removed.insert(key.clone());
        }
        Some(v)
    }

    /// Keeps the entries `keep` accepts (the others' deletion is part of the next
    /// delta); returns the keys removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> Vec<K> {
        let mut gone = Vec::new();
        // One pass; only the keys that go are copied.
        self.map.retain(|k, v| {
            let kept = keep(v);
            if !kept {
                gone.push(k.clone());
            }
            kept
        });
        if self.tracking {
            for k in &gone {
                self.dirty.remove(k);
                self.removed.insert(k.clone());
            }
        }
        gone
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

/// A table seen whole, whatever its key and entry types: what an owner of several
/// tables does to each alike (cap, store, forget, restore).
pub trait Table {
    fn set_cap(&mut self, cap: usize);
    /// See [`Tracked::untracked`].
    fn untrack(&mut self);
    /// See [`Tracked::discard`].
    fn discard_changes(&mut self);
    /// See [`Tracked::drain`].
    fn drain_changes(&mut self, prefix: &str, out: &mut Vec<(String, Option<serde_json::Value>)>);
    /// See [`Tracked::load`].
    fn load_entry(&mut self, key: &str, value: serde_json::Value) -> Result<(), StateError>;
}

impl<K: StateKey, T: Default + Serialize + serde::de::DeserializeOwned + Recency> Table for Tracked<K, T> {
    fn set_cap(&mut self, cap: usize) {
        self.cap = cap;
    }
    fn untrack(&mut self) {
        self.untracked();
    }
    fn discard_changes(&mut self) {
        self.discard();
    }
    fn drain_changes(&mut self, prefix: &str, out: &mut Vec<(String, Option<serde_json::Value>)>) {
        self.drain(prefix, out);
    }
    fn load_entry(&mut self, key: &str, value: serde_json::Value) -> Result<(), StateError> {
        self.load(key, value).map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, Serialize, serde::Deserialize, PartialEq)]
    struct Seen(f64);

    impl Recency for Seen {
        fn recency(&self) -> f64 {
            self.0
        }
    }

    /// A full map used to refuse every new key (a flood locked out the next real one):
    /// now the least recent tenth gives way, counted, and its deletion is stored.
    #[test]
    fn a_full_map_evicts_the_least_recent_to_take_a_new_key() {
        let mut t: Tracked<String, Seen> = Tracked::default();
        let mut evicted = 0;
        for i in 0..MAX_KEYS {
            t.touch(&format!("k{i}"), &mut evicted).unwrap().0 = i as f64;
        }
        t.discard();
        assert_eq!(evicted, 0);
        t.touch(&"attacker".to_string(), &mut evicted).expect("room is made").0 = 1e12;
        assert_eq!(evicted, (MAX_KEYS / 10) as u64);
        assert_eq!(t.map.len(), MAX_KEYS - MAX_KEYS / 10 + 1);
        assert!(!t.map.contains_key("k0") && !t.map.contains_key(&format!("k{}", MAX_KEYS / 10 - 1)));
        assert!(t.map.contains_key(&format!("k{}", MAX_KEYS / 10)) && t.map.contains_key("attacker"));
        let mut out = Vec::new();
        t.drain("p/", &mut out);
        assert_eq!(out.iter().filter(|(_, v)| v.is_none()).count(), MAX_KEYS / 10, "evictions are stored deletions");
    }

    /// Eviction takes exactly the tenth asked for when many entries share the recency at
    /// the cut (a burst of one second): the older ones all, then as many of those as make
    /// the count; the newer ones none.
    #[test]
    fn eviction_at_a_shared_recency_takes_exactly_its_count() {
        let mut t: Tracked<String, Seen> = Tracked { cap: 100, ..Tracked::default() };
        let mut evicted = 0;
        for i in 0..100 {
            let ts = match i {
                0..5 => i as f64,
                5..60 => 10.0,
                _ => 20.0 + i as f64,
            };
            t.touch(&format!("k{i}"), &mut evicted).unwrap().0 = ts;
        }
        let mut gone = Vec::new();
        evicted = 0;
        let (_, new) = t.entry(&"new".to_string(), &mut evicted, |k, v| gone.push((k, v.0))).unwrap();
        assert!(new);
        assert_eq!(evicted, 10);
        let (_, new) =
            t.entry(&"k99".to_string(), &mut evicted, |_, _| unreachable!("a known key makes no room")).unwrap();
        assert!(!new);
        assert_eq!(evicted, 10);
        gone.sort_by(|a, b| a.1.total_cmp(&b.1));
        assert_eq!(gone.len(), 10);
        assert!(gone[..5].iter().enumerate().all(|(i, (_, ts))| *ts == i as f64), "{gone:?}");
        assert!(gone[5..].iter().all(|(_, ts)| *ts == 10.0), "{gone:?}");
        assert_eq!(t.map.values().filter(|s| s.0 == 10.0).count(), 50);
        assert_eq!(t.map.len(), 91, "the new key added");
        assert_eq!(t.map.values().filter(|s| s.0 > 10.0).count(), 40);
    }

    /// Changes, removals and pruning are part of the delta; an untracked table (state
    /// nothing stores) keeps its entries the same way and gives no delta.
    #[test]
    fn a_delta_lists_what_changed_unless_untracked() {
        for tracking in [true, false] {
            let mut t: Tracked<String, Seen> = Tracked::default();
            if !tracking {
                t.untracked();
            }
            let mut evicted = 0;
            for (k, at) in [("a", 1.0), ("b", 2.0), ("c", 3.0)] {
                t.touch(&k.to_string(), &mut evicted).unwrap().0 = at;
            }
            t.remove(&"a".to_string());
            assert_eq!(t.retain(|s| s.0 > 2.5), ["b".to_string()]);
            assert_eq!(t.map.keys().collect::<Vec<_>>(), ["c"]);
            let mut out = Vec::new();
            t.drain("p/", &mut out);
            out.sort_by(|x, y| x.0.cmp(&y.0));
            let got: Vec<(&str, bool)> = out.iter().map(|(k, v)| (k.as_str(), v.is_some())).collect();
            let want: &[(&str, bool)] = if tracking { &[("p/a", false), ("p/b", false), ("p/c", true)] } else { &[] };
            assert_eq!(got, want, "tracking: {tracking}");
        }
    }
}
