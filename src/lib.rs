//! Enclave: a private AI platform that runs inside an enterprise network as one binary.
//!
//! Bird's-eye view (see `ARCHITECTURE.md` for the long form):
//! - [`cli`] parses the command line and runs each subcommand; `main.rs` only dispatches.
//! - [`config`] merges embedded defaults < TOML file < `ENCLAVE_*` environment < flags.
//! - [`db`] opens SQLite databases (WAL, PRAGMAs, `BEGIN IMMEDIATE` writes) and runs the embedded migrations.
//! - [`tenancy`] owns the per-tenant databases: creation, the bounded registry of open pools, and the
//!   `TenantCtx` extractor that is the only road from an HTTP handler to tenant data.
//! - [`app`] builds the actix application and runs the server with graceful shutdown.
//! - [`http`] holds the route handlers, one module per resource; [`ui`] serves the embedded web UI.
//! - [`upgrade`] brings an installation's databases to this binary's schemas: pre-upgrade backup, a
//!   trial run of every migration, then the migrations.
//! - [`license`] verifies signed offline licences and evaluates the licence state (pure; not yet wired in).
//! - [`error`] is the one error catalogue and the one place errors become HTTP responses.

// The test licence key's private half is in the repository: a build that trusts it must never ship.
#[cfg(all(feature = "test-license-key", not(debug_assertions)))]
compile_error!(
    "the `test-license-key` feature is for tests only: release builds cannot trust the test licence key"
);

// Upgrade-test builds carry extra migrations (tests/fixtures/migrations/) for the packaging tests.
#[cfg(all(feature = "test-upgrade-migration", not(debug_assertions)))]
compile_error!(
    "the `test-upgrade-migration` and `test-failing-migration` features are for tests only"
);

pub mod app;
pub mod apps;
pub mod audit;
pub mod backup;
pub mod cli;
pub mod config;
pub mod db;
pub mod directory;
pub mod doctor;
pub mod error;
pub mod http;
pub mod identity;
pub mod inference;
pub mod knowledge;
pub mod license;
pub mod metrics;
pub mod models;
pub mod notify;
pub mod scheduler;
pub mod secrets;
pub mod state;
pub mod telemetry;
pub mod tenancy;
pub mod time_util;
pub mod ui;
pub mod upgrade;
pub mod usage;

/// The version of this build, as reported by `enclave version`, `/api/v1/system/info` and the migrations table.
#[cfg(not(feature = "test-upgrade-migration"))]
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Upgrade-test builds call themselves newer (build metadata), as a real upgrade would.
#[cfg(all(
    feature = "test-upgrade-migration",
    not(feature = "test-failing-migration")
))]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+test-upgrade");
#[cfg(feature = "test-failing-migration")]
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "+test-failing");

#[cfg(test)]
mod house_rules {
    /// Every module starts with a `//!` doc saying what it is for.
    #[test]
    fn every_module_has_a_module_doc() {
        fn visit(dir: &std::path::Path, missing: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read src").flatten() {
                let path = entry.path();
                if path.is_dir() {
                    visit(&path, missing);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).expect("read file");
                    if !text.trim_start().starts_with("//!") {
                        missing.push(path.display().to_string());
                    }
                }
            }
        }
        let mut missing = Vec::new();
        visit(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            &mut missing,
        );
        assert!(missing.is_empty(), "modules without a //! doc: {missing:?}");
    }
}
