//! Tests against the real default chat model (SmolLM2-135M-Instruct, Q4_1 GGUF) found through
//! `ENCLAVE_TEST_MODELS`, as `scripts/test.sh` sets it. No mocks: template, tokenizer, generation
//! and requantisation run on the shipped file.

use std::ops::ControlFlow;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use super::*;

const QUESTION: &str = "What is the capital city of France? Answer in one sentence.";

fn model_path() -> PathBuf {
    let dir = std::env::var_os("ENCLAVE_TEST_MODELS").unwrap_or_else(|| {
        panic!("ENCLAVE_TEST_MODELS is not set: run the suite with scripts/test.sh, which fetches the models")
    });
    PathBuf::from(dir)
        .join("SmolLM2-135M-Instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf")
}

/// One model for all tests (and proof that it is shareable across threads).
fn model() -> Arc<ChatModel> {
    static MODEL: OnceLock<Arc<ChatModel>> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let path = model_path();
            Arc::new(
                ChatModel::load(&path)
                    .unwrap_or_else(|e| panic!("loading {}: {e}", path.display())),
            )
        })
        .clone()
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage {
        role: role.into(),
        content: content.into(),
    }
}

fn greedy(max_tokens: usize) -> SamplingParams {
    SamplingParams {
        temperature: 0.0,
        top_p: None,
        top_k: None,
        repetition_penalty: 1.0,
        repeat_last_n: 64,
        seed: 1,
        max_tokens,
        stop: Vec::new(),
    }
}

fn question_prompt(model: &ChatModel) -> Vec<u32> {
    let text = model
        .render(&[msg("user", QUESTION)])
        .expect("render the question");
    model.encode(&text).expect("encode the question")
}

/// Generates, collecting the streamed pieces.
fn run(model: &ChatModel, prompt: &[u32], params: &SamplingParams) -> (Generation, Vec<String>) {
    let mut pieces = Vec::new();
    let generation = model
        .generate(prompt, params, &mut |t| {
            pieces.push(t.to_string());
            ControlFlow::Continue(())
        })
        .expect("generate");
    (generation, pieces)
}

#[test]
fn metadata_name_and_clamped_context() {
    let model = model();
    assert_eq!(model.name(), "SmolLM2-135M-Instruct");
    assert_eq!(model.trained_context_length(), 8192);
    // quantized_llama's rotary tables stop at 4096 positions.
    assert_eq!(model.context_length(), 4096);
    assert!(
        model.end_of_turn_tokens().contains(&2),
        "<|im_end|> ends a turn"
    );
}

#[test]
fn smollm2_template_renders_chatml_exactly() {
    let model = model();
    let text = model
        .render(&[
            msg("system", "You are a concise assistant."),
            msg("user", QUESTION),
        ])
        .expect("render");
    assert_eq!(
        text,
        format!("<|im_start|>system\nYou are a concise assistant.<|im_end|>\n<|im_start|>user\n{QUESTION}<|im_end|>\n<|im_start|>assistant\n")
    );
    // Without a system message the template adds SmolLM's own.
    let text = model.render(&[msg("user", "Hi")]).expect("render");
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert!(matches!(
        model.render(&[]),
        Err(InferenceError::InvalidRequest(_))
    ));
    assert!(matches!(
        model.render(&[msg("tool", "x")]),
        Err(InferenceError::InvalidRequest(_))
    ));
}

#[test]
fn rendered_special_tokens_encode_to_their_ids() {
    let model = model();
    let text = model
        .render(&[msg("system", "Be brief."), msg("user", "Hello")])
        .expect("render");
    let ids = model.encode(&text).expect("encode");
    // <|im_start|> = 1, <|im_end|> = 2 in SmolLM2's vocabulary.
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.iter().filter(|&&t| t == 1).count(), 3, "{ids:?}");
    assert_eq!(ids.iter().filter(|&&t| t == 2).count(), 2, "{ids:?}");
    assert_eq!(model.encode("<|im_end|>").expect("encode"), vec![2]);
    // Plain text round-trips; control tokens are not shown when decoding.
    let plain = "Héllo, wörld! 12345 — ok";
    assert_eq!(model.decode(&model.encode(plain).expect("encode")), plain);
    assert_eq!(
        model.decode(&ids),
        "system\nBe brief.\nuser\nHello\nassistant\n"
    );
}

#[test]
fn greedy_answer_names_paris() {
    let model = model();
    let prompt = question_prompt(&model);
    let (g, pieces) = run(&model, &prompt, &greedy(64));
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    assert_eq!(g.finish_reason, FinishReason::Stop, "{:?}", g.text);
    assert_eq!(g.prompt_tokens, prompt.len());
    assert!(g.completion_tokens >= 2 && g.completion_tokens <= 64);
    assert_eq!(pieces.concat(), g.text, "the streamed pieces make the text");
    assert!(!g.text.contains("<|im_end|>"));
    // Greedy is deterministic, also when generations run at the same time on shared weights.
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let (m, p) = (model.clone(), prompt.clone());
            std::thread::spawn(move || run(&m, &p, &greedy(64)).0.text)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), g.text);
    }
}

#[test]
fn seeds_make_sampling_reproducible() {
    let model = model();
    let prompt = model
        .encode(
            &model
                .render(&[msg("user", "Write a short poem about the sea.")])
                .expect("render"),
        )
        .expect("encode");
    let params = |seed| SamplingParams {
        temperature: 1.0,
        top_p: Some(0.95),
        top_k: Some(50),
        seed,
        max_tokens: 24,
        ..SamplingParams::default()
    };
    let a = run(&model, &prompt, &params(42)).0.text;
    let b = run(&model, &prompt, &params(42)).0.text;
    assert_eq!(a, b, "the same seed gives the same text");
    let others: Vec<String> = [43, 44, 45]
        .into_iter()
        .map(|s| run(&model, &prompt, &params(s)).0.text)
        .collect();
    assert!(others.iter().any(|o| *o != a), "other seeds all gave {a:?}");
}

#[test]
fn stop_sequence_is_not_emitted() {
    let model = model();
    let prompt = question_prompt(&model);
    let full = run(&model, &prompt, &greedy(64)).0.text;
    let at = full.find("Paris").expect("the greedy answer names Paris");
    let mut params = greedy(64);
    params.stop = vec!["Paris".into()];
    let (g, pieces) = run(&model, &prompt, &params);
    assert_eq!(g.finish_reason, FinishReason::Stop);
    assert_eq!(
        g.text,
        full[..at],
        "the text stops right before the stop sequence"
    );
    assert!(!pieces.concat().contains("Paris"));
}

#[test]
fn max_tokens_ends_with_length() {
    let model = model();
    let prompt = question_prompt(&model);
    let (g, _) = run(&model, &prompt, &greedy(3));
    assert_eq!(g.finish_reason, FinishReason::Length);
    assert_eq!(g.completion_tokens, 3);
    assert!(!g.text.is_empty());
    assert!(matches!(
        model.generate(&prompt, &greedy(0), &mut |_| ControlFlow::Continue(())),
        Err(InferenceError::InvalidRequest(_))
    ));
}

#[test]
fn break_cancels() {
    let model = model();
    let prompt = question_prompt(&model);
    let mut calls = 0;
    let g = model
        .generate(&prompt, &greedy(64), &mut |_| {
            calls += 1;
            ControlFlow::Break(())
        })
        .expect("generate");
    assert_eq!(g.finish_reason, FinishReason::Cancelled);
    assert_eq!(calls, 1, "no text after the caller said stop");
    assert!(!g.text.is_empty() && g.completion_tokens < 64, "{g:?}");
}

#[test]
fn context_window_is_enforced_and_max_tokens_clamped() {
    let model = model();
    let limit = model.context_length();
    // A filler token repeated: the prompt alone fills the window.
    let filler = model.encode(" the").expect("encode");
    assert_eq!(filler.len(), 1);
    let full = vec![filler[0]; limit];
    match model.generate(&full, &greedy(16), &mut |_| ControlFlow::Continue(())) {
        Err(InferenceError::ContextLengthExceeded {
            tokens,
            limit: l,
            reserved,
        }) => {
            assert_eq!((tokens, l, reserved), (limit, limit, 1));
        }
        other => panic!("expected ContextLengthExceeded, got {other:?}"),
    }
    // Two tokens of room: max_tokens 100 is clamped to 2. A smaller window keeps the test quick;
    // its 598-token prompt still goes through the model in two chunks.
    let small = ChatModel::load(&model_path())
        .expect("load")
        .with_context_limit(600);
    assert_eq!(small.context_length(), 600);
    let nearly = vec![filler[0]; 598];
    let (g, _) = run(&small, &nearly, &greedy(100));
    assert_eq!(g.prompt_tokens, 598);
    assert!(g.completion_tokens <= 2);
    if g.completion_tokens == 2 {
        assert_eq!(g.finish_reason, FinishReason::Length);
    }
}

#[test]
fn corrupt_or_truncated_files_are_load_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load_err = |path: &std::path::Path| match ChatModel::load(path) {
        Err(InferenceError::Load(m)) => m,
        Err(e) => panic!("expected a load error, got {e}"),
        Ok(_) => panic!("{} loaded", path.display()),
    };
    let missing = dir.path().join("missing.gguf");
    load_err(&missing);

    let garbage = dir.path().join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model at all, just some text").expect("write");
    assert!(load_err(&garbage).contains("not a valid GGUF"));

    // A header whose counts promise more than the file holds.
    let mut lying = b"GGUF".to_vec();
    lying.extend_from_slice(&3u32.to_le_bytes());
    lying.extend_from_slice(&u64::MAX.to_le_bytes());
    lying.extend_from_slice(&1_000_000u64.to_le_bytes());
    let lying_path = dir.path().join("lying.gguf");
    std::fs::write(&lying_path, &lying).expect("write");
    load_err(&lying_path);

    let real = std::fs::read(model_path()).expect("read the model");
    let truncated = dir.path().join("truncated.gguf");
    std::fs::write(&truncated, &real[..real.len() / 2]).expect("write");
    let m = load_err(&truncated);
    assert!(m.contains("truncated"), "{m}");

    // Cut inside the metadata.
    let cut = dir.path().join("cut.gguf");
    std::fs::write(&cut, &real[..4096]).expect("write");
    load_err(&cut);
}

#[test]
fn requantized_q8_0_copy_loads_and_answers() {
    let dir = tempfile::tempdir().expect("tempdir");
    let dst = dir.path().join("SmolLM2-135M-Instruct.Q8_0.gguf");
    let report = requantize(&model_path(), &dst, candle_core::quantized::GgmlDType::Q8_0)
        .expect("requantize");
    // 30 layers × 7 matrices were Q4_1; the Q8_0 embedding and the F32 norms stay as they are.
    assert_eq!(report.requantized, 210, "{report:?}");
    assert_eq!(report.left_slow, 0);
    assert_eq!(report.tensors, 272);
    assert!(report.bytes_after > report.bytes_before);
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("list")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let q8 = ChatModel::load(&dst).expect("load the Q8_0 copy");
    assert!(
        matches!(q8.engine, Engine::Q8(_)),
        "an all-Q8_0 model runs on Enclave's own forward pass"
    );
    assert_eq!(q8.context_length(), 4096);
    let prompt = question_prompt(&q8);
    let (g, _) = run(&q8, &prompt, &greedy(64));
    assert!(g.text.contains("Paris"), "{:?}", g.text);
    assert!(matches!(
        requantize(&model_path(), &dst, candle_core::quantized::GgmlDType::Q4_1),
        Err(InferenceError::InvalidRequest(_))
    ));
}

/// The largest difference between two logit vectors, relative to the largest logit magnitude.
fn relative_difference(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &x)| {
            if x > best.1 {
                (i, x)
            } else {
                best
            }
        })
        .0
}

/// Enclave's Q8_0 forward pass against candle's `quantized_llama` on the same file.
///
/// - The first token (no attention mixing yet) gives the same logits as candle up to the rounding
///   of the one kernel candle swaps on CPUs with AVX-512 VNNI (its repacked Q8_0 product for the
///   down projection). From the second token on, the last bits of the attention sums differ, and
///   8-bit activations turn such differences into rounding flips: candle's own prompt pass and its
///   token-by-token pass differ by a few per cent of the largest logit. Prompts of 24 tokens or
///   more also run on f32 activations here (gemm on dequantised weights). So the comparisons of a
///   whole prompt and of greedy decoding allow 10 % and ask for the same top token at every step;
///   a real fault (a wrong rotation, head grouping or cache position) moves logits by their
///   whole size.
/// - Where the arithmetic is the same, our passes agree exactly: the prompt token by token and in
///   chunks of 9 (both on 8-bit products) give the same logits.
#[test]
fn own_q8_0_forward_pass_matches_candle() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("SmolLM2-135M-Instruct.Q8_0.gguf");
    requantize(
        &model_path(),
        &path,
        candle_core::quantized::GgmlDType::Q8_0,
    )
    .expect("requantize");
    let mut reader = BufReader::new(File::open(&path).expect("open"));
    let content = gguf_file::Content::read(&mut reader).expect("read the GGUF");
    let ours = llama::Q8Llama::load(&content, &mut reader, 4096)
        .expect("load")
        .expect("the Q8_0 copy is covered");
    let mut candle = ModelWeights::from_gguf(content, &mut reader, &Device::Cpu).expect("candle");
    let prompt = question_prompt(&model());
    assert!(prompt.len() > 20);

    let candle_step = |weights: &mut ModelWeights, tokens: &[u32], pos: usize| -> Vec<f32> {
        let input = Tensor::new(tokens, &Device::Cpu)
            .and_then(|t| t.unsqueeze(0))
            .expect("input");
        weights
            .forward(&input, pos)
            .and_then(|l| l.squeeze(0))
            .and_then(|l| l.to_vec1())
            .expect("candle forward")
    };
    let ours_on = |tokens: &[u32], chunk: usize| -> Vec<f32> {
        let mut session = ours.session(tokens.len());
        let mut logits = Vec::new();
        for piece in tokens.chunks(chunk) {
            session.forward(piece, &mut logits).expect("forward");
        }
        logits
    };

    let first = relative_difference(
        &ours_on(&prompt[..1], 1),
        &candle_step(&mut candle.clone(), &prompt[..1], 0),
    );
    assert!(first < 0.05, "first-token logits differ by {first}");

    let mut session = ours.session(prompt.len() + 16);
    let mut logits = Vec::new();
    session.forward(&prompt, &mut logits).expect("forward");
    let token_by_token = ours_on(&prompt, 1);
    let chunks = relative_difference(&ours_on(&prompt, 9), &token_by_token);
    assert!(
        chunks < 1e-5,
        "the prompt in chunks of 9 differs by {chunks}"
    );
    let one_pass = relative_difference(&logits, &token_by_token);
    assert!(
        one_pass < 0.1,
        "the prompt in one pass differs by {one_pass}"
    );
    assert_eq!(argmax(&logits), argmax(&token_by_token));
    let mut expected = candle_step(&mut candle, &prompt, 0);
    let diff = relative_difference(&logits, &expected);
    assert!(diff < 0.1, "prompt logits differ from candle's by {diff}");
    assert_eq!(argmax(&logits), argmax(&expected));

    // Greedy decoding, both fed candle's choices so they see the same tokens.
    for step in 0..12 {
        let next = argmax(&expected) as u32;
        expected = candle_step(&mut candle, &[next], prompt.len() + step);
        session.forward(&[next], &mut logits).expect("decode");
        let diff = relative_difference(&logits, &expected);
        assert!(
            diff < 0.1,
            "step {step}: logits differ from candle's by {diff}"
        );
        assert_eq!(argmax(&logits), argmax(&expected), "step {step}");
    }
    // The session holds what it was sized for and refuses more.
    let mut full = ours.session(2);
    assert!(full.forward(&prompt[..2], &mut logits).is_ok());
    assert!(matches!(
        full.forward(&prompt[2..3], &mut logits),
        Err(InferenceError::Runtime(_))
    ));
}
