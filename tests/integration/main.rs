//! Integration tests: each starts the real `enclave` binary on a random loopback port with a temporary
//! data directory and drives it over HTTP or its command line.

mod common;

mod active_directory;
mod api_keys;
mod apps;
mod audit;
mod auth;
mod backup;
mod cli;
mod directory;
mod embeddings;
mod errors;
mod inference;
mod knowledge;
mod ldap_harness;
mod license;
mod lifecycle;
mod models;
mod probes;
mod tenants;
mod ui;
mod usage;
