//! Integration tests against an AWS emulator (moto server in CI; LocalStack or any other
//! endpoint via AWS_ENDPOINT_URL). Each test uses its own deployment name, so tests run in
//! parallel without colliding. Started by `scripts/test.sh`, which starts moto and sets
//! the endpoint and test credentials.

mod census;
mod common;
mod compute;
mod crash;
mod data;
mod day2;
mod day_to_day;
mod destroy;
#[cfg(feature = "fault-injection")]
mod early;
mod example_config;
#[cfg(feature = "fault-injection")]
mod faults;
mod hardening;
mod hostile_input;
mod hostile_state;
mod iam_policy;
mod lanes;
mod network;
mod operator;
mod restore;
mod restore_files;
mod sideload;
mod snapshot;
mod state_s3;
mod upgrade;
mod vanish;
