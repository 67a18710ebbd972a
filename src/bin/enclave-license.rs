//! `enclave-license`: the vendor's licence tool. Generates signing keys, issues signed licences (for a
//! site, an installation id, or from an activation request), and inspects and verifies licence files.
//! Usage and formats: `docs/license.md`.

use std::collections::BTreeSet;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use enclave::license::activation::MAX_ACTIVATION_BYTES;
use enclave::license::keys::{generate_signing_key, load_signing_key, public_key_file};
use enclave::license::{
    inspect, parse_activation_request, parse_and_verify, sign, Edition, Feature, LicensePayload,
    Plan, PublicKeyFile, TrustedKeys, MAX_LICENSE_BYTES,
};
use enclave::time_util::{format_rfc3339, now_utc, parse_rfc3339};
use ring::rand::{SecureRandom as _, SystemRandom};
use time::Duration;

/// Licence length when neither `--days` nor `--expires-at` is given.
const DEFAULT_DAYS: u32 = 365;
/// Trial length when neither `--days` nor `--expires-at` is given.
const DEFAULT_TRIAL_DAYS: u32 = 30;

#[derive(Parser)]
#[command(
    name = "enclave-license",
    version,
    about = "Issue and check Enclave licences (vendor tool)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate a licence-signing key pair: <ID>.pk8 (private, mode 0600) and <ID>.pub.
    Keygen {
        /// The key id ([a-z0-9-], at most 64), e.g. enclave-prod-2027.
        #[arg(long, value_name = "ID")]
        key_id: String,
        /// Where to write the two files (created if missing); existing files are never overwritten.
        #[arg(long, value_name = "DIR")]
        out_dir: PathBuf,
    },
    /// Issue a signed licence.
    Issue(Box<IssueArgs>),
    /// Show a licence's key id and payload, and whether it verifies against the built-in keys.
    Inspect {
        /// The licence file.
        file: PathBuf,
    },
    /// Verify a licence: exit 0 if it is valid, 1 with the reason otherwise.
    Verify {
        /// The licence file.
        file: PathBuf,
        /// Verify against this public key file instead of the keys built into this tool.
        #[arg(long, value_name = "FILE.pub")]
        public_key: Option<PathBuf>,
    },
    /// Verify a customer's signed usage report (true-up) and print its JSON.
    VerifyReport {
        /// The usage report file (`-----BEGIN ENCLAVE USAGE REPORT-----`).
        file: PathBuf,
        /// The installation's activation request: the report must be signed by the same instance key.
        #[arg(long, value_name = "FILE")]
        request: Option<PathBuf>,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum EditionArg {
    Pro,
    Business,
    Enterprise,
}

impl From<EditionArg> for Edition {
    fn from(e: EditionArg) -> Self {
        match e {
            EditionArg::Pro => Edition::Pro,
            EditionArg::Business => Edition::Business,
            EditionArg::Enterprise => Edition::Enterprise,
        }
    }
}

/// A limit on the command line: a number or `unlimited`.
#[derive(Clone, Copy)]
struct LimitArg(Option<u64>);

fn parse_limit(text: &str) -> Result<LimitArg, String> {
    if text.eq_ignore_ascii_case("unlimited") {
        return Ok(LimitArg(None));
    }
    text.parse::<u64>()
        .map(|n| LimitArg(Some(n)))
        .map_err(|_| format!("{text:?} is neither a number nor `unlimited`"))
}

#[derive(Args)]
#[command(group(ArgGroup::new("binding").args(["request", "installation_id", "site"])))]
#[command(group(ArgGroup::new("expiry").args(["days", "expires_at"])))]
struct IssueArgs {
    /// The private signing key (PKCS#8, from `keygen`).
    #[arg(long, value_name = "FILE.pk8")]
    key: PathBuf,
    /// The id of that key, written into the licence.
    #[arg(long, value_name = "ID")]
    key_id: String,
    /// Bind to the installation of this activation request (armoured or single-line); its signature
    /// is verified first.
    #[arg(long, value_name = "FILE", conflicts_with = "from_json")]
    request: Option<PathBuf>,
    /// Bind to this installation id.
    #[arg(long, value_name = "ID", conflicts_with = "from_json")]
    installation_id: Option<String>,
    /// A site licence: valid on any installation.
    #[arg(long, conflicts_with = "from_json")]
    site: bool,
    /// The licensee.
    #[arg(
        long,
        value_name = "NAME",
        required_unless_present = "from_json",
        conflicts_with = "from_json"
    )]
    customer: Option<String>,
    /// The edition; its catalogue limits and features are the defaults.
    #[arg(
        long,
        value_enum,
        required_unless_present = "from_json",
        conflicts_with = "from_json"
    )]
    edition: Option<EditionArg>,
    /// Mark the licence as a trial (default length 30 days instead of 365).
    #[arg(long, conflicts_with = "from_json")]
    trial: bool,
    /// Length in days from the start.
    #[arg(long, value_name = "N", conflicts_with = "from_json")]
    days: Option<u32>,
    /// Expiry time (RFC 3339).
    #[arg(long, value_name = "RFC3339", conflicts_with = "from_json")]
    expires_at: Option<String>,
    /// Start time (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339", conflicts_with = "from_json")]
    starts_at: Option<String>,
    /// Days the licence keeps working after expiry.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 14,
        conflicts_with = "from_json"
    )]
    grace_days: u32,
    /// Users in all (default: the edition's).
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    users: Option<LimitArg>,
    /// Tenants (default: the edition's).
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    tenants: Option<LimitArg>,
    /// Members of one tenant (default: the edition's).
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    users_per_tenant: Option<LimitArg>,
    /// Storage in GB (default: the edition's).
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    storage_gb: Option<LimitArg>,
    /// Per month.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    api_requests: Option<LimitArg>,
    /// Per month.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    chat_tokens: Option<LimitArg>,
    /// Per month.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    embedding_tokens: Option<LimitArg>,
    /// Per month.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    messages: Option<LimitArg>,
    /// Per month.
    #[arg(long, value_name = "N|unlimited", value_parser = parse_limit, conflicts_with = "from_json")]
    workflow_runs: Option<LimitArg>,
    /// A feature to grant (repeatable). When given, these replace the edition's default features.
    #[arg(long = "feature", value_name = "NAME", conflicts_with = "from_json")]
    features: Vec<String>,
    /// Sign this payload JSON file as it is (every field given), instead of building one from flags.
    #[arg(long, value_name = "FILE")]
    from_json: Option<PathBuf>,
    /// Write the licence here (never overwritten) instead of to standard output.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen { key_id, out_dir } => keygen(&key_id, &out_dir),
        Command::Issue(args) => issue(&args),
        Command::Inspect { file } => inspect_file(&file),
        Command::Verify { file, public_key } => verify(&file, public_key.as_deref()),
        Command::VerifyReport { file, request } => verify_report(&file, request.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("enclave-license: error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Reads a file, refusing files larger than `limit` before reading them.
fn read_capped(path: &Path, limit: usize) -> Result<Vec<u8>, String> {
    let size = fs::metadata(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?
        .len();
    if size > limit as u64 {
        return Err(format!(
            "{}: the file is {size} bytes, more than the limit of {limit} bytes",
            path.display()
        ));
    }
    fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Creates a new file (never overwrites) with the given mode and contents.
fn write_new(path: &Path, mode: u32, contents: &[u8]) -> Result<(), String> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                format!("{} exists; refusing to overwrite it", path.display())
            } else {
                format!("cannot create {}: {e}", path.display())
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn keygen(key_id: &str, out_dir: &Path) -> Result<(), String> {
    let (pkcs8, public) = generate_signing_key(key_id).map_err(|e| e.to_string())?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(out_dir)
        .map_err(|e| format!("cannot create {}: {e}", out_dir.display()))?;
    let private_path = out_dir.join(format!("{key_id}.pk8"));
    let public_path = out_dir.join(format!("{key_id}.pub"));
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(format!(
                "{} exists; refusing to overwrite it",
                path.display()
            ));
        }
    }
    write_new(&private_path, 0o600, &pkcs8)?;
    write_new(&public_path, 0o644, public.to_text().as_bytes())?;
    println!(
        "private key: {} (mode 0600; keep it secret, never commit it)",
        private_path.display()
    );
    println!("public key:  {}", public_path.display());
    print!("{}", public.to_text());
    Ok(())
}

fn parse_time(text: &str, flag: &str) -> Result<time::OffsetDateTime, String> {
    parse_rfc3339(text).ok_or_else(|| {
        format!("{flag}: {text:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)")
    })
}

fn random_license_id() -> Result<String, String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| "the system random number generator failed".to_string())?;
    Ok(hex::encode(bytes))
}

const PAYLOAD_FIELDS: &[&str] = &[
    "format",
    "license_id",
    "edition",
    "trial",
    "customer",
    "issued_at",
    "starts_at",
    "expires_at",
    "grace_days",
    "installation_id",
    "limits",
    "features",
];
const LIMIT_FIELDS: &[&str] = &[
    "tenants",
    "users",
    "users_per_tenant",
    "storage_gb",
    "api_requests",
    "chat_tokens",
    "embedding_tokens",
    "messages",
    "workflow_runs",
];

/// Refuses fields this version would ignore: a misspelt limit would otherwise silently be unlimited.
fn check_known_fields(bytes: &[u8]) -> Result<(), String> {
    let Ok(serde_json::Value::Object(top)) = serde_json::from_slice::<serde_json::Value>(bytes)
    else {
        return Err("the payload is not a JSON object".into());
    };
    let mut unknown: Vec<String> = top
        .keys()
        .filter(|k| !PAYLOAD_FIELDS.contains(&k.as_str()))
        .cloned()
        .collect();
    if let Some(serde_json::Value::Object(limits)) = top.get("limits") {
        unknown.extend(
            limits
                .keys()
                .filter(|k| !LIMIT_FIELDS.contains(&k.as_str()))
                .map(|k| format!("limits.{k}")),
        );
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "unknown fields {unknown:?}: this version would ignore them (absent limits are unlimited); \
             known fields are {PAYLOAD_FIELDS:?} and limits {LIMIT_FIELDS:?}"
        ))
    }
}

fn warn_unknown_features(features: &BTreeSet<String>) {
    for name in features.iter().filter(|n| Feature::parse(n).is_none()) {
        eprintln!("enclave-license: warning: feature {name:?} is unknown to this version (kept, but no effect here)");
    }
}

/// Builds the payload bytes from the flags.
fn payload_from_flags(args: &IssueArgs) -> Result<Vec<u8>, String> {
    let (Some(customer), Some(edition)) = (&args.customer, args.edition) else {
        return Err("--customer and --edition are required (or --from-json)".into());
    };
    let edition = Edition::from(edition);
    let installation_id = if let Some(path) = &args.request {
        let text = read_capped(path, MAX_ACTIVATION_BYTES)?;
        let request = parse_activation_request(&text)
            .map_err(|e| format!("activation request {}: {e}", path.display()))?;
        eprintln!(
            "activation request: installation {} on {} (Enclave {}), {} tenants, {} users, {} bytes stored, made {}",
            request.installation_id,
            request.hostname,
            request.version,
            request.counts.tenants,
            request.counts.users,
            request.counts.storage_bytes,
            format_rfc3339(request.created_at)
        );
        Some(request.installation_id)
    } else if let Some(id) = &args.installation_id {
        Some(id.clone())
    } else if args.site {
        None
    } else {
        return Err(
            "say which installation the licence is for: --request FILE, --installation-id ID, or --site"
                .into(),
        );
    };
    let now = now_utc();
    let starts_at = match &args.starts_at {
        Some(text) => parse_time(text, "--starts-at")?,
        None => now,
    };
    let expires_at = match &args.expires_at {
        Some(text) => parse_time(text, "--expires-at")?,
        None => {
            let days = args.days.unwrap_or(if args.trial {
                DEFAULT_TRIAL_DAYS
            } else {
                DEFAULT_DAYS
            });
            starts_at
                .checked_add(Duration::days(i64::from(days)))
                .ok_or("--days is too large")?
        }
    };
    let plan = Plan::from(edition);
    let mut limits = plan.default_limits();
    for (flag, slot) in [
        (args.tenants, &mut limits.tenants),
        (args.users, &mut limits.users),
        (args.users_per_tenant, &mut limits.users_per_tenant),
        (args.storage_gb, &mut limits.storage_gb),
        (args.api_requests, &mut limits.api_requests),
        (args.chat_tokens, &mut limits.chat_tokens),
        (args.embedding_tokens, &mut limits.embedding_tokens),
        (args.messages, &mut limits.messages),
        (args.workflow_runs, &mut limits.workflow_runs),
    ] {
        if let Some(LimitArg(value)) = flag {
            *slot = value;
        }
    }
    let features: BTreeSet<String> = if args.features.is_empty() {
        plan.default_features()
            .iter()
            .map(|f| f.as_str().to_string())
            .collect()
    } else {
        args.features.iter().cloned().collect()
    };
    warn_unknown_features(&features);
    let payload = LicensePayload {
        format: 1,
        license_id: random_license_id()?,
        edition,
        trial: args.trial,
        customer: customer.clone(),
        issued_at: now,
        starts_at,
        expires_at,
        grace_days: args.grace_days,
        installation_id,
        limits,
        features,
    };
    payload.validate().map_err(|e| e.to_string())?;
    serde_json::to_vec(&payload).map_err(|e| format!("cannot serialise the payload: {e}"))
}

fn issue(args: &IssueArgs) -> Result<(), String> {
    let payload_bytes = match &args.from_json {
        Some(path) => {
            let bytes = read_capped(path, MAX_LICENSE_BYTES)?;
            let payload = LicensePayload::from_json(&bytes)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            check_known_fields(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
            warn_unknown_features(&payload.features);
            bytes
        }
        None => payload_from_flags(args)?,
    };
    let pkcs8 = read_capped(&args.key, 4096)?;
    let pair = load_signing_key(&pkcs8).map_err(|e| format!("{}: {e}", args.key.display()))?;
    let public = public_key_file(&args.key_id, &pair).map_err(|e| e.to_string())?;
    match TrustedKeys::builtin().get(&args.key_id) {
        Some(builtin) if *builtin != public.public_key => {
            return Err(format!(
                "{} is not the key {:?} built into this tool; licences signed with it would not verify",
                args.key.display(),
                args.key_id
            ));
        }
        Some(_) => {}
        None => eprintln!(
            "enclave-license: warning: key {:?} is not built into this tool; only builds that list it will accept this licence",
            args.key_id
        ),
    }
    let armored = sign(&payload_bytes, &args.key_id, &pair);
    // Self-check: the licence verifies with the key that signed it.
    let verified = parse_and_verify(armored.as_bytes(), &TrustedKeys::explicit(public))
        .map_err(|e| format!("the issued licence does not verify: {e}"))?;
    match &args.out {
        Some(path) => {
            write_new(path, 0o644, armored.as_bytes())?;
            eprintln!(
                "licence {} for {:?} written to {}",
                verified.payload.license_id,
                verified.payload.customer,
                path.display()
            );
        }
        None => print!("{armored}"),
    }
    Ok(())
}

fn inspect_file(path: &Path) -> Result<(), String> {
    let text = read_capped(path, MAX_LICENSE_BYTES)?;
    let inspection =
        inspect(&text, &TrustedKeys::builtin()).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("Key-Id:    {}", inspection.key_id);
    match &inspection.signature {
        Ok(()) => println!(
            "Signature: verifies against the built-in key {:?}",
            inspection.key_id
        ),
        Err(e) => println!("Signature: does NOT verify against the built-in keys: {e}"),
    }
    match &inspection.payload {
        Ok(_) => println!("Payload:   valid"),
        Err(e) => println!("Payload:   NOT valid: {e}"),
    }
    match serde_json::from_slice::<serde_json::Value>(&inspection.payload_bytes) {
        Ok(value) => println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_else(|_| value.to_string())
        ),
        Err(_) => println!("{}", String::from_utf8_lossy(&inspection.payload_bytes)),
    }
    Ok(())
}

fn verify_report(path: &Path, request: Option<&Path>) -> Result<(), String> {
    let expected = match request {
        Some(request_path) => {
            let text = read_capped(request_path, MAX_ACTIVATION_BYTES)?;
            let request = parse_activation_request(&text)
                .map_err(|e| format!("{}: {e}", request_path.display()))?;
            Some(request.instance_public_key)
        }
        None => None,
    };
    let text = read_capped(path, enclave::license::activation::MAX_USAGE_REPORT_BYTES)?;
    let report = enclave::license::verify_usage_report(&text, expected.as_deref())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if expected.is_none() {
        eprintln!("note: without --request only the report's integrity is checked, not which installation signed it");
    }
    println!("{}", String::from_utf8_lossy(&report.json));
    Ok(())
}

fn verify(path: &Path, public_key: Option<&Path>) -> Result<(), String> {
    let keys = match public_key {
        Some(key_path) => {
            let text = read_capped(key_path, 4096)?;
            let text = String::from_utf8(text)
                .map_err(|_| format!("{}: not a text file", key_path.display()))?;
            TrustedKeys::explicit(
                PublicKeyFile::parse(&text).map_err(|e| format!("{}: {e}", key_path.display()))?,
            )
        }
        None => TrustedKeys::builtin(),
    };
    let text = read_capped(path, MAX_LICENSE_BYTES)?;
    let license = parse_and_verify(&text, &keys).map_err(|e| format!("{}: {e}", path.display()))?;
    let p = &license.payload;
    println!(
        "OK: licence {} for {:?}: {}{}, {} to {}, {}, signed by {}",
        p.license_id,
        p.customer,
        p.edition.as_str(),
        if p.trial { " (trial)" } else { "" },
        format_rfc3339(p.starts_at),
        format_rfc3339(p.expires_at),
        match &p.installation_id {
            Some(id) => format!("installation {id}"),
            None => "site licence".to_string(),
        },
        license.key_id
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use enclave::license::{ActivationCounts, ActivationRequest, InstanceKey};
    use std::os::unix::fs::PermissionsExt as _;

    fn fixture(name: &str) -> String {
        format!(
            "{}/tests/fixtures/license/{name}",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    fn issue_args(extra: &[&str]) -> IssueArgs {
        let key = fixture("test-key.pk8");
        let mut argv = vec![
            "enclave-license",
            "issue",
            "--key",
            &key,
            "--key-id",
            "enclave-test-1",
        ];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Issue(args) => *args,
            _ => panic!("not issue"),
        }
    }

    fn test_keys() -> TrustedKeys {
        let text = fs::read_to_string(fixture("test-key.pub")).expect("read");
        TrustedKeys::explicit(PublicKeyFile::parse(&text).expect("parses"))
    }

    #[test]
    fn issue_binds_the_installation_of_an_activation_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = InstanceKey::from_pkcs8(&InstanceKey::generate().expect("gen")).expect("load");
        let request = ActivationRequest::new(
            "inst-42",
            "host-1",
            "0.1.0",
            ActivationCounts::default(),
            now_utc(),
            &key,
        );
        let request_path = dir.path().join("request.txt");
        fs::write(&request_path, request.to_compact(&key).expect("signs")).expect("write");
        let out = dir.path().join("licence.txt");
        let (request_arg, out_arg) = (
            request_path.display().to_string(),
            out.display().to_string(),
        );
        issue(&issue_args(&[
            "--request",
            &request_arg,
            "--customer",
            "ACME",
            "--edition",
            "pro",
            "--users",
            "unlimited",
            "--tenants",
            "7",
            "--feature",
            "sso",
            "--out",
            &out_arg,
        ]))
        .expect("issues");
        let verified =
            parse_and_verify(&fs::read(&out).expect("read"), &test_keys()).expect("verifies");
        let p = verified.payload;
        assert_eq!(p.installation_id.as_deref(), Some("inst-42"));
        assert_eq!(p.limits.users, None);
        assert_eq!(p.limits.tenants, Some(7));
        assert_eq!(p.limits.storage_gb, Some(50), "edition default");
        assert_eq!(p.features, BTreeSet::from(["sso".to_string()]));
        assert_eq!(p.grace_days, 14);
        assert_eq!(p.expires_at - p.starts_at, Duration::days(365));
        assert_eq!(p.license_id.len(), 32);
        // Never overwrites.
        assert!(issue(&issue_args(&[
            "--site",
            "--customer",
            "ACME",
            "--edition",
            "pro",
            "--out",
            &out_arg
        ]))
        .is_err());
    }

    #[test]
    fn issue_requires_a_binding_and_valid_dates() {
        assert!(payload_from_flags(&issue_args(&["--customer", "A", "--edition", "pro"])).is_err());
        assert!(payload_from_flags(&issue_args(&[
            "--site",
            "--customer",
            "A",
            "--edition",
            "pro",
            "--starts-at",
            "2027-01-01T00:00:00Z",
            "--expires-at",
            "2026-01-01T00:00:00Z"
        ]))
        .is_err());
        let trial = payload_from_flags(&issue_args(&[
            "--site",
            "--customer",
            "A",
            "--edition",
            "enterprise",
            "--trial",
        ]))
        .expect("builds");
        let p = LicensePayload::from_json(&trial).expect("valid");
        assert_eq!(p.expires_at - p.starts_at, Duration::days(30));
        assert_eq!(p.limits, Plan::Enterprise.default_limits());
        assert_eq!(p.features.len(), Feature::ALL.len());
    }

    #[test]
    fn keygen_writes_a_private_key_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("keys");
        keygen("k-1", &out).expect("generates");
        let mode = fs::metadata(out.join("k-1.pk8"))
            .expect("pk8")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let public = PublicKeyFile::parse(&fs::read_to_string(out.join("k-1.pub")).expect("pub"))
            .expect("parses");
        let pair = load_signing_key(&fs::read(out.join("k-1.pk8")).expect("pk8")).expect("loads");
        assert_eq!(public_key_file("k-1", &pair).expect("public"), public);
        assert!(keygen("k-1", &out).is_err());
        assert!(keygen("../k", &out).is_err());
    }

    #[test]
    fn limits_and_json_fields_are_checked() {
        assert_eq!(parse_limit("12").expect("n").0, Some(12));
        assert_eq!(parse_limit("unlimited").expect("u").0, None);
        assert!(parse_limit("-1").is_err());
        assert!(check_known_fields(br#"{"format":1,"limits":{"users":1}}"#).is_ok());
        assert!(check_known_fields(br#"{"format":1,"limits":{"user":1}}"#).is_err());
        assert!(check_known_fields(br#"{"format":1,"extra":true}"#).is_err());
    }
}
