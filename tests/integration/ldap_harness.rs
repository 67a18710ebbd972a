//! Self-checks of the slapd harness (tests/integration/common/slapd.rs) with the OpenLDAP command-line
//! tools, independent of the application.

use std::net::TcpStream;
use std::process::{Command, Output};

use crate::common::slapd::{dead_url, Slapd};

const ALICE_DN: &str = "uid=alice,ou=people,dc=example,dc=org";
const STAR_DN: &str = r"uid=star*(x)\5Cy,ou=people,dc=example,dc=org";

/// Runs an OpenLDAP client tool with `LDAPTLS_CACERT` set to `ca_file` (if any).
fn ldap_tool(tool: &str, args: &[&str], ca_file: Option<&std::path::Path>) -> Output {
    let mut cmd = Command::new(tool);
    cmd.args(args).env_remove("LDAPTLS_CACERT");
    if let Some(ca) = ca_file {
        cmd.env("LDAPTLS_CACERT", ca);
    }
    cmd.output().unwrap_or_else(|e| panic!("run {tool}: {e}"))
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// An anonymous `ldapsearch` of the whole directory.
fn anonymous_search(slapd: &Slapd, filter: &str, attrs: &[&str]) -> Output {
    let url = slapd.ldap_url();
    let mut args = vec![
        "-x",
        "-LLL",
        "-H",
        url.as_str(),
        "-b",
        slapd.base_dn(),
        filter,
    ];
    args.extend_from_slice(attrs);
    ldap_tool("ldapsearch", &args, None)
}

fn search_alice(slapd: &Slapd) -> Output {
    ldap_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &slapd.ldap_url(),
            "-D",
            slapd.service_dn(),
            "-w",
            slapd.service_password(),
            "-b",
            slapd.base_dn(),
            "(uid=alice)",
            "entryUUID",
            "mail",
        ],
        None,
    )
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port in URL")
}

#[test]
fn service_account_finds_alice_with_entry_uuid() {
    let slapd = Slapd::start();
    let out = search_alice(&slapd);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(&format!("dn: {ALICE_DN}")),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("mail: alice@example.org"), "{}", text(&out));
    let uuid = stdout
        .lines()
        .find_map(|l| l.strip_prefix("entryUUID: "))
        .unwrap_or_else(|| panic!("no entryUUID: {}", text(&out)));
    assert_eq!(uuid.len(), 36, "entryUUID {uuid:?}");
}

#[test]
fn ldaps_bind_checks_the_ca() {
    let slapd = Slapd::start();
    let url = slapd.ldaps_url();
    let args = ["-x", "-H", &url, "-D", ALICE_DN, "-w", "alice-pass-1"];

    let ca = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(ca.path(), slapd.ca_pem()).expect("write CA");
    let out = ldap_tool("ldapwhoami", &args, Some(ca.path()));
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&format!("dn:{ALICE_DN}")));

    let other = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(other.path(), slapd.other_ca_pem()).expect("write other CA");
    let out = ldap_tool("ldapwhoami", &args, Some(other.path()));
    assert!(
        !out.status.success(),
        "bind succeeded with the wrong CA: {}",
        text(&out)
    );

    // A wrong password is refused (invalid credentials = 49).
    let out = ldap_tool(
        "ldapwhoami",
        &["-x", "-H", &url, "-D", ALICE_DN, "-w", "wrong"],
        Some(ca.path()),
    );
    assert_eq!(out.status.code(), Some(49), "{}", text(&out));
}

#[test]
fn start_tls_works_with_the_ca() {
    let slapd = Slapd::start();
    let url = slapd.ldap_url();
    let args = [
        "-x",
        "-ZZ",
        "-H",
        &url,
        "-D",
        ALICE_DN,
        "-w",
        "alice-pass-1",
    ];
    let out = ldap_tool("ldapwhoami", &args, Some(&slapd.ca_file()));
    assert!(out.status.success(), "{}", text(&out));
    let out = ldap_tool("ldapwhoami", &args, Some(&slapd.other_ca_file()));
    assert!(
        !out.status.success(),
        "StartTLS succeeded with the wrong CA: {}",
        text(&out)
    );
}

#[test]
fn star_user_binds_with_its_escaped_dn() {
    let slapd = Slapd::start();
    let url = slapd.ldap_url();
    let out = ldap_tool(
        "ldapwhoami",
        &["-x", "-H", &url, "-D", STAR_DN, "-w", "star-pass-1"],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&format!("dn:{STAR_DN}")),
        "{}",
        text(&out)
    );

    // And the service account finds it by its uid, with the value escaped for the filter (RFC 4515).
    let out = ldap_tool(
        "ldapsearch",
        &[
            "-x",
            "-LLL",
            "-H",
            &url,
            "-D",
            slapd.service_dn(),
            "-w",
            slapd.service_password(),
            "-b",
            slapd.base_dn(),
            r"(uid=star\2a\28x\29\5cy)",
            "uid",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!("dn: {STAR_DN}")), "{}", text(&out));
    assert!(stdout.contains(r"uid: star*(x)\y"), "{}", text(&out));
}

#[test]
fn stop_and_start_again_keep_ports_and_data() {
    let mut slapd = Slapd::start();
    let port = port_of(&slapd.ldap_url());
    slapd.modify(
        "dn: uid=carol,ou=people,dc=example,dc=org\n\
         changetype: modify\n\
         replace: mail\n\
         mail: carol.changed@example.org\n",
    );
    slapd.stop();
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "slapd still listening"
    );
    slapd.start_again();
    assert_eq!(port_of(&slapd.ldap_url()), port);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_ok());
    assert!(search_alice(&slapd).status.success());
    let out = anonymous_search(&slapd, "(uid=carol)", &["mail"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("mail: carol.changed@example.org"),
        "{}",
        text(&out)
    );

    slapd.delete("uid=carol,ou=people,dc=example,dc=org");
    let out = anonymous_search(&slapd, "(uid=carol)", &[]);
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out)
    );
}

#[test]
fn dead_url_refuses_connections() {
    let url = dead_url();
    assert!(TcpStream::connect(("127.0.0.1", port_of(&url))).is_err());
}
