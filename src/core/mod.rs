//! The pure core: no AWS SDK types, no terminal, no file I/O. Testable without AWS.

pub mod activity;
pub mod bench_model;
pub mod config;
pub mod diff;
pub mod event;
pub mod executor;
pub mod fake;
pub mod graph;
pub mod inspect;
pub mod latency;
pub mod lock;
pub mod names;
pub mod orphans;
pub mod phase;
pub mod plan;
pub mod policy;
pub mod resource;
pub mod rules;
pub mod spec;
pub mod state;
pub mod state_url;
pub mod upgrade;
pub mod usable;
pub mod userdata;
