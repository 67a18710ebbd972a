//! Sentence embeddings (`enclave::inference::embedding`) against the real sentence-transformers: the
//! vectors in tests/fixtures/embeddings/reference.json were computed by
//! scripts/reference-embeddings.py with sentence-transformers on PyTorch (CPU) from the same model
//! directory, which scripts/test.sh fetches and names in `ENCLAVE_TEST_MODELS`.

use std::sync::OnceLock;

use enclave::inference::embedding::EmbeddingModel;

fn model() -> &'static EmbeddingModel {
    static MODEL: OnceLock<EmbeddingModel> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::env::var_os("ENCLAVE_TEST_MODELS").unwrap_or_else(|| {
            panic!("ENCLAVE_TEST_MODELS is not set: run the suite with scripts/test.sh, which fetches the models")
        });
        let dir = std::path::PathBuf::from(dir).join("all-MiniLM-L6-v2");
        EmbeddingModel::load(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
    })
}

struct Reference {
    text: String,
    tokens: usize,
    tokens_before_truncation: usize,
    truncated: bool,
    vector: Vec<f32>,
}

fn references() -> Vec<Reference> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/embeddings/reference.json"
    );
    let fixture: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json");
    fixture["sentences"]
        .as_array()
        .expect("sentences")
        .iter()
        .map(|s| Reference {
            text: s["text"].as_str().expect("text").to_string(),
            tokens: s["tokens"].as_u64().expect("tokens") as usize,
            tokens_before_truncation: s["tokens_before_truncation"].as_u64().expect("tokens")
                as usize,
            truncated: s["truncated"].as_bool().expect("truncated"),
            vector: s["vector"]
                .as_array()
                .expect("vector")
                .iter()
                .map(|x| x.as_f64().expect("number") as f32)
                .collect(),
        })
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn embeddings_match_sentence_transformers_alone_and_in_one_batch() {
    let model = model();
    assert_eq!(model.name(), "all-MiniLM-L6-v2");
    assert_eq!(model.dimensions(), 384);
    assert_eq!(model.max_tokens(), 256);
    let refs = references();
    assert!(refs.len() >= 20);
    assert!(
        refs.iter().any(|r| r.truncated),
        "the fixture has no truncated input"
    );
    assert!(
        refs.iter().any(|r| r.tokens > 128 && !r.truncated),
        "the fixture has no input between the tokenizer file's 128 and the model's 256 tokens"
    );
    let texts: Vec<&str> = refs.iter().map(|r| r.text.as_str()).collect();
    let batch = model.embed(&texts).expect("embed");
    assert_eq!(batch.len(), refs.len());
    let mut worst = f64::MAX;
    for (r, got) in refs.iter().zip(&batch) {
        let alone = model.embed(&[r.text.as_str()]).expect("embed one");
        for (how, e) in [("in the batch", got), ("alone", &alone[0])] {
            let c = cosine(&e.vector, &r.vector);
            worst = worst.min(c);
            assert!(c >= 0.999, "cosine {c} {how} for {:?}", r.text);
            assert_eq!(e.vector.len(), 384);
            let norm = e.vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-4, "norm {norm}");
            assert_eq!(e.tokens, r.tokens, "tokens {how} of {:?}", r.text);
            assert_eq!(e.truncated, r.truncated, "truncated {how} of {:?}", r.text);
        }
        assert_eq!(
            model.count_tokens(&r.text).expect("count"),
            r.tokens_before_truncation,
            "{:?}",
            r.text
        );
    }
    println!(
        "minimum cosine with sentence-transformers: {worst:.9} (1 - {:.2e})",
        1.0 - worst
    );
}

#[test]
fn empty_lists_and_strings_and_repeated_inputs() {
    let model = model();
    assert!(model.embed(&[]).expect("empty list").is_empty());
    let out = model.embed(&["", "same text", "same text"]).expect("embed");
    assert_eq!(out[0].tokens, 2);
    assert!(!out[0].truncated);
    assert_eq!(out[1], out[2]);
}
