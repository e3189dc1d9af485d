//! An in-memory cloud for the executor's tests and the modelled benchmark: every operation
//! takes a configurable time on tokio's clock (so it runs instantly in paused time), and
//! failures can be scripted per key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use super::diff::{AttrSpec, Change, ChangeAction, Settings};
use super::resource::{Cloud, DeleteCtx, ErrorClass, NodeCtx, Observed, Outputs, ResourceError};
use super::spec::{Kind, NodeSpec};

/// The attributes of every fake resource: `size` changes in place, `image` needs new
/// instances, `port` a new resource, `cidr` cannot change; `refs` lists the dependencies' ids
/// (so a dependency created again shows up as a change of its dependents).
pub const FAKE_ATTRS: &[AttrSpec] = &[
    AttrSpec::update("size", &["fake.size"]),
    AttrSpec::with("image", ChangeAction::Roll, "new instances", &["fake.image"]),
    AttrSpec::with("port", ChangeAction::Replace, "immutable", &["fake.port"]),
    AttrSpec::with("cidr", ChangeAction::Forbidden, "destroy and rebuild", &["fake.cidr"]),
    AttrSpec::update("refs", &[]),
];

#[derive(Clone, Debug, PartialEq)]
pub struct Span {
    pub key: String,
    pub op: &'static str,
    pub start: Duration,
    pub end: Duration,
}

#[derive(Default)]
struct Inner {
    existing: BTreeMap<String, Outputs>,
    /// Live settings of existing resources.
    live: BTreeMap<String, Settings>,
    /// Resources replaced and not deleted yet: id -> key.
    retired: BTreeMap<String, String>,
    /// Creates per key.
    generations: HashMap<String, u32>,
    /// The client token of every create call, by key, in order.
    tokens: HashMap<String, Vec<String>>,
    spans: Vec<Span>,
    in_flight: usize,
    max_in_flight: usize,
    calls: HashMap<&'static str, usize>,
}

pub struct FakeCloud {
    origin: Instant,
    /// Duration of `create` (call) and `converge` (wait) per key; default zero.
    pub create_time: HashMap<String, Duration>,
    pub converge_time: HashMap<String, Duration>,
    pub delete_time: HashMap<String, Duration>,
    /// Keys whose create fails.
    pub fail_create: HashMap<String, ResourceError>,
    pub fail_delete: HashMap<String, ResourceError>,
    /// Keys whose next creates answer `ErrorClass::Ambiguous`, each entry one create:
    /// `true` when that create did happen server-side (a connection reset after success),
    /// `false` when it did not (reset before the service acted).
    pub ambiguous_create: Mutex<HashMap<String, Vec<bool>>>,
    /// Calls refused as throttled (`ErrorClass::Throttled`, what reaches the executor once
    /// the SDK's retries are spent), by `"<create|update|delete>:<key>"`, each entry one call.
    /// For a create, `true` when its first step did happen (a create of several calls,
    /// throttled after the first); an update or delete refused did nothing.
    pub throttled: Mutex<HashMap<String, Vec<bool>>>,
    /// Desired settings per key (besides `refs`, which follows the dependencies).
    pub desired: HashMap<String, Settings>,
    /// Keys whose update fails.
    pub fail_update: HashMap<String, ResourceError>,
    /// Keys replaced create-before-destroy (`Cloud::replaceable`): their find sees only a
    /// resource whose `port` (the replace attribute) is the desired one, as a kind that names
    /// the replacement after what forces it.
    pub replaceable: std::collections::HashSet<String>,
    /// Replaceable keys whose find returns the resource in place whatever is asked (a kind
    /// that does not name its replacement after what forces it: a bug the executor catches).
    pub badly_named: std::collections::HashSet<String>,
    inner: Mutex<Inner>,
}

impl Default for FakeCloud {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeCloud {
    /// The next scripted throttling of `call` on `key`, if any (see `throttled`).
    fn next_throttled(&self, call: &str, key: &str) -> Option<bool> {
        let mut all = self.throttled.lock().unwrap();
        let queue = all.get_mut(&format!("{call}:{key}")).filter(|q| !q.is_empty())?;
        Some(queue.remove(0))
    }

    fn throttling(&self, call: &str, key: &str) -> ResourceError {
        self.inner
            .lock()
            .unwrap()
            .calls
            .entry("throttled")
            .and_modify(|n| *n += 1)
            .or_insert(1);
        ResourceError::new(ErrorClass::Throttled, format!("{key}: Rate exceeded ({call})")).with_code("Throttling")
    }

    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
            create_time: HashMap::new(),
            converge_time: HashMap::new(),
            delete_time: HashMap::new(),
            fail_create: HashMap::new(),
            fail_delete: HashMap::new(),
            ambiguous_create: Mutex::new(HashMap::new()),
            throttled: Mutex::new(HashMap::new()),
            desired: HashMap::new(),
            fail_update: HashMap::new(),
            replaceable: Default::default(),
            badly_named: Default::default(),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A resource that already exists in the cloud (to be adopted).
    pub fn preexisting(&self, key: &str, outputs: Outputs) {
        self.inner.lock().unwrap().existing.insert(key.into(), outputs);
    }

    /// Change a live setting behind pi-deploy's back (drift).
    pub fn set_live(&self, key: &str, attr: &str, value: &str) {
        self.inner
            .lock()
            .unwrap()
            .live
            .entry(key.into())
            .or_default()
            .insert(attr.into(), value.into());
    }

    pub fn live(&self, key: &str) -> Settings {
        self.inner.lock().unwrap().live.get(key).cloned().unwrap_or_default()
    }

    /// The client tokens `key`'s create calls sent, in order.
    pub fn tokens(&self, key: &str) -> Vec<String> {
        self.inner.lock().unwrap().tokens.get(key).cloned().unwrap_or_default()
    }

    /// Delete a resource behind pi-deploy's back.
    pub fn vanish(&self, key: &str) {
        let mut i = self.inner.lock().unwrap();
        i.existing.remove(key);
        i.live.remove(key);
    }

    fn desired_of(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        let mut s = self.desired.get(&spec.key).cloned().unwrap_or_default();
        let refs: Vec<String> = spec
            .deps
            .iter()
            .map(|d| {
                deps.get(d)
                    .and_then(|o| o.get("id"))
                    .map_or_else(|| super::diff::KNOWN_AFTER_UP.to_string(), String::from)
            })
            .collect();
        s.insert("refs".into(), super::diff::list(refs));
        s
    }

    /// The replaced resources not deleted yet (id -> key).
    pub fn retired(&self) -> BTreeMap<String, String> {
        self.inner.lock().unwrap().retired.clone()
    }

    pub fn exists(&self, key: &str) -> bool {
        self.inner.lock().unwrap().existing.contains_key(key)
    }

    pub fn existing_keys(&self) -> Vec<String> {
        self.inner.lock().unwrap().existing.keys().cloned().collect()
    }

    pub fn spans(&self) -> Vec<Span> {
        self.inner.lock().unwrap().spans.clone()
    }

    pub fn max_in_flight(&self) -> usize {
        self.inner.lock().unwrap().max_in_flight
    }

    pub fn calls(&self, op: &str) -> usize {
        self.inner.lock().unwrap().calls.get(op).copied().unwrap_or(0)
    }

    async fn timed<T>(&self, key: &str, op: &'static str, d: Option<&Duration>, f: impl FnOnce(&mut Inner) -> T) -> T {
        let start = self.origin.elapsed();
        {
            let mut i = self.inner.lock().unwrap();
            i.in_flight += 1;
            i.max_in_flight = i.max_in_flight.max(i.in_flight);
            *i.calls.entry(op).or_default() += 1;
        }
        if let Some(d) = d
            && !d.is_zero()
        {
            tokio::time::sleep(*d).await;
        }
        let mut i = self.inner.lock().unwrap();
        i.in_flight -= 1;
        i.spans.push(Span {
            key: key.into(),
            op,
            start,
            end: self.origin.elapsed(),
        });
        f(&mut i)
    }
}

#[async_trait]
impl Cloud for FakeCloud {
    async fn find(&self, cx: &NodeCtx<'_>) -> Result<Option<Outputs>, ResourceError> {
        let key = cx.spec.key.as_str();
        let want_port = (self.replaceable.contains(key) && !self.badly_named.contains(key))
            .then(|| self.desired_of(cx.spec, cx.deps).get("port").cloned())
            .flatten();
        Ok(self
            .timed(key, "find", None, |i| {
                let live_port = i.live.get(key).and_then(|l| l.get("port"));
                match &want_port {
                    Some(want) if live_port != Some(want) => None,
                    _ => i.existing.get(key).cloned(),
                }
            })
            .await)
    }

    async fn create(&self, cx: &NodeCtx<'_>) -> Result<Outputs, ResourceError> {
        let key = cx.spec.key.clone();
        if let Some(e) = self.fail_create.get(&key) {
            self.timed(&key, "create", self.create_time.get(&key), |_| ()).await;
            return Err(e.clone());
        }
        for d in &cx.spec.deps {
            if !cx.deps.contains_key(d) {
                return Err(ResourceError::new(
                    ErrorClass::Invalid,
                    format!("{key} started before {d}"),
                ));
            }
        }
        // A resource created again (after it vanished) gets a new id, as on AWS.
        let generation = {
            let mut i = self.inner.lock().unwrap();
            i.tokens.entry(key.clone()).or_default().push(cx.token.to_string());
            let n = i.generations.entry(key.clone()).or_default();
            *n += 1;
            *n
        };
        let id = match generation {
            1 => format!("id-{key}"),
            n => format!("id-{key}-{n}"),
        };
        let outputs = Outputs::new().with("id", id);
        let live = self.desired_of(cx.spec, cx.deps);
        let throttled = self.next_throttled("create", &key);
        if throttled == Some(false) {
            return Err(self.throttling("create", &key));
        }
        let ambiguous = self
            .ambiguous_create
            .lock()
            .unwrap()
            .get_mut(&key)
            .filter(|queue| !queue.is_empty())
            .map(|queue| queue.remove(0));
        let o = outputs.clone();
        let k = key.clone();
        let replacing = self.replaceable.contains(&key);
        self.timed(&key, "create", self.create_time.get(&key), move |i| {
            if ambiguous != Some(false) {
                // A second create of the same key is a duplicate the tests must see, unless
                // it replaces the first (create before destroy).
                if let Some(old) = i.existing.insert(k.clone(), o) {
                    match replacing {
                        true => {
                            let id = old.get("id").unwrap_or_default().to_string();
                            i.retired.insert(id, k.clone());
                        }
                        false => *i.calls.entry("duplicate").or_default() += 1,
                    }
                }
                i.live.insert(k.clone(), live);
            }
        })
        .await;
        match (ambiguous, throttled) {
            (_, Some(_)) => Err(self.throttling("create", &key)),
            (Some(_), _) => Err(ResourceError::new(
                ErrorClass::Ambiguous,
                format!("{key}: connection reset after the request was sent"),
            )),
            (None, None) => Ok(outputs),
        }
    }

    async fn converge(&self, cx: &NodeCtx<'_>, outputs: Outputs) -> Result<Outputs, ResourceError> {
        let key = cx.spec.key.as_str();
        let present = self
            .timed(key, "converge", self.converge_time.get(key), |i| {
                i.existing.contains_key(key)
            })
            .await;
        if !present {
            return Err(ResourceError::new(
                ErrorClass::NotFound,
                format!("{key} does not exist"),
            ));
        }
        Ok(outputs.with("ready", "true"))
    }

    async fn delete(&self, cx: &DeleteCtx<'_>) -> Result<(), ResourceError> {
        let key = cx.key.to_string();
        if let Some(e) = self.fail_delete.get(&key) {
            return Err(e.clone());
        }
        if self.next_throttled("delete", &key).is_some() {
            return Err(self.throttling("delete", &key));
        }
        let id = cx.outputs.get("id").unwrap_or_default().to_string();
        self.timed(&key.clone(), "delete", self.delete_time.get(&key), move |i| {
            // A replaced resource is deleted by its id; the node's key holds its replacement.
            if i.retired.remove(&id).is_none() {
                i.existing.remove(&key);
                i.live.remove(&key);
            }
        })
        .await;
        Ok(())
    }

    fn attrs(&self, _kind: Kind) -> &'static [AttrSpec] {
        FAKE_ATTRS
    }

    fn desired(&self, spec: &NodeSpec, deps: &BTreeMap<String, Outputs>) -> Settings {
        self.desired_of(spec, deps)
    }

    fn replaceable(&self, spec: &NodeSpec) -> bool {
        self.replaceable.contains(&spec.key)
    }

    async fn read(&self, cx: &NodeCtx<'_>, _outputs: &Outputs) -> Result<Observed, ResourceError> {
        let key = cx.spec.key.as_str();
        Ok(self
            .timed(key, "read", None, |i| {
                i.existing
                    .contains_key(key)
                    .then(|| i.live.get(key).cloned().unwrap_or_default())
            })
            .await
            .map_or(Observed::Missing, Observed::Present))
    }

    async fn update(&self, cx: &NodeCtx<'_>, outputs: Outputs, changes: &[Change]) -> Result<Outputs, ResourceError> {
        let key = cx.spec.key.clone();
        if let Some(e) = self.fail_update.get(&key) {
            return Err(e.clone());
        }
        if self.next_throttled("update", &key).is_some() {
            return Err(self.throttling("update", &key));
        }
        let changes = changes.to_vec();
        self.timed(&key.clone(), "update", self.converge_time.get(&key), move |i| {
            let live = i.live.entry(key).or_default();
            for c in changes {
                live.insert(c.attribute, c.new);
            }
        })
        .await;
        Ok(outputs)
    }
}
