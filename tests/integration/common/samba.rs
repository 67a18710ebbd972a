//! A real Samba Active Directory domain controller for the AD sign-in tests (no mocks).
//!
//! [`SambaDc::start`] provisions a fresh domain `ENCLAVE.TEST` with `samba-tool domain provision
//! --targetdir` in a temporary directory (no DNS server), replaces the generated `smb.conf` with one
//! that runs only the LDAP service on the loopback interface with a TLS certificate from a CA made for
//! this instance (see [`super::slapd::generate_pki`]), adds the fixture below with `samba-tool`, and
//! runs `samba --foreground`. Samba keeps AD's default `ldap server require strong auth = yes`: simple
//! binds only over LDAPS or StartTLS, as on a Windows DC.
//!
//! AD's LDAP ports are fixed (389 with StartTLS, 636 LDAPS), so only one DC runs at a time in a test
//! process (a lock is held while a [`SambaDc`] lives) and the tests must run as root, which CI does.
//!
//! Fixture, base `DC=enclave,DC=test`, everything in `CN=Users`:
//!
//! | account | password | groups |
//! |---|---|---|
//! | enclave-svc | Svc-Pass-1 | (the service account) |
//! | alice | Alice-Pass-1 | engineers (mail alice@enclave.test) |
//! | bob | Bob-Pass-1 | sales |
//! | erin | Erin-Pass-1 | platform, which is a member of engineers |
//! | dave | Dave-Pass-1 | engineers; the account is disabled |
//! | frank | Frank-Pass-1 | none (outside staff) |
//!
//! `staff` has the groups engineers and sales as members, so everyone but frank is in it only
//! through nesting.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::slapd::{accepts, check, generate_pki, terminate};

pub const REALM: &str = "ENCLAVE.TEST";
pub const BASE_DN: &str = "DC=enclave,DC=test";
pub const USERS_DN: &str = "CN=Users,DC=enclave,DC=test";
const ADMIN_PASSWORD: &str = "Adm1n-Pass-x";
const SERVICE_USER: &str = "enclave-svc";
const SERVICE_PASSWORD: &str = "Svc-Pass-1";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// One DC at a time: the ports are fixed.
static FIXED_PORTS: Mutex<()> = Mutex::new(());

/// A running Samba AD DC; stopped and its directory removed on drop.
pub struct SambaDc {
    child: Option<Child>,
    dir: tempfile::TempDir,
    ca_pem: String,
    _ports: MutexGuard<'static, ()>,
}

/// `(user, password, groups)` of the fixture; see the module doc.
pub const USERS: &[(&str, &str, &[&str])] = &[
    (SERVICE_USER, SERVICE_PASSWORD, &[]),
    ("alice", "Alice-Pass-1", &["engineers"]),
    ("bob", "Bob-Pass-1", &["sales"]),
    ("erin", "Erin-Pass-1", &["platform"]),
    ("dave", "Dave-Pass-1", &["engineers"]),
    ("frank", "Frank-Pass-1", &[]),
];

impl SambaDc {
    pub fn start() -> SambaDc {
        let ports = FIXED_PORTS.lock().unwrap_or_else(|e| e.into_inner());
        if !Path::new("/usr/sbin/samba").exists() || !Path::new("/usr/bin/samba-tool").exists() {
            panic!("Samba is not installed: apt-get install samba samba-ad-dc samba-ad-provision (scripts/install-test-deps.sh does)");
        }
        if !nix::unistd::geteuid().is_root() {
            panic!(
                "a Samba AD DC binds the fixed LDAP ports 389/636 and must run as root (CI does)"
            );
        }
        if accepts(389) || accepts(636) {
            panic!("127.0.0.1:389 or :636 is already in use (a Samba or slapd left running?); the AD DC needs them");
        }
        let dir = tempfile::Builder::new()
            .prefix("enclave-samba-")
            .tempdir()
            .expect("create samba temp dir");
        let root = dir.path();
        let pki = root.join("pki");
        fs::create_dir(&pki).expect("create pki dir");
        generate_pki(&pki);
        // Samba refuses a private key others can read.
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(pki.join("server.key"), fs::Permissions::from_mode(0o600))
            .expect("chmod server.key");

        let provision = Command::new("samba-tool")
            .args([
                "domain",
                "provision",
                "--server-role=dc",
                "--dns-backend=NONE",
            ])
            .arg(format!("--targetdir={}", root.join("dc").display()))
            .args([
                &format!("--realm={REALM}"),
                "--domain=ENCLAVE",
                "--host-name=dc1",
                "--host-ip=127.0.0.1",
                &format!("--adminpass={ADMIN_PASSWORD}"),
                "--option=interfaces=lo",
                "--option=bind interfaces only=yes",
            ])
            .stdin(Stdio::null())
            .output()
            .expect("run samba-tool domain provision");
        check(&provision, "samba-tool domain provision");
        fs::create_dir_all(root.join("dc/run")).expect("create run dir");
        fs::write(root.join("dc/etc/smb.conf"), smb_conf(root)).expect("write smb.conf");

        let mut dc = SambaDc {
            child: None,
            ca_pem: fs::read_to_string(pki.join("ca.pem")).expect("read ca.pem"),
            dir,
            _ports: ports,
        };
        for (user, password, _) in USERS {
            dc.tool(&[
                "user",
                "create",
                user,
                password,
                &format!("--mail-address={user}@enclave.test"),
            ]);
        }
        for group in ["engineers", "platform", "sales", "staff"] {
            dc.tool(&["group", "add", group]);
        }
        dc.tool(&["group", "addmembers", "engineers", "alice,dave,platform"]);
        dc.tool(&["group", "addmembers", "platform", "erin"]);
        dc.tool(&["group", "addmembers", "sales", "bob"]);
        dc.tool(&["group", "addmembers", "staff", "engineers,sales"]);
        dc.tool(&["user", "disable", "dave"]);
        dc.spawn();
        dc
    }

    fn spawn(&mut self) {
        let root = self.dir.path();
        let out = fs::File::create(root.join("samba.out")).expect("create samba.out");
        let mut child = Command::new("/usr/sbin/samba")
            .arg("-s")
            .arg(self.conf())
            .args(["--foreground", "--no-process-group", "--debuglevel=1"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("clone samba.out"))
            .stderr(out)
            .spawn()
            .expect("spawn samba");
        let deadline = Instant::now() + START_TIMEOUT;
        while !(accepts(389) && accepts(636)) {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("samba exited with {status}:\n{}", self.log());
            }
            if Instant::now() >= deadline {
                terminate(&mut child);
                panic!(
                    "samba not listening after {START_TIMEOUT:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("dc/etc/smb.conf")
    }

    /// Runs `samba-tool ARGS -s smb.conf` on the DC's database (works while it runs, as on a real DC).
    pub fn tool(&self, args: &[&str]) {
        let out = Command::new("samba-tool")
            .args(args)
            .arg("-s")
            .arg(self.conf())
            .stdin(Stdio::null())
            .output()
            .expect("run samba-tool");
        check(&out, &format!("samba-tool {}", args.join(" ")));
    }

    /// What samba printed and logged so far, for diagnostics.
    pub fn log(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.path().join(name)).unwrap_or_default();
        format!("{}{}", read("samba.out"), read("samba.log"))
    }

    pub fn ldap_url(&self) -> String {
        "ldap://127.0.0.1:389".into()
    }

    pub fn ldaps_url(&self) -> String {
        "ldaps://127.0.0.1:636".into()
    }

    /// PEM of the CA that signed the DC's certificate.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The service account's user principal name (AD accepts a UPN as the bind name).
    pub fn service_upn(&self) -> String {
        format!("{SERVICE_USER}@enclave.test")
    }

    pub fn service_password(&self) -> &str {
        SERVICE_PASSWORD
    }

    /// `CN=<name>,CN=Users,DC=enclave,DC=test` (users and groups of the fixture live there).
    pub fn dn(&self, cn: &str) -> String {
        format!("CN={cn},{USERS_DN}")
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child);
        }
    }
}

fn smb_conf(root: &Path) -> String {
    let dc = root.join("dc");
    let (dc, pki, root) = (dc.display(), root.join("pki"), root.display());
    let pki = pki.display();
    format!(
        "# Generated by tests/integration/common/samba.rs
[global]
\tnetbios name = DC1
\trealm = {REALM}
\tworkgroup = ENCLAVE
\tserver role = active directory domain controller
\tserver services = ldap
\tinterfaces = lo
\tbind interfaces only = yes
\tprefork children = 2
\tprivate dir = {dc}/private
\tstate directory = {dc}/state
\tcache directory = {dc}/cache
\tlock directory = {dc}
\tpid directory = {dc}/run
\tbinddns dir = {dc}/bind-dns
\tlogging = file
\tlog file = {root}/samba.log
\ttls enabled = yes
\ttls keyfile = {pki}/server.key
\ttls certfile = {pki}/server.pem
\ttls cafile = {pki}/ca.pem
"
    )
}
