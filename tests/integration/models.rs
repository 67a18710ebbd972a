//! The default models fetched by `scripts/fetch-models.sh` (run by `scripts/test.sh`, which sets
//! `ENCLAVE_TEST_MODELS` to the fetched `models` directory) are found and verified by the server.

use crate::common::*;

pub(crate) fn fetched_models() -> std::path::PathBuf {
    let dir = std::env::var_os("ENCLAVE_TEST_MODELS").unwrap_or_else(|| {
        panic!("ENCLAVE_TEST_MODELS is not set: run the suite with scripts/test.sh, which fetches the models")
    });
    std::path::PathBuf::from(dir)
}

#[test]
fn fetched_models_verify_in_doctor_and_show_in_system_info() {
    let models = fetched_models();
    let cwd = tempfile::tempdir().expect("tempdir");
    let data = cwd.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    std::os::unix::fs::symlink(&models, data.join("models")).expect("link models");

    let (code, out, _) = run(cwd.path(), &["doctor"]);
    assert!(
        out.contains("[ok  ] model all-MiniLM-L6-v2 (embedding)"),
        "{out}"
    );
    assert!(
        out.contains("[ok  ] model SmolLM2-135M-Instruct (chat)"),
        "{out}"
    );
    assert_eq!(code, 0, "{out}");

    let server = Server::spawn(cwd, data, Options::default());
    let info = server.get("/api/v1/system/info").json();
    let statuses: Vec<(String, String)> = info["models"]
        .as_array()
        .expect("models")
        .iter()
        .map(|m| {
            (
                m["name"].as_str().unwrap_or_default().to_string(),
                m["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("all-MiniLM-L6-v2".to_string(), "ok".to_string()),
            ("SmolLM2-135M-Instruct".to_string(), "ok".to_string())
        ]
    );
}
