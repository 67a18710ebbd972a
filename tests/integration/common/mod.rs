//! Test harness: starts the real `enclave` binary on a random loopback port with a temporary data
//! directory, and talks to it over HTTP.

#![allow(dead_code)]

pub mod samba;
pub mod slapd;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub use serde_json::{json, Value};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_enclave")
}

/// A command for the binary with a clean `ENCLAVE_*` environment, run in `cwd`.
pub fn enclave(cwd: &Path) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(cwd);
    for (key, _) in std::env::vars() {
        if key.starts_with("ENCLAVE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// How to start a server.
#[derive(Clone)]
pub struct Options {
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Pass `--data-dir <tmp>/data` (otherwise the embedded default `./data` in the temp cwd applies).
    pub explicit_data_dir: bool,
    /// Sign the administrator in once the server is up (see `Server::sign_in_admin`).
    pub sign_in: bool,
    /// Install an enterprise licence bound to the installation once signed in, so tests are not held
    /// to the community plan's limits (licence tests turn this off).
    pub enterprise_license: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            args: Vec::new(),
            env: vec![("ENCLAVE_LISTEN".into(), "127.0.0.1:0".into())],
            explicit_data_dir: true,
            sign_in: true,
            enterprise_license: true,
        }
    }
}

/// The password the harness gives the bootstrap administrator after its first sign-in.
pub const ADMIN_PASSWORD: &str = "harness admin passphrase 1";

/// A signed-in browser session: the cookie to send and the CSRF token for changes.
#[derive(Debug, Clone)]
pub struct Session {
    pub cookie: String,
    pub csrf: String,
}

/// A running server. Requests made through `get`/`post_json`/... carry the administrator's session;
/// the `*_as` variants take another session or none.
pub struct Server {
    pub child: Child,
    pub base: String,
    pub cwd: tempfile::TempDir,
    pub data_dir: PathBuf,
    pub stderr_path: PathBuf,
    pub admin: Option<Session>,
    agent: ureq::Agent,
}

/// A finished HTTP exchange.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: ureq::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }

    /// Asserts the house error shape and returns the code.
    pub fn error_code(&self) -> String {
        let v = self.json();
        let error = v
            .get("error")
            .unwrap_or_else(|| panic!("no error object: {}", self.body));
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{}",
            self.body
        );
        assert!(error["request_id"].as_str().is_some(), "{}", self.body);
        error["code"].as_str().expect("code").to_string()
    }
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn collect(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut res = result.expect("HTTP request failed");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let body = res
        .body_mut()
        .with_config()
        .limit(64 * 1024 * 1024)
        .read_to_string()
        .unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

impl Server {
    pub fn start() -> Server {
        Server::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Server {
        let cwd = tempfile::tempdir().expect("tempdir");
        let data_dir = cwd.path().join("data");
        Server::spawn(cwd, data_dir, options)
    }

    /// Starts a server on an existing directory layout (for restarts).
    pub fn spawn(cwd: tempfile::TempDir, data_dir: PathBuf, options: Options) -> Server {
        match Server::try_spawn(cwd, data_dir, options) {
            Ok(server) => server,
            Err((stderr, status)) => panic!("server did not start ({status:?}):\n{stderr}"),
        }
    }

    /// Starts a server; on failure returns its stderr and exit status.
    pub fn try_spawn(
        cwd: tempfile::TempDir,
        data_dir: PathBuf,
        options: Options,
    ) -> Result<Server, (String, Option<ExitStatus>)> {
        let stderr_path = cwd.path().join(format!(
            "stderr-{}.log",
            Instant::now().elapsed().as_nanos()
        ));
        let stderr = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut cmd = enclave(cwd.path());
        if options.explicit_data_dir {
            cmd.arg("--data-dir").arg(&data_dir);
        }
        cmd.arg("serve").args(&options.args);
        for (k, v) in &options.env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn enclave");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().trim_end_matches('/').to_string());
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(base) = rx.recv_timeout(Duration::from_millis(50)) {
                let mut server = Server {
                    child,
                    base,
                    cwd,
                    data_dir,
                    stderr_path,
                    admin: None,
                    agent: agent(),
                };
                if options.sign_in {
                    server.admin = Some(server.sign_in_admin());
                    if options.enterprise_license {
                        let text = issue_license(&[
                            "--edition",
                            "enterprise",
                            "--installation-id",
                            &server.installation_id(),
                        ]);
                        let reply = server.install_license(&text);
                        assert_eq!(reply.status, 200, "harness licence: {}", reply.body);
                    }
                }
                return Ok(server);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err((stderr, Some(status)));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err((stderr, None));
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Sends a request with an optional JSON body as `session` (or anonymously).
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        session: Option<&Session>,
    ) -> Reply {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        let request = match session {
            Some(s) => request
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf),
            None => request,
        };
        let result = match body {
            Some(json) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(json.to_string())
                    .expect("request"),
            ),
            None => self.agent.run(request.body(()).expect("request")),
        };
        collect(result)
    }

    pub fn get(&self, path: &str) -> Reply {
        self.call("GET", path, None, self.admin.as_ref())
    }

    /// Sends a request authenticated by an API key (in `Authorization: Bearer`).
    pub fn call_with_key(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: &str,
    ) -> Reply {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path))
            .header("authorization", format!("Bearer {key}"));
        let result = match body {
            Some(json) => self.agent.run(
                request
                    .header("content-type", "application/json")
                    .body(json.to_string())
                    .expect("request"),
            ),
            None => self.agent.run(request.body(()).expect("request")),
        };
        collect(result)
    }

    /// Creates an API key in a tenant as the administrator; returns (id, secret).
    pub fn create_key(&self, tenant: &str, scopes: &[&str]) -> (String, String) {
        let reply = self.post_json(
            &format!("/api/v1/tenants/{tenant}/api-keys"),
            &json!({"name": format!("{} key", scopes.join("+")), "scopes": scopes}),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        let v = reply.json();
        (
            v["key"]["id"].as_str().expect("id").to_string(),
            v["secret"].as_str().expect("secret").to_string(),
        )
    }

    pub fn get_as(&self, path: &str, session: Option<&Session>) -> Reply {
        self.call("GET", path, None, session)
    }

    pub fn get_with(&self, path: &str, header: (&str, &str)) -> Reply {
        let mut request = self.agent.get(&self.url(path)).header(header.0, header.1);
        if let Some(s) = &self.admin {
            request = request.header("cookie", &s.cookie);
        }
        collect(request.call())
    }

    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        self.call("POST", path, Some(body), self.admin.as_ref())
    }

    pub fn post_json_as(&self, path: &str, body: &Value, session: Option<&Session>) -> Reply {
        self.call("POST", path, Some(body), session)
    }

    pub fn put_json(&self, path: &str, body: &Value) -> Reply {
        self.call("PUT", path, Some(body), self.admin.as_ref())
    }

    pub fn patch_json(&self, path: &str, body: &Value) -> Reply {
        self.call("PATCH", path, Some(body), self.admin.as_ref())
    }

    pub fn post_raw(&self, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
        let mut request = self
            .agent
            .post(&self.url(path))
            .header("content-type", content_type);
        if let Some(s) = &self.admin {
            request = request
                .header("cookie", &s.cookie)
                .header("x-csrf-token", &s.csrf);
        }
        collect(request.send(&body[..]))
    }

    /// Signs in; on success returns the session, else the failed reply.
    pub fn login(&self, username: &str, password: &str) -> Result<Session, Box<Reply>> {
        let reply = self.call(
            "POST",
            "/api/v1/auth/login",
            Some(&json!({"username": username, "password": password})),
            None,
        );
        if reply.status != 200 {
            return Err(Box::new(reply));
        }
        Ok(session_from(&reply))
    }

    /// Changes a password; returns the new session the server issues.
    pub fn change_password(&self, session: &Session, current: &str, new: &str) -> Session {
        let reply = self.call(
            "POST",
            "/api/v1/auth/password",
            Some(&json!({"current_password": current, "new_password": new})),
            Some(session),
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        session_from(&reply)
    }

    /// Signs the administrator in: on a fresh data directory with the printed one-time password
    /// (then sets [`ADMIN_PASSWORD`]), else with [`ADMIN_PASSWORD`].
    fn sign_in_admin(&self) -> Session {
        let bootstrap = std::fs::read_to_string(self.data_dir.join("bootstrap-admin.txt")).ok();
        match bootstrap.as_deref().and_then(bootstrap_password) {
            Some(first) => {
                let session = self.login("admin", &first).expect("bootstrap sign-in");
                self.change_password(&session, &first, ADMIN_PASSWORD)
            }
            None => self
                .login("admin", ADMIN_PASSWORD)
                .unwrap_or_else(|r| panic!("admin sign-in failed: {}", r.body)),
        }
    }

    /// Creates an account through the API with a settled password and signs it in.
    pub fn user(&self, username: &str) -> Session {
        let password = format!("{username} long enough password");
        let reply = self.post_json(
            "/api/v1/users",
            &json!({"username": username, "password": password, "must_change_password": false}),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        self.login(username, &password).expect("sign-in")
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(mut self) -> (ExitStatus, String, tempfile::TempDir) {
        signal(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let status = wait_timeout(&mut self.child, Duration::from_secs(60))
            .unwrap_or_else(|| panic!("server did not exit after SIGTERM:\n{}", self.stderr()));
        let stderr = self.stderr();
        let cwd = std::mem::replace(&mut self.cwd, tempfile::tempdir().expect("tempdir"));
        (status, stderr, cwd)
    }

    /// Creates a tenant through the API.
    pub fn create_tenant(&self, id: &str) -> Reply {
        let reply = self.post_json(
            "/api/v1/tenants",
            &json!({ "name": format!("Tenant {id}"), "id": id }),
        );
        assert_eq!(reply.status, 201, "{}", reply.body);
        reply
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).expect("kill");
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The bootstrap password in the notice file's text.
pub fn bootstrap_password(text: &str) -> Option<String> {
    text.lines()
        .map(str::trim)
        .find(|l| l.len() == 24 && !l.contains(' '))
        .map(str::to_string)
}

/// The session a sign-in or password-change reply establishes.
pub fn session_from(reply: &Reply) -> Session {
    let set_cookie = reply
        .headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.contains("enclave_session="))
        .unwrap_or_else(|| panic!("no session cookie in {:?}", reply.headers));
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_string();
    let csrf = reply.json()["csrf_token"]
        .as_str()
        .expect("csrf token")
        .to_string();
    Session { cookie, csrf }
}

/// Runs the binary to completion: (exit code, stdout, stderr).
pub fn run(cwd: &Path, args: &[&str]) -> (i32, String, String) {
    let out = enclave(cwd).args(args).output().expect("run enclave");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Reads a metric's value from Prometheus text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// The number of embedded migrations of a kind (`system` or `tenant`): the schema version a current
/// database has.
pub fn schema_version(kind: &str) -> usize {
    std::fs::read_dir(format!("{}/migrations/{kind}", env!("CARGO_MANIFEST_DIR")))
        .expect("migrations dir")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count()
}

/// The vendor tool, built with the crate.
pub fn license_tool() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_enclave-license"));
    cmd.env("NO_COLOR", "1");
    cmd
}

/// The test signing key (trusted only by builds with the `test-license-key` feature).
pub const TEST_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/license/test-key.pk8"
);

/// Runs a vendor-tool command, insisting that it succeeds; returns its standard output.
pub fn tool_stdout(cmd: &mut Command) -> String {
    let out = cmd.output().expect("run enclave-license");
    assert!(
        out.status.success(),
        "enclave-license failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8 output")
}

/// Issues a licence with the test key; `args` add to `--key ... --key-id ... --customer ...`.
pub fn issue_license(args: &[&str]) -> String {
    // The tests need the `test-license-key` feature (scripts/test.sh, or cargo test --features
    // test-license-key) for the server to trust the test key.
    tool_stdout(
        license_tool()
            .args(["issue", "--key", TEST_KEY, "--key-id", "enclave-test-1"])
            .args(["--customer", "Harness Corp"])
            .args(args),
    )
}

impl Server {
    /// Stops the server (SIGTERM) and starts it again on the same data, without the harness licence,
    /// with the business clock (licence states, usage days and months) shifted by `secs` seconds.
    pub fn restart_with_clock_offset(self, secs: i64) -> Server {
        let (status, stderr, cwd) = self.terminate();
        assert!(status.success(), "{stderr}");
        let data_dir = cwd.path().join("data");
        let mut options = Options {
            enterprise_license: false,
            ..Options::default()
        };
        options
            .env
            .push(("ENCLAVE_TEST_CLOCK_OFFSET_SECS".into(), secs.to_string()));
        Server::spawn(cwd, data_dir, options)
    }

    /// This installation's id.
    pub fn installation_id(&self) -> String {
        self.get("/api/v1/system/info").json()["installation_id"]
            .as_str()
            .expect("installation id")
            .to_string()
    }

    /// Uploads a licence as the administrator.
    pub fn install_license(&self, text: &str) -> Reply {
        self.post_json("/api/v1/license", &json!({ "license": text }))
    }
}

/// The air-gapped activation through the CLI: `enclave license request` writes the request, the vendor
/// tool issues a licence bound to it (with `issue_args`), `enclave license activate` installs it.
/// `global` goes before the subcommand (e.g. `--data-dir d`). Returns the output of `activate`.
pub fn activate_via_cli(cwd: &Path, global: &[&str], issue_args: &[&str]) -> (i32, String, String) {
    let request = cwd.join(format!("request-{}.txt", std::process::id()));
    let _ = std::fs::remove_file(&request);
    let request_arg = request.to_str().expect("utf8 path").to_string();
    let mut args: Vec<&str> = global.to_vec();
    args.extend(["license", "request", "--out", &request_arg]);
    let (code, _, err) = run(cwd, &args);
    assert_eq!(code, 0, "license request: {err}");
    let mut issue: Vec<&str> = vec!["--request", &request_arg];
    issue.extend(issue_args);
    let text = issue_license(&issue);
    let licence = cwd.join(format!("licence-{}.txt", std::process::id()));
    std::fs::write(&licence, text).expect("write licence");
    let licence_arg = licence.to_str().expect("utf8 path").to_string();
    let mut args: Vec<&str> = global.to_vec();
    args.extend(["license", "activate", &licence_arg]);
    run(cwd, &args)
}
