//! The `enclave` binary: checks the CPU, parses the command line and dispatches. Everything else is in
//! the library (`src/lib.rs`) so that tests link it.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc: every request allocates and frees its futures, headers and
/// records, and glibc's allocator spent about a tenth of the HTTP workers' time there (its fastbin
/// consolidation on each larger allocation); see docs/usage.md, "Benchmark".
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cpu_supported() -> Result<(), String> {
    #[cfg(target_arch = "x86_64")]
    {
        let missing: Vec<&str> = [
            ("avx2", std::arch::is_x86_feature_detected!("avx2")),
            ("fma", std::arch::is_x86_feature_detected!("fma")),
            ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
        ]
        .into_iter()
        .filter_map(|(name, present)| (!present).then_some(name))
        .collect();
        if !missing.is_empty() {
            return Err(format!(
                "this Enclave build needs an x86-64-v3 CPU (AVX2/FMA, Intel Haswell / AMD Excavator or newer); \
                 this CPU lacks: {}",
                missing.join(", ")
            ));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(message) = cpu_supported() {
        eprintln!("enclave: error: {message}");
        return ExitCode::FAILURE;
    }
    let cli = enclave::cli::Cli::parse();
    match enclave::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("enclave: error: {e}");
            ExitCode::FAILURE
        }
    }
}
