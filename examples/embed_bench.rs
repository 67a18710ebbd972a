//! Embedding throughput of `EmbeddingModel`, in process, for scripts/bench/embeddings.sh.
//!
//! Usage: `embed_bench MODEL_DIR SENTENCES_FILE BATCH ROUNDS`. The sentences (one per line) are fed
//! to `embed` in consecutive chunks of BATCH, as requests of that size would; one warm-up pass over
//! the first 64, then ROUNDS timed passes over all of them. Prints one line per round and a final
//! `median <sentences/s>` line.

use std::time::Instant;

use enclave::inference::embedding::EmbeddingModel;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model_dir, sentences, batch, rounds] = args.as_slice() else {
        return Err("usage: embed_bench MODEL_DIR SENTENCES_FILE BATCH ROUNDS".into());
    };
    let batch: usize = batch.parse()?;
    let rounds: usize = rounds.parse()?;
    let text = std::fs::read_to_string(sentences)?;
    let sentences: Vec<&str> = text.lines().collect();
    let model = EmbeddingModel::load(std::path::Path::new(model_dir))?;

    for chunk in sentences[..sentences.len().min(64)].chunks(batch) {
        model.embed(chunk)?;
    }
    let mut rates = Vec::with_capacity(rounds);
    for round in 1..=rounds {
        let started = Instant::now();
        let mut tokens = 0;
        for chunk in sentences.chunks(batch) {
            tokens += model.embed(chunk)?.iter().map(|e| e.tokens).sum::<usize>();
        }
        let secs = started.elapsed().as_secs_f64();
        let rate = sentences.len() as f64 / secs;
        println!(
            "round {round}: {:.1} sentences/s ({} sentences, {tokens} tokens, {secs:.2} s)",
            rate,
            sentences.len()
        );
        rates.push(rate);
    }
    rates.sort_by(f64::total_cmp);
    println!("median {:.1}", rates[rates.len() / 2]);
    Ok(())
}
