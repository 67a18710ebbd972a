//! A real OpenLDAP `slapd` for the LDAP login tests (no mocks).
//!
//! [`Slapd::start`] creates a temporary directory, generates a throw-away TLS PKI with the `openssl`
//! CLI (a CA, a server certificate for `127.0.0.1`/`localhost` signed by it, and an unrelated CA),
//! writes a `slapd.conf` (schemas core, cosine, inetorgperson, nis; an `mdb` database for
//! `dc=example,dc=org` with root DN `cn=admin,dc=example,dc=org` / `admin-pass`), loads
//! `tests/fixtures/ldap/directory.ldif` with `slapadd` (so every entry gets an `entryUUID`), and runs
//! `slapd -d 256` in the foreground on two free loopback ports: plain LDAP (StartTLS capable) and
//! LDAPS. slapd's log goes to `slapd.log` in the temporary directory (see [`Slapd::log`]).
//! Changes are made over the wire with `ldapmodify`/`ldapdelete` as the root DN.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The fixture directory, embedded so the harness does not depend on the working directory.
const DIRECTORY_LDIF: &str = include_str!("../../fixtures/ldap/directory.ldif");

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const BASE_DN: &str = "dc=example,dc=org";
const ROOT_DN: &str = "cn=admin,dc=example,dc=org";
const ROOT_PW: &str = "admin-pass";
const SERVICE_DN: &str = "cn=enclave-svc,dc=example,dc=org";
const SERVICE_PW: &str = "svc-pass-1";

/// How long to wait for slapd to accept connections, and for it to exit after SIGTERM.
const START_TIMEOUT: Duration = Duration::from_secs(10);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running (or stopped, see [`Slapd::stop`]) slapd; killed and its directory removed on drop.
pub struct Slapd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ldap_port: u16,
    ldaps_port: u16,
    ca_pem: String,
    other_ca_pem: String,
}

impl Slapd {
    /// Starts slapd with plain LDAP (StartTLS capable) and LDAPS listeners on two free loopback ports.
    pub fn start() -> Slapd {
        if !Path::new(SLAPD).exists() || !Path::new(SLAPADD).exists() {
            panic!("slapd is not installed: apt-get install slapd ldap-utils");
        }
        let dir = tempfile::Builder::new()
            .prefix("enclave-slapd-")
            .tempdir()
            .expect("create slapd temp dir");
        let root = dir.path();
        generate_pki(root);
        fs::create_dir(root.join("db")).expect("create slapd db dir");
        fs::write(root.join("slapd.conf"), slapd_conf(root)).expect("write slapd.conf");
        fs::write(root.join("directory.ldif"), DIRECTORY_LDIF).expect("write directory.ldif");
        let out = Command::new(SLAPADD)
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-l")
            .arg(root.join("directory.ldif"))
            .stdin(Stdio::null())
            .output()
            .expect("run slapadd");
        check(&out, "slapadd");

        let ca_pem = fs::read_to_string(root.join("ca.pem")).expect("read ca.pem");
        let other_ca_pem =
            fs::read_to_string(root.join("other-ca.pem")).expect("read other-ca.pem");
        let mut slapd = Slapd {
            child: None,
            dir,
            ldap_port: 0,
            ldaps_port: 0,
            ca_pem,
            other_ca_pem,
        };
        // A port picked here can in principle be taken by someone else before slapd binds it; slapd
        // then exits at once and we try again with fresh ports.
        let mut last_error = String::new();
        for _ in 0..3 {
            slapd.ldap_port = free_port();
            slapd.ldaps_port = free_port();
            match slapd.spawn() {
                Ok(()) => return slapd,
                Err(e) => last_error = e,
            }
        }
        panic!(
            "slapd did not start: {last_error}\n--- slapd.log ---\n{}",
            slapd.log()
        );
    }

    /// `ldap://127.0.0.1:PORT` (plain LDAP; StartTLS is offered).
    pub fn ldap_url(&self) -> String {
        format!("ldap://127.0.0.1:{}", self.ldap_port)
    }

    /// `ldaps://127.0.0.1:PORT`; the certificate names IP 127.0.0.1 and DNS localhost.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://127.0.0.1:{}", self.ldaps_port)
    }

    /// PEM of the CA that signed the server certificate (generated for this instance).
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// PEM of an unrelated CA, which must not validate the server certificate.
    pub fn other_ca_pem(&self) -> String {
        self.other_ca_pem.clone()
    }

    /// Path of a file holding [`Slapd::ca_pem`] (handy for `LDAPTLS_CACERT`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Path of a file holding [`Slapd::other_ca_pem`].
    pub fn other_ca_file(&self) -> PathBuf {
        self.dir.path().join("other-ca.pem")
    }

    pub fn base_dn(&self) -> &str {
        BASE_DN
    }

    pub fn service_dn(&self) -> &str {
        SERVICE_DN
    }

    pub fn service_password(&self) -> &str {
        SERVICE_PW
    }

    /// slapd's log so far (`-d 256`: connections, binds, searches, results), for test diagnostics.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("slapd.log")).unwrap_or_default()
    }

    /// Applies an LDIF change (`ldapmodify` as the root DN); panics with stderr on failure.
    pub fn modify(&self, ldif: &str) {
        let out = self.run_as_root("ldapmodify", &[], Some(ldif));
        check(&out, "ldapmodify");
    }

    /// Deletes an entry by DN (`ldapdelete` as the root DN); panics with stderr on failure.
    pub fn delete(&self, dn: &str) {
        let out = self.run_as_root("ldapdelete", &[dn], None);
        check(&out, "ldapdelete");
    }

    /// Stops slapd (SIGTERM, then waits for it to exit; SIGKILL after 10 s). Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        terminate(&mut child);
    }

    /// Starts slapd again after [`Slapd::stop`], on the same ports with the same data.
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "slapd is already running");
        if let Err(e) = self.spawn() {
            panic!(
                "slapd did not start again: {e}\n--- slapd.log ---\n{}",
                self.log()
            );
        }
    }

    /// Spawns slapd on the current ports and waits until it accepts connections on both.
    fn spawn(&mut self) -> Result<(), String> {
        let root = self.dir.path();
        let pid_file = root.join("slapd.pid");
        let _ = fs::remove_file(&pid_file);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(root.join("slapd.log"))
            .expect("open slapd.log");
        let urls = format!(
            "ldap://127.0.0.1:{}/ ldaps://127.0.0.1:{}/",
            self.ldap_port, self.ldaps_port
        );
        let mut child = Command::new(SLAPD)
            .arg("-f")
            .arg(root.join("slapd.conf"))
            .arg("-h")
            .arg(&urls)
            .arg("-d")
            .arg("256")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log handle"))
            .stderr(log)
            .spawn()
            .expect("spawn slapd");

        // Ready when slapd has written its pid file (after binding its listeners: so the ports are
        // ours, not someone else's) and both ports accept connections.
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("slapd exited with {status} on {urls}"));
            }
            let pid_written = fs::read_to_string(&pid_file)
                .map(|pid| pid.trim() == child.id().to_string())
                .unwrap_or(false);
            if pid_written && accepts(self.ldap_port) && accepts(self.ldaps_port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("slapd not ready on {urls} after {START_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn run_as_root(&self, tool: &str, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(tool);
        cmd.args(["-x", "-H", &self.ldap_url(), "-D", ROOT_DN, "-w", ROOT_PW])
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("run {tool} (apt-get install ldap-utils): {e}"));
        if let Some(input) = stdin {
            let mut pipe = child.stdin.take().expect("stdin pipe");
            pipe.write_all(input.as_bytes()).expect("write LDIF");
        }
        child.wait_with_output().expect("wait for ldap tool")
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        // The TempDir field removes the directory after this.
    }
}

/// A loopback URL where nothing listens (a port bound then released), for "server down" tests.
pub fn dead_url() -> String {
    format!("ldap://127.0.0.1:{}", free_port())
}

/// Stops a server process: SIGTERM, then SIGKILL if it has not exited within 10 s.
pub fn terminate(child: &mut Child) {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let deadline = Instant::now() + STOP_TIMEOUT;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => return,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return;
            }
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a free loopback port")
        .port()
}

pub fn accepts(port: u16) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

pub fn check(out: &Output, what: &str) {
    if !out.status.success() {
        panic!(
            "{what} failed ({}):\n--- stderr ---\n{}\n--- stdout ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

fn slapd_conf(root: &Path) -> String {
    let root = root.display();
    format!(
        r#"# Generated by tests/integration/common/slapd.rs
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema

pidfile {root}/slapd.pid
argsfile {root}/slapd.args
modulepath /usr/lib/ldap
moduleload back_mdb

TLSCACertificateFile {root}/ca.pem
TLSCertificateFile {root}/server.pem
TLSCertificateKeyFile {root}/server.key

database mdb
suffix "{BASE_DN}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {root}/db
maxsize 104857600
index objectClass eq
index uid eq
index member eq

access to attrs=userPassword
    by self =xw
    by anonymous auth
    by * none
access to *
    by * read
"#
    )
}

/// Generates `ca.pem`, `server.pem`/`server.key` (signed by the CA; SAN IP:127.0.0.1, DNS:localhost)
/// and an unrelated `other-ca.pem`, all with EC P-256 keys.
pub fn generate_pki(root: &Path) {
    let cnf = root.join("openssl.cnf");
    fs::write(
        &cnf,
        "[req]\n\
         distinguished_name = dn\n\
         prompt = no\n\
         [dn]\n\
         CN = unused\n\
         [ca]\n\
         basicConstraints = critical, CA:TRUE\n\
         keyUsage = critical, keyCertSign, cRLSign\n\
         subjectKeyIdentifier = hash\n\
         [server]\n\
         basicConstraints = critical, CA:FALSE\n\
         keyUsage = critical, digitalSignature\n\
         extendedKeyUsage = serverAuth\n\
         subjectAltName = IP:127.0.0.1, DNS:localhost\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )
    .expect("write openssl.cnf");
    let cnf = cnf.to_str().expect("utf-8 temp path");
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    for (name, subject) in [
        ("ca", "/CN=Enclave Test CA"),
        ("other-ca", "/CN=Unrelated Test CA"),
    ] {
        let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
        openssl(
            root,
            &[
                &[
                    "req",
                    "-x509",
                    "-config",
                    cnf,
                    "-extensions",
                    "ca",
                    "-days",
                    "2",
                ][..],
                &ec,
                &["-subj", subject, "-keyout", &key, "-out", &pem],
            ]
            .concat(),
        );
    }
    openssl(
        root,
        &[
            &["req", "-new", "-config", cnf, "-subj", "/CN=localhost"][..],
            &ec,
            &["-keyout", "server.key", "-out", "server.csr"],
        ]
        .concat(),
    );
    openssl(
        root,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-set_serial",
            "2",
            "-days",
            "2",
            "-extfile",
            cnf,
            "-extensions",
            "server",
            "-out",
            "server.pem",
        ],
    );
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl (apt-get install openssl)");
    check(&out, &format!("openssl {}", args.join(" ")));
}
