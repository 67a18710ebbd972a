//! Knowledge bases against the real server and the real embedding model: uploads of real documents
//! (Markdown, HTML, PDF, DOCX, CSV, JSON, GBK text, Chinese), the bad inputs of the issue (each fails on
//! its own with its code while the others finish), keyword / semantic / hybrid search in English and
//! Chinese with citations, duplicates, limits and quotas, scopes and tenant isolation, deletion freeing
//! storage, cancel and retry, resumption after `kill -9`, and `enclave index rebuild`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::models::fetched_models;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/documents")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A server with the fetched models, the knowledge settings given (TOML lines under `[knowledge]`),
/// tenants `eng` and `ops`, and the embedding model loaded.
fn knowledge_server(knowledge: &str) -> Server {
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(fetched_models(), data.join("models")).expect("link models");
    let config_path = cwd.path().join("enclave.toml");
    std::fs::write(&config_path, format!("[knowledge]\n{knowledge}\n")).expect("write config");
    let options = Options {
        args: vec!["--config".into(), config_path.display().to_string()],
        ..Options::default()
    };
    let server = Server::spawn(cwd, data, options);
    wait_for_embedding_model(&server);
    server.create_tenant("eng");
    server.create_tenant("ops");
    server
}

fn wait_for_embedding_model(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let models = server.get("/api/v1/models").json();
        let ready = models["models"]
            .as_array()
            .expect("models")
            .iter()
            .any(|m| m["kind"] == "embedding" && m["state"] == "ready");
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "embedding model not ready: {models}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A multipart/form-data body: (part name, file name, bytes).
fn multipart(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "----enclave-test-boundary-7d1f0c";
    let mut body = Vec::new();
    for (name, filename, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post_multipart(
    server: &Server,
    path: &str,
    key: &str,
    parts: &[(&str, Option<&str>, &[u8])],
) -> Reply {
    let (content_type, body) = multipart(parts);
    let result = agent()
        .post(&server.url(path))
        .header("authorization", format!("Bearer {key}"))
        .header("content-type", &content_type)
        .send(&body[..]);
    collect_reply(result)
}

fn collect_reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.expect("request");
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers: ureq::http::HeaderMap::new(),
        body,
    }
}

fn create_dataset(server: &Server, tenant: &str, key: &str, name: &str) -> String {
    let reply = server.call_with_key(
        "POST",
        &format!("/api/v1/tenants/{tenant}/datasets"),
        Some(&json!({ "name": name, "description": "test documents" })),
        key,
    );
    assert_eq!(reply.status, 201, "{}", reply.body);
    reply.json()["id"].as_str().expect("id").to_string()
}

/// Waits until the job has no unfinished document; returns it.
fn wait_for_job(server: &Server, tenant: &str, key: &str, job: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let reply = server.call_with_key(
            "GET",
            &format!("/api/v1/tenants/{tenant}/ingest-jobs/{job}"),
            None,
            key,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let job = reply.json();
        if job["status"] != "running" {
            return job;
        }
        assert!(
            Instant::now() < deadline,
            "ingestion did not finish: {job}\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn documents(server: &Server, tenant: &str, key: &str, dataset: &str) -> Vec<Value> {
    let reply = server.call_with_key(
        "GET",
        &format!("/api/v1/tenants/{tenant}/datasets/{dataset}/documents?limit=500"),
        None,
        key,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["documents"]
        .as_array()
        .expect("documents")
        .clone()
}

fn by_filename<'a>(docs: &'a [Value], name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["filename"] == name)
        .unwrap_or_else(|| panic!("no document {name} in {docs:?}"))
}

fn search(server: &Server, tenant: &str, key: &str, body: Value) -> Value {
    let reply = server.call_with_key(
        "POST",
        &format!("/api/v1/tenants/{tenant}/datasets/search"),
        Some(&body),
        key,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn first_filename(result: &Value) -> String {
    result["hits"][0]["filename"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// A DOCX whose document.xml inflates to 300 MB of zeros.
fn docx_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        zip.start_file("[Content_Types].xml", options).expect("zip");
        zip.write_all(b"<?xml version=\"1.0\"?><Types/>")
            .expect("zip");
        zip.start_file("word/document.xml", options).expect("zip");
        let zeros = vec![b'0'; 1 << 20];
        for _ in 0..300 {
            zip.write_all(&zeros).expect("zip");
        }
        zip.finish().expect("zip");
    }
    out.into_inner()
}

#[test]
fn documents_are_ingested_searched_and_cited_and_bad_ones_fail_alone() {
    // 11 MiB per file, so the 10 MiB single line is accepted and then fails on its own.
    let server = knowledge_server("max_file_bytes = 11534336");
    let (_, key) = server.create_key("eng", &["datasets:read", "datasets:write"]);
    let dataset = create_dataset(&server, "eng", &key, "Handbook");
    let upload_path = format!("/api/v1/tenants/eng/datasets/{dataset}/documents");

    // Preview first: what the Markdown guide would become, nothing stored.
    let guide = fixture("guide.md");
    let preview = post_multipart(
        &server,
        &format!("/api/v1/tenants/eng/datasets/{dataset}/preview"),
        &key,
        &[
            ("file", Some("guide.md"), &guide),
            (
                "chunking",
                None,
                br#"{"max_tokens": 64, "overlap_tokens": 8}"#,
            ),
        ],
    );
    assert_eq!(preview.status, 200, "{}", preview.body);
    let preview = preview.json();
    assert_eq!(preview["mime_type"], "text/markdown");
    let segments = preview["segments"].as_array().expect("segments");
    assert!(segments.len() >= 3, "{preview}");
    assert!(
        segments
            .iter()
            .all(|s| s["token_count"].as_u64().unwrap_or(999) <= 64),
        "{preview}"
    );
    assert!(
        segments.iter().any(|s| s["heading_path"]
            .as_array()
            .is_some_and(|p| p.iter().any(|h| h == "Requirements"))),
        "heading paths: {preview}"
    );
    let corrupt_preview = post_multipart(
        &server,
        &format!("/api/v1/tenants/eng/datasets/{dataset}/preview"),
        &key,
        &[("file", Some("truncated.pdf"), &fixture("truncated.pdf"))],
    );
    assert_eq!(corrupt_preview.status, 422, "{}", corrupt_preview.body);
    assert_eq!(
        corrupt_preview.json()["error"]["code"],
        "document_unreadable"
    );

    // Good and bad documents in one upload.
    let long_line = vec![b'a'; 10 * 1024 * 1024];
    let bomb = docx_bomb();
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("guide.md", guide.clone()),
        ("page.html", fixture("page.html")),
        ("sample.pdf", fixture("sample.pdf")),
        ("sample.docx", fixture("sample.docx")),
        ("chinese.docx", fixture("chinese.docx")),
        ("table.csv", fixture("table.csv")),
        ("data.json", fixture("data.json")),
        ("gbk.txt", fixture("gbk.txt")),
        ("truncated.pdf", fixture("truncated.pdf")),
        ("encrypted.pdf", fixture("encrypted.pdf")),
        ("empty.txt", Vec::new()),
        ("binary.txt", fixture("binary.txt")),
        ("one-line.txt", long_line),
        ("bomb.docx", bomb),
    ];
    let parts: Vec<(&str, Option<&str>, &[u8])> = files
        .iter()
        .map(|(name, bytes)| ("files", Some(*name), bytes.as_slice()))
        .collect();
    let reply = post_multipart(&server, &upload_path, &key, &parts);
    assert_eq!(reply.status, 202, "{}", reply.body);
    let upload = reply.json();
    let results = upload["results"].as_array().expect("results");
    assert_eq!(results.len(), files.len());
    assert!(
        results.iter().all(|r| r["document"].is_object()),
        "all accepted: {upload}"
    );
    let job = upload["job"]["id"].as_str().expect("job").to_string();

    let job = wait_for_job(&server, "eng", &key, &job);
    let docs = documents(&server, "eng", &key, &dataset);
    let expect_failed = [
        ("truncated.pdf", "corrupt_document"),
        ("encrypted.pdf", "encrypted_document"),
        ("empty.txt", "empty_document"),
        ("binary.txt", "binary_content"),
        ("one-line.txt", "line_too_long"),
        ("bomb.docx", "archive_bomb"),
    ];
    for (name, code) in expect_failed {
        let doc = by_filename(&docs, name);
        assert_eq!(doc["status"], "failed", "{doc}");
        assert_eq!(doc["error"]["code"], code, "{doc}");
        assert!(!doc["error"]["message"].as_str().unwrap_or("").is_empty());
        assert_eq!(doc["segments_done"], 0);
    }
    for name in [
        "guide.md",
        "page.html",
        "sample.pdf",
        "sample.docx",
        "chinese.docx",
        "table.csv",
        "data.json",
        "gbk.txt",
    ] {
        let doc = by_filename(&docs, name);
        assert_eq!(doc["status"], "ready", "{doc}\n{}", server.stderr());
        assert!(doc["segments_total"].as_u64().unwrap_or(0) >= 1);
        assert_eq!(doc["segments_total"], doc["segments_done"]);
    }
    assert_eq!(
        by_filename(&docs, "sample.pdf")["mime_type"],
        "application/pdf"
    );
    assert_eq!(
        by_filename(&docs, "sample.docx")["title"],
        "Enclave Sample Manual"
    );
    assert_eq!(job["status"], "done");
    assert_eq!(job["documents_total"], 14);
    assert_eq!(job["documents_ready"], 8);
    assert_eq!(job["documents_failed"], 6);

    // English: all three modes find the HTML page on key rotation, with citation fields.
    for mode in ["keyword", "semantic", "hybrid"] {
        let result = search(
            &server,
            "eng",
            &key,
            json!({
                "query": "rotate an API key without downtime", "dataset_ids": [dataset], "mode": mode, "top_k": 3
            }),
        );
        assert_eq!(first_filename(&result), "page.html", "{mode}: {result}");
        let hit = &result["hits"][0];
        assert_eq!(hit["document_title"], "Rotating API keys & secrets");
        assert!(
            hit["heading_path"]
                .as_array()
                .is_some_and(|p| !p.is_empty()),
            "{hit}"
        );
        assert!(hit["position"].is_u64());
        assert!(hit["text"]
            .as_str()
            .unwrap_or("")
            .to_lowercase()
            .contains("rotat"));
        if mode != "semantic" {
            assert!(hit["keyword_score"].is_number(), "{hit}");
        }
        if mode != "keyword" {
            assert!(hit["semantic_score"].is_number(), "{hit}");
        }
        let highlights = hit["highlights"].as_array().expect("highlights");
        assert!(!highlights.is_empty(), "{hit}");
        let chars: Vec<char> = hit["text"].as_str().unwrap_or("").chars().collect();
        for range in highlights {
            let (a, b) = (
                range[0].as_u64().expect("start") as usize,
                range[1].as_u64().expect("end") as usize,
            );
            let marked: String = chars[a..b].iter().collect::<String>().to_lowercase();
            assert!(
                ["rotat", "an", "api", "key", "without", "downtim"]
                    .iter()
                    .any(|t| marked.starts_with(t)),
                "{marked}"
            );
        }
    }
    // Hybrid's default fusion gives every hit its cosine (also those only the keyword list found);
    // reciprocal rank fusion is there on request; an unknown fusion is refused.
    let query = "rotate an API key without downtime";
    let relative = search(
        &server,
        "eng",
        &key,
        json!({"query": query, "dataset_ids": [dataset], "mode": "hybrid", "top_k": 10}),
    );
    let hits = relative["hits"].as_array().expect("hits");
    assert!(hits.len() > 3, "{relative}");
    assert!(
        hits.iter().all(|h| h["semantic_score"].is_number()),
        "{relative}"
    );
    assert!(
        hits.iter().all(|h| h["score"]
            .as_f64()
            .is_some_and(|s| (0.0..=1.0).contains(&s))),
        "{relative}"
    );
    let rrf = search(
        &server,
        "eng",
        &key,
        json!({"query": query, "dataset_ids": [dataset], "mode": "hybrid", "fusion": "rrf", "top_k": 3}),
    );
    assert_eq!(first_filename(&rrf), "page.html", "{rrf}");
    let reply = server.call_with_key(
        "POST",
        "/api/v1/tenants/eng/datasets/search",
        Some(
            &json!({"query": query, "dataset_ids": [dataset], "mode": "hybrid", "fusion": "borda"}),
        ),
        &key,
    );
    assert_eq!(reply.status, 400, "{}", reply.body);
    // The PDF cites its page.
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "Knowledge bases hold documents that people upload", "dataset_ids": [dataset], "mode": "keyword", "top_k": 5
        }),
    );
    let pdf_hit = result["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .find(|h| h["filename"] == "sample.pdf")
        .cloned();
    let pdf_hit = pdf_hit.unwrap_or_else(|| panic!("the PDF is not among {result}"));
    assert_eq!(pdf_hit["page"], 2, "{pdf_hit}");

    // Chinese: keyword (bigrams) finds the Chinese documents; the GBK file was decoded.
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "提取文档中的文字", "dataset_ids": [dataset], "mode": "keyword", "top_k": 5
        }),
    );
    let names: Vec<&str> = result["hits"]
        .as_array()
        .expect("hits")
        .iter()
        .filter_map(|h| h["filename"].as_str())
        .collect();
    assert!(
        names.contains(&"chinese.docx") || names.contains(&"guide.md"),
        "{result}"
    );
    let hit = &result["hits"][0];
    let chars: Vec<char> = hit["text"].as_str().unwrap_or("").chars().collect();
    let marked: Vec<String> = hit["highlights"]
        .as_array()
        .expect("highlights")
        .iter()
        .map(|r| {
            chars[r[0].as_u64().unwrap_or(0) as usize..r[1].as_u64().unwrap_or(0) as usize]
                .iter()
                .collect()
        })
        .collect();
    assert!(
        marked
            .iter()
            .any(|m| m.contains("文档") || m.contains("文字")),
        "{marked:?}"
    );
    let gbk = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/documents/gbk.txt"),
    );
    assert!(gbk.is_err(), "the fixture really is not UTF-8");
    let gbk_id = by_filename(&docs, "gbk.txt")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let segs = server
        .call_with_key(
            "GET",
            &format!("/api/v1/tenants/eng/datasets/{dataset}/documents/{gbk_id}/segments"),
            None,
            &key,
        )
        .json();
    let text = segs["segments"][0]["text"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        text.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "decoded GBK: {text}"
    );
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": text.chars().take(8).collect::<String>(), "dataset_ids": [dataset], "mode": "hybrid", "top_k": 3
        }),
    );
    assert_eq!(first_filename(&result), "gbk.txt", "{result}");

    // Filters, thresholds and bad requests.
    let guide_id = by_filename(&docs, "guide.md")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "rotate an API key", "dataset_ids": [dataset], "document_ids": [guide_id], "top_k": 5
        }),
    );
    assert!(
        result["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .all(|h| h["document_id"] == guide_id.as_str()),
        "{result}"
    );
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "rotate an API key", "dataset_ids": [dataset], "mode": "semantic", "score_threshold": 0.99
        }),
    );
    assert!(
        result["hits"].as_array().expect("hits").is_empty(),
        "{result}"
    );
    for (body, code) in [
        (
            json!({"query": "", "dataset_ids": [dataset]}),
            "invalid_request",
        ),
        (
            json!({"query": "x", "dataset_ids": [dataset], "top_k": 0}),
            "invalid_request",
        ),
        (
            json!({"query": "x", "dataset_ids": [dataset], "mode": "fuzzy"}),
            "malformed_json",
        ),
        (
            json!({"query": "x", "dataset_ids": ["nope"]}),
            "dataset_not_found",
        ),
    ] {
        let reply = server.call_with_key(
            "POST",
            "/api/v1/tenants/eng/datasets/search",
            Some(&body),
            &key,
        );
        assert_eq!(reply.error_code(), code, "{body}: {}", reply.body);
    }

    // The same file again is refused as a duplicate; a file over the limit is refused; the job of the
    // refused-only upload is null.
    let too_big = vec![b'x'; 11534336 + 1];
    let reply = post_multipart(
        &server,
        &upload_path,
        &key,
        &[
            ("files", Some("again.md"), &guide),
            ("files", Some("big.txt"), &too_big),
        ],
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let again = reply.json();
    assert!(again["job"].is_null(), "{again}");
    assert_eq!(again["results"][0]["error"]["code"], "duplicate_document");
    assert!(again["results"][0]["error"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("guide.md"));
    assert_eq!(again["results"][1]["error"]["code"], "file_too_large");

    // Usage: documents and embedding tokens were metered.
    let quotas = server.get("/api/v1/tenants/eng/quotas").json();
    let used = |metric: &str| {
        quotas["quotas"]
            .as_array()
            .expect("quotas")
            .iter()
            .find(|q| q["metric"] == metric)
            .map(|q| q["used_this_month"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert_eq!(used("documents_ingested"), 8, "{quotas}");
    assert!(used("embedding_tokens") > 100, "{quotas}");
    let stored = used("storage_bytes");
    assert!(stored > 10 * 1024 * 1024, "{quotas}");

    // Deleting a document removes it from every search and frees its storage and file.
    let page_id = by_filename(&docs, "page.html")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let file_path = server
        .data_dir
        .join(format!("tenants/eng/files/{dataset}/{page_id}"));
    assert!(file_path.is_file());
    let reply = server.call_with_key(
        "DELETE",
        &format!("/api/v1/tenants/eng/datasets/{dataset}/documents/{page_id}"),
        None,
        &key,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(!file_path.exists());
    for mode in ["keyword", "semantic", "hybrid"] {
        let result = search(
            &server,
            "eng",
            &key,
            json!({
                "query": "rotate an API key without downtime", "dataset_ids": [dataset], "mode": mode, "top_k": 10
            }),
        );
        assert!(
            result["hits"]
                .as_array()
                .expect("hits")
                .iter()
                .all(|h| h["document_id"] != page_id.as_str()),
            "{mode}: {result}"
        );
    }
    let quotas = server.get("/api/v1/tenants/eng/quotas").json();
    let after = quotas["quotas"]
        .as_array()
        .expect("quotas")
        .iter()
        .find(|q| q["metric"] == "storage_bytes")
        .and_then(|q| q["used_this_month"].as_u64())
        .unwrap_or(0);
    assert_eq!(after, stored - fixture("page.html").len() as u64);

    // Deleting the dataset removes everything of it.
    let reply = server.call_with_key(
        "DELETE",
        &format!("/api/v1/tenants/eng/datasets/{dataset}"),
        None,
        &key,
    );
    assert_eq!(reply.status, 204, "{}", reply.body);
    assert!(!server
        .data_dir
        .join(format!("tenants/eng/files/{dataset}"))
        .exists());
    let reply = server.call_with_key(
        "GET",
        &format!("/api/v1/tenants/eng/datasets/{dataset}"),
        None,
        &key,
    );
    assert_eq!(reply.error_code(), "dataset_not_found");
    let audit = server.get("/api/v1/tenants/eng/audit?limit=100").body;
    for action in [
        "dataset.create",
        "document.upload",
        "document.delete",
        "dataset.delete",
    ] {
        assert!(audit.contains(action), "{action} not audited");
    }
}

#[test]
fn scopes_limits_quotas_and_tenants_keep_knowledge_apart() {
    let server = knowledge_server("max_files_per_upload = 2");
    let (_, writer) = server.create_key("eng", &["datasets:write"]);
    let (_, reader) = server.create_key("eng", &["datasets:read"]);
    let (_, general_reader) = server.create_key("eng", &["read"]);
    let (_, ops_writer) = server.create_key("ops", &["datasets:write"]);
    let dataset = create_dataset(&server, "eng", &writer, "Policies");
    let upload_path = format!("/api/v1/tenants/eng/datasets/{dataset}/documents");

    // datasets:read reads and searches but does not upload; it reaches nothing else of the tenant.
    let reply = post_multipart(
        &server,
        &upload_path,
        &reader,
        &[("files", Some("a.md"), b"# A\n\nalpha text")],
    );
    assert_eq!(reply.error_code(), "insufficient_scope", "{}", reply.body);
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/eng/datasets", None, &reader)
            .status,
        200
    );
    assert_eq!(
        server
            .call_with_key("GET", "/api/v1/tenants/eng/datasets", None, &general_reader)
            .status,
        200
    );
    let reply = server.call_with_key("GET", "/api/v1/tenants/eng/members", None, &reader);
    assert_eq!(reply.error_code(), "insufficient_scope", "{}", reply.body);
    let reply = server.call_with_key(
        "POST",
        "/api/v1/tenants/eng/datasets",
        Some(&json!({"name": "x"})),
        &general_reader,
    );
    assert_eq!(reply.error_code(), "insufficient_scope");

    // Another tenant's key never sees this dataset, not even by id.
    let reply = server.call_with_key(
        "GET",
        &format!("/api/v1/tenants/eng/datasets/{dataset}"),
        None,
        &ops_writer,
    );
    assert_eq!(reply.status, 404, "{}", reply.body);
    let reply = server.call_with_key(
        "GET",
        &format!("/api/v1/tenants/ops/datasets/{dataset}"),
        None,
        &ops_writer,
    );
    assert_eq!(reply.error_code(), "dataset_not_found");
    let reply = server.call_with_key(
        "POST",
        "/api/v1/tenants/ops/datasets/search",
        Some(&json!({"query": "alpha", "dataset_ids": [dataset]})),
        &ops_writer,
    );
    assert_eq!(reply.error_code(), "dataset_not_found");

    // Bad dataset settings, names and uploads.
    for (body, code) in [
        (json!({"name": ""}), "invalid_request"),
        (json!({"name": "Policies"}), "dataset_exists"),
        (
            json!({"name": "x", "chunking": {"max_tokens": 4, "overlap_tokens": 0}}),
            "invalid_request",
        ),
        (
            json!({"name": "y", "chunking": {"max_tokens": 100, "overlap_tokens": 80}}),
            "invalid_request",
        ),
        (
            json!({"name": "z", "embedding_model": "no-such-model"}),
            "model_not_found",
        ),
    ] {
        let reply =
            server.call_with_key("POST", "/api/v1/tenants/eng/datasets", Some(&body), &writer);
        assert_eq!(reply.error_code(), code, "{body}: {}", reply.body);
    }
    let reply = server.call_with_key("POST", &upload_path, Some(&json!({"files": []})), &writer);
    assert_eq!(reply.status, 400, "{}", reply.body);
    let reply = post_multipart(
        &server,
        &upload_path,
        &writer,
        &[
            ("files", Some("1.md"), b"one"),
            ("files", Some("2.md"), b"two"),
            ("files", Some("3.md"), b"three"),
        ],
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    let results = reply.json()["results"].clone();
    assert_eq!(results[2]["error"]["code"], "too_many_files", "{results}");
    let job = reply.json()["job"]["id"].as_str().expect("job").to_string();
    wait_for_job(&server, "eng", &writer, &job);

    // Storage quota: the tenant's own storage_bytes quota refuses what would pass it.
    let reply = server.put_json("/api/v1/tenants/eng/quotas", &json!({"storage_bytes": 20}));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = post_multipart(
        &server,
        &upload_path,
        &writer,
        &[("files", Some("big.md"), b"0123456789 0123456789 0123456789")],
    );
    assert_eq!(reply.status, 202, "{}", reply.body);
    assert_eq!(
        reply.json()["results"][0]["error"]["code"],
        "quota_exceeded",
        "{}",
        reply.body
    );

    // The embedding-token quota: a document that would pass it fails with quota_exceeded.
    let reply = server.put_json(
        "/api/v1/tenants/eng/quotas",
        &json!({"storage_bytes": null, "embedding_tokens": 1}),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = post_multipart(
        &server,
        &upload_path,
        &writer,
        &[(
            "files",
            Some("q.md"),
            b"# Quota\n\nThis text needs more than one token.",
        )],
    );
    let job = reply.json()["job"]["id"].as_str().expect("job").to_string();
    wait_for_job(&server, "eng", &writer, &job);
    let docs = documents(&server, "eng", &writer, &dataset);
    assert_eq!(
        by_filename(&docs, "q.md")["error"]["code"],
        "quota_exceeded",
        "{docs:?}"
    );

    // Retry after the quota is lifted: the document becomes ready.
    server.put_json(
        "/api/v1/tenants/eng/quotas",
        &json!({"embedding_tokens": null}),
    );
    let id = by_filename(&docs, "q.md")["id"]
        .as_str()
        .expect("id")
        .to_string();
    let reply = server.call_with_key("POST", &format!("{upload_path}/{id}/retry"), None, &writer);
    assert_eq!(reply.status, 202, "{}", reply.body);
    wait_for_job(&server, "eng", &writer, &job);
    let doc = server
        .call_with_key("GET", &format!("{upload_path}/{id}"), None, &writer)
        .json();
    assert_eq!(doc["status"], "ready", "{doc}");
    let reply = server.call_with_key("POST", &format!("{upload_path}/{id}/retry"), None, &writer);
    assert_eq!(reply.error_code(), "document_state_conflict");
}

/// Many documents, so that a `kill -9` lands in the middle of the ingestion.
fn many_documents(n: usize) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut text = format!("# Report {i}\n\n");
            for p in 0..12 {
                text.push_str(&format!(
                    "Paragraph {p} of report {i} discusses topic{i} and the maintenance window of system{i}. \
                     Operators should verify the backups and the certificates before the change. \n\n"
                ));
            }
            (format!("report-{i}.md"), text.into_bytes())
        })
        .collect()
}

#[test]
fn ingestion_resumes_after_kill_and_cancel_and_rebuild_work() {
    let server = knowledge_server("embedding_batch = 4");
    let (_, key) = server.create_key("eng", &["datasets:write"]);
    let dataset = create_dataset(&server, "eng", &key, "Reports");
    let upload_path = format!("/api/v1/tenants/eng/datasets/{dataset}/documents");
    let docs = many_documents(30);
    let parts: Vec<(&str, Option<&str>, &[u8])> = docs
        .iter()
        .map(|(n, b)| ("files", Some(n.as_str()), b.as_slice()))
        .collect();
    let reply = post_multipart(&server, &upload_path, &key, &parts);
    assert_eq!(reply.status, 202, "{}", reply.body);
    let job = reply.json()["job"]["id"].as_str().expect("job").to_string();

    // Kill it while documents are being embedded.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let j = server
            .call_with_key(
                "GET",
                &format!("/api/v1/tenants/eng/ingest-jobs/{job}"),
                None,
                &key,
            )
            .json();
        if j["documents_ready"].as_u64().unwrap_or(0) >= 2 {
            assert!(
                j["documents_ready"].as_u64().unwrap_or(0) < 30,
                "finished before the kill: {j}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no progress: {j}");
        std::thread::sleep(Duration::from_millis(50));
    }
    signal(server.pid(), nix::sys::signal::Signal::SIGKILL);
    let mut server = server;
    let _ = wait_timeout(&mut server.child, Duration::from_secs(10));
    let cwd = std::mem::replace(&mut server.cwd, tempfile::tempdir().expect("tempdir"));
    drop(server);
    let data = cwd.path().join("data");
    let config = cwd.path().join("enclave.toml");
    let server = Server::spawn(
        cwd,
        data,
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    let job = wait_for_job(&server, "eng", &key, &job);
    assert_eq!(job["documents_ready"], 30, "{job}");
    assert_eq!(job["segments_done"], job["segments_total"], "{job}");
    // Every segment once: each report is found by its own topic, first, and only once.
    for i in [0usize, 17, 29] {
        let result = search(
            &server,
            "eng",
            &key,
            json!({
                "query": format!("topic{i}"), "dataset_ids": [dataset], "mode": "keyword", "top_k": 100
            }),
        );
        let hits = result["hits"].as_array().expect("hits");
        assert_eq!(first_filename(&result), format!("report-{i}.md"));
        let ids: std::collections::HashSet<i64> = hits
            .iter()
            .filter_map(|h| h["segment_id"].as_i64())
            .collect();
        assert_eq!(ids.len(), hits.len(), "duplicate segments: {result}");
        let positions: Vec<u64> = hits
            .iter()
            .filter(|h| h["filename"] == format!("report-{i}.md").as_str())
            .filter_map(|h| h["position"].as_u64())
            .collect();
        let unique: std::collections::HashSet<u64> = positions.iter().copied().collect();
        assert_eq!(
            unique.len(),
            positions.len(),
            "a position twice: {positions:?}"
        );
    }

    // Cancel: a new upload cancelled at once leaves nothing searchable of it.
    let more = many_documents(40)
        .into_iter()
        .skip(30)
        .map(|(n, b)| (n.replace("report", "late"), b))
        .collect::<Vec<_>>();
    let parts: Vec<(&str, Option<&str>, &[u8])> = more
        .iter()
        .map(|(n, b)| ("files", Some(n.as_str()), b.as_slice()))
        .collect();
    let reply = post_multipart(&server, &upload_path, &key, &parts);
    let late_job = reply.json()["job"]["id"].as_str().expect("job").to_string();
    let reply = server.call_with_key(
        "POST",
        &format!("/api/v1/tenants/eng/ingest-jobs/{late_job}/cancel"),
        None,
        &key,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let cancelled = wait_for_job(&server, "eng", &key, &late_job);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_eq!(
        cancelled["documents_cancelled"].as_u64().unwrap_or(0)
            + cancelled["documents_ready"].as_u64().unwrap_or(0),
        10
    );
    std::thread::sleep(Duration::from_millis(500));
    let docs = documents(&server, "eng", &key, &dataset);
    let cancelled_ids: Vec<String> = docs
        .iter()
        .filter(|d| d["status"] == "cancelled")
        .filter_map(|d| d["id"].as_str().map(str::to_string))
        .collect();
    assert!(!cancelled_ids.is_empty(), "nothing was cancelled");
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "maintenance window backups certificates", "dataset_ids": [dataset], "mode": "hybrid", "top_k": 100
        }),
    );
    for hit in result["hits"].as_array().expect("hits") {
        assert!(
            !cancelled_ids
                .iter()
                .any(|id| hit["document_id"] == id.as_str()),
            "cancelled document found: {hit}"
        );
    }

    // `enclave index rebuild` makes the keyword index again from the database.
    let (_, _, cwd) = server.terminate();
    let data = cwd.path().join("data");
    std::fs::remove_dir_all(data.join("tenants/eng/index")).expect("remove index");
    let (code, out, err) = run(
        cwd.path(),
        &[
            "--data-dir",
            data.to_str().expect("path"),
            "index",
            "rebuild",
            "--tenant",
            "eng",
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("rebuilt"), "{out}");
    let (code, _, err) = run(
        cwd.path(),
        &[
            "--data-dir",
            data.to_str().expect("path"),
            "index",
            "rebuild",
            "--tenant",
            "nope",
        ],
    );
    assert_ne!(code, 0);
    assert!(err.contains("nope"), "{err}");
    let config = cwd.path().join("enclave.toml");
    let server = Server::spawn(
        cwd,
        data,
        Options {
            args: vec!["--config".into(), config.display().to_string()],
            ..Options::default()
        },
    );
    let result = search(
        &server,
        "eng",
        &key,
        json!({
            "query": "topic17", "dataset_ids": [dataset], "mode": "keyword", "top_k": 3
        }),
    );
    assert_eq!(first_filename(&result), "report-17.md", "{result}");
}
