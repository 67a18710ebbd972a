//! Generation benchmark helper for `scripts/bench/generate.sh` (not shipped): greedy generation from
//! a GGUF model, in process, printing one JSON line per round with prompt-processing and generation
//! speeds, plus the resident memory after loading and after all rounds (it stays flat: every
//! generation has its own KV cache over shared weights).
//!
//! Usage: `bench_generate run MODEL.gguf PROMPT_FILE MAX_TOKENS ROUNDS`
//!        `bench_generate requantize SRC.gguf DST.gguf` (to Q8_0)

use std::ops::ControlFlow;
use std::path::Path;

use enclave::inference::chat::{requantize, ChatModel};
use enclave::inference::SamplingParams;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("requantize") if args.len() == 4 => {
            let report = requantize(
                Path::new(&args[2]),
                Path::new(&args[3]),
                candle_core::quantized::GgmlDType::Q8_0,
            )?;
            eprintln!("{report:?}");
            Ok(())
        }
        Some("run") if args.len() == 6 => {
            let model = ChatModel::load(Path::new(&args[2]))?;
            let prompt_text = std::fs::read_to_string(&args[3])?;
            let max_tokens: usize = args[4].parse()?;
            let rounds: usize = args[5].parse()?;
            let prompt = model.encode(&prompt_text)?;
            let rss_loaded = rss_mib();
            let params = SamplingParams {
                temperature: 0.0,
                top_p: None,
                top_k: None,
                repetition_penalty: 1.0,
                repeat_last_n: 0,
                seed: 1,
                max_tokens,
                stop: Vec::new(),
            };
            for round in 0..rounds {
                let g = model.generate(&prompt, &params, &mut |_| ControlFlow::Continue(()))?;
                let pp = g.prompt_tokens as f64 / g.timings.prompt.as_secs_f64();
                // The first token comes from the prompt's logits: N tokens take N - 1 forward passes.
                let tg = (g.completion_tokens.saturating_sub(1)) as f64
                    / g.timings.generation.as_secs_f64();
                println!(
                    "{{\"round\":{round},\"prompt_tokens\":{},\"completion_tokens\":{},\"pp_tps\":{pp:.2},\"tg_tps\":{tg:.2}}}",
                    g.prompt_tokens, g.completion_tokens
                );
            }
            println!(
                "{{\"rss_loaded_mib\":{rss_loaded:.1},\"rss_after_mib\":{:.1}}}",
                rss_mib()
            );
            Ok(())
        }
        _ => Err(
            "usage: bench_generate run MODEL PROMPT_FILE MAX_TOKENS ROUNDS | requantize SRC DST"
                .into(),
        ),
    }
}
