//! pi-deploy: deploys the Panintelligence dashboard onto AWS by calling the AWS APIs directly.
//!
//! `core` is pure (graph, planner, executor, state meaning); `aws` and `resources` are the
//! edge that talks to AWS; `state_backend` picks where the state lives: `state_file` owns a
//! local file's bytes, `state_s3` an S3 object's; `ui` draws events;
//! `commands` wires them together for each subcommand.

pub mod aws;
pub mod cli;
pub mod commands;
pub mod core;
pub mod resources;
pub mod state_backend;
pub mod state_file;
pub mod state_s3;
pub mod ui;
