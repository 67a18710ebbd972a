//! The OpenAI-compatible `/v1` API against the real default models (fetched by scripts/fetch-models.sh,
//! found through `ENCLAVE_TEST_MODELS`): keys and scopes, chat (whole and streamed), completions,
//! embeddings, bad input, metering and quotas, the bounded queue and cancellation, the official
//! `openai` Python client, and the `enclave models` commands.

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::models::fetched_models;

/// A server whose data directory links the fetched models, with extra config (TOML) if given; waits
/// until every model is loaded. Tenant `eng` exists.
pub(crate) fn models_server(config: &str) -> Server {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(fetched_models(), data.join("models")).expect("link models");
    let config_path = cwd.path().join("enclave.toml");
    std::fs::write(&config_path, config).expect("write config");
    let options = Options {
        args: vec!["--config".into(), config_path.display().to_string()],
        ..Options::default()
    };
    let server = Server::spawn(cwd, data, options);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let models = server.get("/api/v1/models").json();
        let states: Vec<String> = models["models"]
            .as_array()
            .expect("models")
            .iter()
            .map(|m| m["state"].as_str().unwrap_or_default().to_string())
            .collect();
        assert!(
            !states.iter().any(|s| s == "failed"),
            "a model failed to load: {models}\n{}",
            server.stderr()
        );
        if states.len() == 2 && states.iter().all(|s| s == "ready") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "models not ready after 180 s: {models}\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(server.create_tenant("eng").status, 201);
    server
}

const PARIS: &str = "What is the capital city of France? Answer in one sentence.";

fn chat(server: &Server, key: &str, body: Value) -> Reply {
    server.call_with_key("POST", "/v1/chat/completions", Some(&body), key)
}

/// A streamed request: the `data:` payloads in order (the last one `[DONE]` when complete).
fn stream_events(server: &Server, path: &str, key: &str, body: &Value) -> Vec<String> {
    let response = agent()
        .post(&server.url(path))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .send(body.to_string())
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    let reader = BufReader::new(response.into_body().into_reader());
    reader
        .lines()
        .map_while(Result::ok)
        .filter_map(|line| line.strip_prefix("data: ").map(str::to_string))
        .collect()
}

fn used(server: &Server, metric: &str) -> u64 {
    server.get("/api/v1/tenants/eng/quotas").json()["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["metric"] == metric)
        .and_then(|q| q["used_this_month"].as_u64())
        .unwrap_or_else(|| panic!("no {metric}"))
}

#[test]
fn openai_api_answers_from_the_local_models_with_keys_quotas_and_metering() {
    let server = models_server("");
    let (_, key) = server.create_key("eng", &["inference"]);
    let (_, read_key) = server.create_key("eng", &["read"]);

    // Scopes: /v1 needs `inference`; an inference-only key does not reach the tenant API.
    let refused = server.call_with_key("GET", "/v1/models", None, &read_key);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.error_code(), "insufficient_scope");
    let refused = server.call_with_key("GET", "/api/v1/tenants/eng", None, &key);
    assert_eq!(refused.status, 403, "{}", refused.body);
    let anonymous = server.call("GET", "/v1/models", None, None);
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"]["type"], "authentication_error");

    let models = server.call_with_key("GET", "/v1/models", None, &key).json();
    assert_eq!(models["object"], "list");
    let ids: Vec<&str> = models["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|m| m["id"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids, ["SmolLM2-135M-Instruct", "all-MiniLM-L6-v2"]);

    // A greedy answer mentions Paris; usage and finish reason are reported.
    let greedy = json!({
        "model": "SmolLM2-135M-Instruct",
        "messages": [{"role": "system", "content": "You are a helpful assistant."},
                     {"role": "user", "content": PARIS}],
        "temperature": 0, "max_tokens": 40,
    });
    let answer = chat(&server, &key, greedy.clone());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = answer.json();
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("content")
        .to_string();
    assert!(text.contains("Paris"), "{text}");
    assert_eq!(answer["object"], "chat.completion");
    assert!(["stop", "length"].contains(
        &answer["choices"][0]["finish_reason"]
            .as_str()
            .unwrap_or_default()
    ));
    let (prompt_tokens, completion_tokens) = (
        answer["usage"]["prompt_tokens"].as_u64().expect("prompt"),
        answer["usage"]["completion_tokens"]
            .as_u64()
            .expect("completion"),
    );
    assert!(prompt_tokens > 10 && completion_tokens > 0 && completion_tokens <= 40);

    // Streamed, the same greedy request gives the same text, chunk by chunk, then usage and [DONE].
    let mut streamed = greedy.clone();
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let events = stream_events(&server, "/v1/chat/completions", &key, &streamed);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).expect("chunk JSON"))
        .collect();
    assert!(chunks.len() > 3, "token by token: {events:?}");
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let joined: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(joined, text);
    let usage = &chunks[chunks.len() - 1];
    assert_eq!(usage["choices"].as_array().map(Vec::len), Some(0));
    assert_eq!(usage["usage"]["completion_tokens"], completion_tokens);

    // With a seed, sampling at temperature 1 repeats itself.
    let seeded = json!({"messages": [{"role": "user", "content": "Tell me about cats."}],
                        "temperature": 1.0, "seed": 42, "max_tokens": 24});
    let first =
        chat(&server, &key, seeded.clone()).json()["choices"][0]["message"]["content"].clone();
    let second = chat(&server, &key, seeded).json()["choices"][0]["message"]["content"].clone();
    assert_eq!(first, second);

    // Plain completions.
    let completion = server.call_with_key(
        "POST",
        "/v1/completions",
        Some(&json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})),
        &key,
    );
    assert_eq!(completion.status, 200, "{}", completion.body);
    assert_eq!(completion.json()["object"], "text_completion");

    // Embeddings: one string or several, float or base64 (the same numbers), truncation reported.
    let long = "word ".repeat(600);
    let emb = server.call_with_key(
        "POST",
        "/v1/embeddings",
        Some(
            &json!({"input": ["The cat sits on the mat.", "A kitten is resting on a rug.",
                               "Quarterly revenue grew by 8 percent.", long]}),
        ),
        &key,
    );
    assert_eq!(emb.status, 200, "{}", emb.body);
    let emb = emb.json();
    let vectors: Vec<Vec<f64>> = emb["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .expect("floats")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect()
        })
        .collect();
    assert_eq!(vectors[0].len(), 384);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!(
        (dot(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-4,
        "normalised"
    );
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.2);
    assert_eq!(emb["data"][3]["truncated"], true);
    assert_eq!(emb["data"][0]["truncated"], false);
    let embedding_tokens = emb["usage"]["prompt_tokens"].as_u64().expect("tokens");
    let b64 = server
        .call_with_key(
            "POST",
            "/v1/embeddings",
            Some(&json!({"input": "The cat sits on the mat.", "encoding_format": "base64"})),
            &key,
        )
        .json();
    let raw = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        b64["data"][0]["embedding"].as_str().expect("base64"),
    )
    .expect("decodes");
    let first: Vec<f64> = raw
        .chunks(4)
        .map(|c| f64::from(f32::from_le_bytes([c[0], c[1], c[2], c[3]])))
        .collect();
    assert!(first
        .iter()
        .zip(&vectors[0])
        .all(|(a, b)| (a - b).abs() < 1e-6));

    // Bad input: clear errors in OpenAI's shape, naming the field.
    let huge = "Paris is lovely. ".repeat(2500);
    for (path, body, status, code, param) in [
        (
            "/v1/chat/completions",
            json!({"messages": []}),
            400,
            "invalid_request",
            Some("messages"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "invalid_request",
            Some("messages[0].role"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "  "}]}),
            400,
            "invalid_request",
            Some("messages[0].content"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 1_000_000_000u64}),
            400,
            "invalid_request",
            Some("max_tokens"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}),
            400,
            "invalid_request",
            Some("temperature"),
        ),
        (
            "/v1/chat/completions",
            json!({"messages": [{"role": "user", "content": huge}]}),
            400,
            "context_length_exceeded",
            None,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]}),
            404,
            "model_not_found",
            None,
        ),
        (
            "/v1/chat/completions",
            json!({"model": "all-MiniLM-L6-v2", "messages": [{"role": "user", "content": "hi"}]}),
            400,
            "invalid_request",
            None,
        ),
        (
            "/v1/embeddings",
            json!({"input": ""}),
            400,
            "invalid_request",
            Some("input[0]"),
        ),
        (
            "/v1/embeddings",
            json!({"input": "x", "encoding_format": "hex"}),
            400,
            "invalid_request",
            Some("encoding_format"),
        ),
    ] {
        let reply = server.call_with_key("POST", path, Some(&body), &key);
        assert_eq!(reply.status, status, "{body}: {}", reply.body);
        assert_eq!(reply.error_code(), code, "{body}");
        let error = &reply.json()["error"];
        assert!(error["type"].is_string(), "{}", reply.body);
        if let Some(param) = param {
            assert_eq!(error["param"], param, "{}", reply.body);
        }
    }
    let mut invalid_utf8 = br#"{"messages": [{"role": "user", "content": "caf"#.to_vec();
    invalid_utf8.extend_from_slice(&[0xff, 0xfe]);
    invalid_utf8.extend_from_slice(br#""}]}"#);
    let reply = agent()
        .post(&server.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .send(&invalid_utf8[..])
        .expect("request");
    assert_eq!(reply.status(), 400);

    // Metering: what the answers reported is what the tenant was charged.
    let tokens_in = used(&server, "chat_tokens_in");
    let tokens_out = used(&server, "chat_tokens_out");
    assert!(tokens_in >= 3 * prompt_tokens, "{tokens_in}");
    assert!(tokens_out >= 2 * completion_tokens, "{tokens_out}");
    assert!(used(&server, "embedding_tokens") >= embedding_tokens);

    // A quota on output tokens caps max_tokens to what is left, then refuses.
    let set = server.put_json(
        "/api/v1/tenants/eng/quotas",
        &json!({"chat_tokens_out": tokens_out + 5}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let capped = chat(
        &server,
        &key,
        json!({"messages": [{"role": "user", "content": "Count to twenty."}],
                                             "temperature": 0, "max_tokens": 50}),
    );
    assert_eq!(capped.status, 200, "{}", capped.body);
    let capped = capped.json();
    assert!(
        capped["usage"]["completion_tokens"].as_u64().expect("n") <= 5,
        "{capped}"
    );
    // With nothing left, a request is refused before any work, in OpenAI's quota shape.
    let set = server.put_json(
        "/api/v1/tenants/eng/quotas",
        &json!({"chat_tokens_out": used(&server, "chat_tokens_out")}),
    );
    assert_eq!(set.status, 200, "{}", set.body);
    let refused = chat(
        &server,
        &key,
        json!({"messages": [{"role": "user", "content": "More."}]}),
    );
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.error_code(), "quota_exceeded");
    assert_eq!(refused.json()["error"]["type"], "insufficient_quota");
    assert!(refused.header("retry-after").is_some());
}

#[test]
fn a_full_queue_answers_503_and_a_client_that_leaves_frees_its_slot() {
    // One generation at a time and no waiting place: a second request while one runs is refused.
    let server = models_server("[inference]\nchat_concurrency = 1\nchat_queue = 0\n");
    let (_, key) = server.create_key("eng", &["inference"]);
    let long = json!({"messages": [{"role": "user", "content": "Write a long story about a dragon."}],
                      "temperature": 0.8, "max_tokens": 1000, "stream": true});
    let response = agent()
        .post(&server.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", "application/json")
        .send(long.to_string())
        .expect("request");
    let mut reader = BufReader::new(response.into_body().into_reader());
    let mut line = String::new();
    reader.read_line(&mut line).expect("first chunk");
    assert!(line.starts_with("data: "), "{line}");

    let busy = chat(
        &server,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
    );
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert_eq!(busy.error_code(), "inference_busy");
    assert!(busy.header("retry-after").is_some());

    // The first client leaves: its generation stops at the next token and the slot is free again.
    drop(reader);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = chat(
            &server,
            &key,
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}),
        );
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert!(
            Instant::now() < deadline,
            "the abandoned generation was not cancelled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_official_openai_python_client_works_unmodified() {
    let python = std::env::var("ENCLAVE_TEST_PYTHON").unwrap_or_else(|_| {
        panic!("ENCLAVE_TEST_PYTHON is not set: scripts/test.sh points it at a venv with the openai package")
    });
    let server = models_server("");
    let (_, key) = server.create_key("eng", &["inference"]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/compat/openai_client.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .env("ENCLAVE_BASE_URL", server.url("/v1"))
        .env("ENCLAVE_API_KEY", &key)
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
}

#[test]
fn without_models_the_server_runs_and_says_what_is_unavailable() {
    let server = Server::start();
    assert_eq!(server.create_tenant("eng").status, 201);
    let (_, key) = server.create_key("eng", &["inference"]);
    assert_eq!(
        server.get("/api/v1/models").json()["models"],
        json!([]),
        "no models installed"
    );
    let reply = chat(
        &server,
        &key,
        json!({"messages": [{"role": "user", "content": "hi"}]}),
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(reply.error_code(), "model_not_found");
    assert!(reply.body.contains("fetch-models.sh"), "{}", reply.body);
    let reply = server.call_with_key("POST", "/v1/embeddings", Some(&json!({"input": "x"})), &key);
    assert_eq!(reply.error_code(), "model_not_found");
}

#[test]
fn models_cli_imports_converts_verifies_and_removes() {
    let fetched = fetched_models();
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data").display().to_string();
    let gguf = fetched.join("SmolLM2-135M-Instruct/SmolLM2-135M-Instruct.Q4_1.gguf");
    let models = |args: &[&str]| {
        let mut all = vec!["--data-dir", data.as_str(), "models"];
        all.extend_from_slice(args);
        run(cwd.path(), &all)
    };

    // A truncated GGUF is refused with the reason and leaves nothing behind.
    let broken = cwd.path().join("broken.gguf");
    let bytes = std::fs::read(&gguf).expect("read gguf");
    std::fs::write(&broken, &bytes[..bytes.len() / 2]).expect("write");
    let (code, _, err) = models(&["import", &broken.display().to_string()]);
    assert_ne!(code, 0);
    assert!(err.contains("truncated"), "{err}");
    let (_, out, _) = models(&["list"]);
    assert!(out.contains("no models"), "{out}");

    // The shipped Q4_1 file is converted to Q8_0 and loads; the embedding model imports as is.
    let (code, out, err) = models(&[
        "import",
        &gguf.display().to_string(),
        "--name",
        "smol",
        "--license",
        "apache-2.0",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("converted from Q4_1 to Q8_0"), "{out}");
    let (code, out, err) = models(&[
        "import",
        &fetched.join("all-MiniLM-L6-v2").display().to_string(),
        "--name",
        "minilm",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (_, out, _) = models(&["list", "--json"]);
    let listed: Value = serde_json::from_str(&out).expect("json");
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .map(|m| m["manifest"]["name"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(names, ["minilm", "smol"]);
    let smol = &listed[1]["manifest"];
    assert_eq!(smol["quantization"], "Q8_0");
    assert_eq!(smol["requantized_from"], "Q4_1");
    assert!(smol["files"].as_array().is_some_and(|f| f
        .iter()
        .all(|f| f["sha256"].as_str().is_some_and(|s| s.len() == 64))));

    let (code, out, _) = models(&["verify"]);
    assert_eq!(code, 0, "{out}");
    // `enclave doctor` checks imported models too, not only the defaults.
    let (_, doctor, _) = run(cwd.path(), &["--data-dir", &data, "doctor"]);
    assert!(doctor.contains("[ok  ] model smol (chat)"), "{doctor}");
    assert!(
        doctor.contains("[ok  ] model minilm (embedding)"),
        "{doctor}"
    );
    // A damaged file is found.
    let tokenizer = cwd.path().join("data/models/minilm/tokenizer.json");
    std::fs::write(&tokenizer, b"{}").expect("damage");
    let (code, out, _) = models(&["verify", "minilm"]);
    assert_ne!(code, 0);
    assert!(out.contains("[FAIL] minilm"), "{out}");
    let (code, _, _) = models(&["remove", "minilm"]);
    assert_eq!(code, 0);
    let (_, out, _) = models(&["list"]);
    assert!(out.contains("smol") && !out.contains("minilm"), "{out}");
}

#[test]
fn a_model_routed_to_another_enclave_answers_under_local_keys_quotas_and_metering() {
    let upstream = models_server("");
    let (_, upstream_key) = upstream.create_key("eng", &["inference"]);
    let front = Server::start();
    assert_eq!(front.create_tenant("eng").status, 201);
    let (_, key) = front.create_key("eng", &["inference"]);
    let provider = json!({
        "name": "gpu-box", "base_url": upstream.url("/v1"), "api_key": upstream_key,
        "models": [{"name": "remote-smol", "upstream": "SmolLM2-135M-Instruct", "kind": "chat"},
                   {"name": "remote-minilm", "upstream": "all-MiniLM-L6-v2", "kind": "embedding"}],
    });
    let created = front.post_json("/api/v1/providers", &provider);
    assert_eq!(created.status, 201, "{}", created.body);
    assert!(
        !created.body.contains(&upstream_key),
        "the key is never shown"
    );
    assert_eq!(created.json()["api_key_set"], true);
    let id = created.json()["id"].as_str().expect("id").to_string();
    let db = std::fs::read(front.data_dir.join("system.db")).unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&db).contains(&upstream_key),
        "sealed at rest"
    );

    let models = front.call_with_key("GET", "/v1/models", None, &key).json();
    assert!(
        models["data"]
            .as_array()
            .expect("data")
            .iter()
            .any(|m| m["id"] == "remote-smol" && m["state"] == "remote"),
        "{models}"
    );

    let question = json!({"model": "remote-smol", "messages": [{"role": "user", "content": PARIS}],
                          "temperature": 0, "max_tokens": 40});
    let answer = chat(&front, &key, question.clone());
    assert_eq!(answer.status, 200, "{}", answer.body);
    let answer = answer.json();
    assert_eq!(answer["model"], "remote-smol");
    let text = answer["choices"][0]["message"]["content"]
        .as_str()
        .expect("text")
        .to_string();
    assert!(text.contains("Paris"), "{text}");
    let completion_tokens = answer["usage"]["completion_tokens"]
        .as_u64()
        .expect("usage");

    let mut streamed = question.clone();
    streamed["stream"] = json!(true);
    let events = stream_events(&front, "/v1/chat/completions", &key, &streamed);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let joined: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).expect("chunk"))
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(joined, text, "the stream relays the same greedy answer");
    assert!(
        events
            .iter()
            .all(|e| !e.contains("\"usage\"") || e == "[DONE]"),
        "no usage chunk unless asked"
    );

    let emb = front.call_with_key(
        "POST",
        "/v1/embeddings",
        Some(&json!({"model": "remote-minilm", "input": "The cat sits on the mat."})),
        &key,
    );
    assert_eq!(emb.status, 200, "{}", emb.body);
    assert_eq!(
        emb.json()["data"][0]["embedding"].as_array().map(Vec::len),
        Some(384)
    );

    // Metered here with the counts the provider reported.
    assert_eq!(used(&front, "chat_tokens_out"), 2 * completion_tokens);
    assert!(used(&front, "embedding_tokens") > 0);

    // The provider refusing Enclave's key is the provider's problem (502), not the client's.
    let mut wrong = provider.clone();
    wrong["api_key"] = json!("ek_live_wrong");
    assert_eq!(
        front
            .put_json(&format!("/api/v1/providers/{id}"), &wrong)
            .status,
        200
    );
    let refused = chat(&front, &key, question.clone());
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert_eq!(refused.error_code(), "provider_unavailable");

    // Removed: the name no longer routes anywhere.
    let removed = front.call(
        "DELETE",
        &format!("/api/v1/providers/{id}"),
        None,
        front.admin.as_ref(),
    );
    assert_eq!(removed.status, 204, "{}", removed.body);
    let gone = chat(&front, &key, question);
    assert_eq!(gone.status, 404, "{}", gone.body);
    assert_eq!(gone.error_code(), "model_not_found");
}

#[test]
fn a_generation_past_the_request_timeout_is_stopped_with_504() {
    let server = models_server("[inference]\nrequest_timeout_secs = 1\n");
    let (_, key) = server.create_key("eng", &["inference"]);
    let started = Instant::now();
    let reply = chat(
        &server,
        &key,
        json!({"messages": [{"role": "user", "content": "Write a long story about a dragon."}],
               "temperature": 0.8, "max_tokens": 3000}),
    );
    assert_eq!(reply.status, 504, "{}", reply.body);
    assert_eq!(reply.error_code(), "inference_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Nothing was generated for the client, so nothing is charged as output.
    assert_eq!(used(&server, "chat_tokens_out"), 0);
}

#[test]
fn concurrent_embedding_requests_each_get_their_own_vectors() {
    let server = models_server("");
    let (_, key) = server.create_key("eng", &["inference"]);
    let texts: Vec<String> = (0..12)
        .map(|i| {
            format!(
                "Request {i} asks about topic number {} in some detail.",
                i * 7
            )
        })
        .collect();
    let embed = |input: Value| {
        let reply = server.call_with_key(
            "POST",
            "/v1/embeddings",
            Some(&json!({"input": input})),
            &key,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|d| {
                d["embedding"]
                    .as_array()
                    .expect("vector")
                    .iter()
                    .map(|x| x.as_f64().unwrap_or(f64::NAN))
                    .collect::<Vec<f64>>()
            })
            .collect::<Vec<_>>()
    };
    // Alone, one at a time: the reference.
    let alone: Vec<Vec<f64>> = texts.iter().map(|t| embed(json!(t)).remove(0)).collect();
    // Twelve at once, two inputs each, from twelve threads: the embedding thread runs whatever waits as
    // one batch and must hand every request its own vectors back.
    let together: Vec<Vec<Vec<f64>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..12)
            .map(|i| {
                let pair = json!([texts[i], texts[(i + 1) % 12]]);
                let embed = &embed;
                scope.spawn(move || embed(pair))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    for (i, pair) in together.iter().enumerate() {
        for (vector, expected) in pair.iter().zip([&alone[i], &alone[(i + 1) % 12]]) {
            let cosine: f64 = vector.iter().zip(expected.iter()).map(|(a, b)| a * b).sum();
            assert!(
                cosine > 0.9999,
                "request {i} got someone else's vector (cosine {cosine})"
            );
        }
    }
}
