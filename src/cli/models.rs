//! `enclave models list|import|verify|remove`: the model store from the command line (see
//! [`crate::models::store`]). Works without the server; a running server picks up an imported or
//! removed model at its next start.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use super::CliError;
use crate::config::LoadedConfig;
use crate::models::store::{self, ImportOptions};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the installed models with their kind, size and shape.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Install a model: a chat model from a llama-family .gguf file, or an embedding model from a
    /// sentence-transformers directory (config.json, model.safetensors, tokenizer.json).
    ///
    /// The files are checked, copied, converted where it makes them faster (GGUF Q4_1 and similar
    /// to Q8_0), loaded once to prove they work, hashed and described by a manifest. A refused
    /// import installs nothing.
    Import {
        /// The .gguf file or the embedding model's directory.
        path: PathBuf,
        /// Installed name [default: the file or directory name without extension].
        #[arg(long)]
        name: Option<String>,
        /// Licence of the weights, recorded in the manifest.
        #[arg(long)]
        license: Option<String>,
        /// Where the weights came from, recorded in the manifest.
        #[arg(long)]
        source: Option<String>,
    },
    /// Hash every file of the installed models (or of one) against its SHA256SUMS.
    Verify {
        /// Only this model.
        name: Option<String>,
    },
    /// Remove an installed model.
    Remove { name: String },
}

fn store_error(e: store::StoreError) -> CliError {
    CliError::Usage(e.to_string())
}

fn human_bytes(bytes: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if bytes as f64 >= 1024.0 * MIB {
        format!("{:.1} GiB", bytes as f64 / 1024.0 / MIB)
    } else {
        format!("{:.1} MiB", bytes as f64 / MIB)
    }
}

pub fn run(loaded: LoadedConfig, command: &ModelsCommand) -> Result<ExitCode, CliError> {
    let data_dir = loaded.config.storage.data_dir.clone();
    match command {
        ModelsCommand::List { json } => {
            let models = store::list(&data_dir);
            if *json {
                let text = serde_json::to_string_pretty(&models)
                    .map_err(|e| CliError::Usage(e.to_string()))?;
                println!("{text}");
                return Ok(ExitCode::SUCCESS);
            }
            if models.is_empty() {
                println!(
                    "no models in {}: import one with `enclave models import PATH` or run scripts/fetch-models.sh",
                    store::models_dir(&data_dir).display()
                );
            }
            for m in &models {
                let shape = match (m.manifest.context_length, m.manifest.dimensions) {
                    (Some(context), _) => format!("context {context}"),
                    (None, Some(dims)) => format!(
                        "{dims} dimensions, max {} tokens",
                        m.manifest.max_seq_length.unwrap_or(0)
                    ),
                    _ => String::new(),
                };
                println!(
                    "{:<32} {:<9} {:<11} {:>10}  {}{}",
                    m.manifest.name,
                    m.manifest.kind.as_str(),
                    m.manifest.format,
                    human_bytes(m.bytes),
                    shape,
                    m.manifest
                        .quantization
                        .as_deref()
                        .map(|q| format!(", {q}"))
                        .unwrap_or_default()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Import {
            path,
            name,
            license,
            source,
        } => {
            let options = ImportOptions {
                name: name.clone(),
                license: license.clone(),
                source: source.clone(),
            };
            let manifest =
                store::import(&data_dir, path, &options, &crate::inference::prepare_import)
                    .map_err(store_error)?;
            println!(
                "imported {} ({}, {}{}) into {}",
                manifest.name,
                manifest.kind.as_str(),
                manifest.format,
                match (&manifest.requantized_from, &manifest.quantization) {
                    (Some(from), Some(to)) => format!(", converted from {from} to {to}"),
                    _ => String::new(),
                },
                store::models_dir(&data_dir).join(&manifest.name).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Verify { name } => {
            let names: Vec<String> = match name {
                Some(name) => vec![
                    store::find(&data_dir, name)
                        .map_err(store_error)?
                        .manifest
                        .name,
                ],
                None => store::list(&data_dir)
                    .into_iter()
                    .map(|m| m.manifest.name)
                    .collect(),
            };
            let mut failed = false;
            for name in names {
                match crate::models::check(&data_dir, &name, true) {
                    Ok(()) => println!("[ok  ] {name}"),
                    Err((status, detail)) => {
                        failed = true;
                        println!("[FAIL] {name}: {status}: {detail}");
                    }
                }
            }
            Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            })
        }
        ModelsCommand::Remove { name } => {
            let manifest = store::remove(&data_dir, name).map_err(store_error)?;
            println!(
                "removed {} (a running server keeps it loaded until it restarts)",
                manifest.name
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
