//! Encrypted backups of the data directory (docs/backup.md, format in docs/backup-format.md): a
//! consistent snapshot of `system.db` and every tenant database (SQLite's online backup, then
//! `PRAGMA integrity_check` on the copy) plus the tenants' uploaded files, streamed through zstd into
//! the encrypted [`archive`] — one file, memory independent of the data's size — with a manifest of
//! every entry's size and SHA-256. `verify` reads a backup without touching live data; `restore`
//! rebuilds a data directory from one.
//!
//! Left out on purpose: the Tantivy indexes (rebuilt after a restore), the models (files fetched or
//! imported again), the instance key and other secrets (not in data backups), and earlier backups.

use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

pub mod archive;
pub mod in_place;
pub mod secrets;
pub mod service;
pub mod settings;

use archive::{DecryptingReader, EncryptingWriter, Header};

/// The file name suffix of a finished backup.
pub const SUFFIX: &str = ".enclave-backup";
/// The suffix of a backup being written (never listed as a backup; removed when the write fails).
pub const PARTIAL_SUFFIX: &str = ".enclave-backup.partial";
/// The shortest passphrase accepted for a new backup.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// What can go wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("this is not an Enclave backup (its first bytes are not ENCLBAK1)")]
    NotABackup,
    #[error("the passphrase does not open this backup")]
    WrongPassphrase,
    #[error("the backup is damaged: {0}")]
    Damaged(String),
    #[error("the backup is incomplete: {0}")]
    Truncated(String),
    #[error("{0}")]
    Crypto(String),
    #[error("{0}")]
    Invalid(String),
    #[error("another backup or restore is running (lock {0})")]
    Busy(String),
    #[error("not enough free space in {dir}: about {needed} bytes needed, {available} available")]
    NoSpace {
        dir: String,
        needed: u64,
        available: u64,
    },
    #[error("the database {path} of the backup is newer than this binary (schema {found}, this version knows up to {known}); restore it with a newer Enclave")]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("no space left on the device: {0}")]
    DiskFull(String),
    #[error("{0}")]
    Io(String),
}

impl From<io::Error> for BackupError {
    fn from(e: io::Error) -> Self {
        if e.raw_os_error() == Some(nix::libc::ENOSPC) {
            return BackupError::DiskFull(e.to_string());
        }
        BackupError::Io(e.to_string())
    }
}

impl From<rusqlite::Error> for BackupError {
    fn from(e: rusqlite::Error) -> Self {
        BackupError::Io(format!("database: {e}"))
    }
}

/// One file in a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// One database in a backup.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatabaseInfo {
    pub path: String,
    /// `system` or `tenant`.
    pub kind: String,
    pub schema_version: u32,
    pub snapshot_at: String,
}

/// The last record of a backup: what it holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub app_version: String,
    pub created_at: String,
    pub installation_id: String,
    pub entries: Vec<Entry>,
    pub databases: Vec<DatabaseInfo>,
}

/// What `create` made.
#[derive(Debug, Clone, Serialize)]
pub struct Created {
    pub path: PathBuf,
    pub bytes: u64,
    pub entries: usize,
    pub databases: usize,
    pub content_bytes: u64,
}

/// What `verify` or `restore` found.
#[derive(Debug, Clone, Serialize)]
pub struct Checked {
    pub header: Header,
    pub manifest: Manifest,
    pub content_bytes: u64,
}

const RECORD_FILE: u8 = 1;
const RECORD_MANIFEST: u8 = 2;

/// Reads the passphrase from `ENCLAVE_BACKUP_PASSPHRASE` or a file (never from the command line).
pub fn passphrase(file: Option<&Path>) -> Result<String, BackupError> {
    let text = match file {
        Some(path) => fs::read_to_string(path).map_err(|e| {
            BackupError::Invalid(format!("the passphrase file {}: {e}", path.display()))
        })?,
        None => std::env::var(crate::config::env::BACKUP_PASSPHRASE).map_err(|_| {
            BackupError::Invalid(
                "give the backup passphrase in ENCLAVE_BACKUP_PASSPHRASE or with --passphrase-file"
                    .into(),
            )
        })?,
    };
    let text = text.trim_end_matches(['\n', '\r']).to_string();
    if text.is_empty() {
        return Err(BackupError::Invalid(
            "the backup passphrase is empty".into(),
        ));
    }
    Ok(text)
}

/// Takes the backup lock of `dir` (one backup or restore at a time); held until dropped.
fn lock(dir: &Path) -> Result<nix::fcntl::Flock<File>, BackupError> {
    let path = dir.join(".lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| BackupError::Busy(path.display().to_string()))
}

fn sha256_hex(ctx: ring::digest::Context) -> String {
    hex::encode(ctx.finish())
}

/// The databases and files a backup of `data_dir` holds: (path in the backup, path on disk).
fn tenant_dirs(data_dir: &Path) -> Result<Vec<(String, PathBuf)>, BackupError> {
    let mut out = Vec::new();
    let tenants = data_dir.join("tenants");
    if tenants.is_dir() {
        for entry in fs::read_dir(&tenants)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().to_string();
            if entry.path().join("tenant.db").is_file()
                && crate::tenancy::TenantId::parse(&name).is_ok()
            {
                out.push((name, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Files under `dir`, recursively, sorted (paths relative to `base`, with `/`).
fn files_under(
    base: &Path,
    dir: &Path,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), BackupError> {
    if !dir.is_dir() {
        return Ok(());
    }
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            files_under(base, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(base)
                .map_err(|_| BackupError::Io("a path outside the data directory".into()))?;
            out.push((rel.to_string_lossy().replace('\\', "/"), path));
        }
    }
    Ok(())
}

/// Copies a live database with SQLite's online backup and checks the copy.
fn snapshot_database(source: &Path, target: &Path) -> Result<(u32, String), BackupError> {
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent)?;
    }
    let conn = rusqlite::Connection::open_with_flags(
        source,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let at = crate::time_util::now_rfc3339();
    conn.backup(rusqlite::MAIN_DB, target, None)?;
    drop(conn);
    let mut copy = rusqlite::Connection::open(target)?;
    let check: String = copy.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(BackupError::Damaged(format!(
            "the snapshot of {} fails its integrity check: {check}",
            source.display()
        )));
    }
    let version: u32 = copy.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    // The usage meter's bounds (`usage::allowance`) are settled in the copy as at start-up: a copy of a
    // live tenant database keeps its exact counts, one taken after a machine restart gets the raise; a
    // restored copy never carries bounds.
    let has_bounds: bool = copy.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'usage_allowance'",
        [],
        |r| r.get(0),
    )?;
    if has_bounds {
        crate::usage::allowance::recover(&mut copy)?;
    }
    copy.execute_batch("PRAGMA journal_mode = DELETE")?;
    Ok((version, at))
}

/// Removes what an interrupted backup (killed, power lost) left in `dir`: `*.partial` files and
/// staging copies. Called under the lock, so no backup is writing them.
fn remove_leftovers(dir: &Path) -> Result<(), BackupError> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(PARTIAL_SUFFIX) {
            fs::remove_file(entry.path())?;
        } else if name.starts_with(".staging-") && entry.file_type()?.is_dir() {
            fs::remove_dir_all(entry.path())?;
        }
    }
    Ok(())
}

/// Bytes free for an unprivileged writer in `dir`.
fn available_bytes(dir: &Path) -> Result<u64, BackupError> {
    let stat = nix::sys::statvfs::statvfs(dir).map_err(|e| BackupError::Io(e.to_string()))?;
    Ok(stat.blocks_available() as u64 * stat.fragment_size() as u64)
}

/// What the reading thread hands the writing one: a file's start, its bytes, its hash.
enum Piece {
    Start { rel: String, size: u64 },
    Data(Vec<u8>),
    End(String),
}

/// Reads and hashes `sources` on its own thread, handing their bytes over a bounded channel (at most
/// 16 pieces of 256 KiB in flight), so reading and hashing overlap compression and encryption.
fn read_sources(
    sources: Vec<(String, PathBuf)>,
) -> (
    std::sync::mpsc::Receiver<Result<Piece, BackupError>>,
    std::thread::JoinHandle<()>,
) {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let reader = std::thread::spawn(move || {
        for (rel, path) in sources {
            let sent = (|| {
                let mut file = File::open(&path)?;
                let size = file.metadata()?.len();
                if tx
                    .send(Ok(Piece::Start {
                        rel: rel.clone(),
                        size,
                    }))
                    .is_err()
                {
                    return Ok(false);
                }
                let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
                let mut left = size;
                while left > 0 {
                    let mut buf = vec![0u8; (256 * 1024).min(left as usize)];
                    let n = file.read(&mut buf)?;
                    if n == 0 {
                        return Err(BackupError::Io(format!("{rel} shrank while it was read")));
                    }
                    buf.truncate(n);
                    hash.update(&buf);
                    left -= n as u64;
                    if tx.send(Ok(Piece::Data(buf))).is_err() {
                        return Ok(false);
                    }
                }
                Ok(tx.send(Ok(Piece::End(sha256_hex(hash)))).is_ok())
            })();
            match sent {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    (rx, reader)
}

/// Writes the records of `sources` (path in the backup, path on disk) into `out`; their entries.
fn write_records(
    out: &mut impl Write,
    sources: Vec<(String, PathBuf)>,
) -> Result<Vec<Entry>, BackupError> {
    let (pieces, reader) = read_sources(sources);
    let mut entries = Vec::new();
    let mut current: Option<(String, u64)> = None;
    let result = (|| {
        for piece in &pieces {
            match piece? {
                Piece::Start { rel, size } => {
                    let path_len = u16::try_from(rel.len())
                        .map_err(|_| BackupError::Invalid(format!("path too long: {rel}")))?;
                    out.write_all(&[RECORD_FILE])?;
                    out.write_all(&path_len.to_be_bytes())?;
                    out.write_all(rel.as_bytes())?;
                    out.write_all(&size.to_be_bytes())?;
                    current = Some((rel, size));
                }
                Piece::Data(bytes) => out.write_all(&bytes)?,
                Piece::End(sha256) => {
                    let (path, size) = current
                        .take()
                        .ok_or_else(|| BackupError::Io("a file ended before it began".into()))?;
                    entries.push(Entry { path, size, sha256 });
                }
            }
        }
        Ok::<_, BackupError>(())
    })();
    // Dropping the receiver stops the reader if writing failed.
    drop(pieces);
    let _ = reader.join();
    result.map(|()| entries)
}

/// What kind of backup this is (recorded in the header).
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Manual,
    Scheduled,
    PreUpgrade,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manual => "manual",
            Kind::Scheduled => "scheduled",
            Kind::PreUpgrade => "pre-upgrade",
        }
    }
}

/// New archives need a passphrase of at least [`MIN_PASSPHRASE_CHARS`] characters.
fn check_passphrase(passphrase: &str) -> Result<(), BackupError> {
    if passphrase.chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(BackupError::Invalid(format!(
            "the backup passphrase must have at least {MIN_PASSPHRASE_CHARS} characters"
        )));
    }
    Ok(())
}

/// Backs up `data_dir` into a new file in `out_dir`, while the server may be running.
pub fn create(
    data_dir: &Path,
    out_dir: &Path,
    passphrase: &str,
    kind: Kind,
) -> Result<Created, BackupError> {
    create_with(
        data_dir,
        out_dir,
        passphrase,
        kind,
        archive::PBKDF2_ITERATIONS,
    )
}

fn create_with(
    data_dir: &Path,
    out_dir: &Path,
    passphrase: &str,
    kind: Kind,
    iterations: u32,
) -> Result<Created, BackupError> {
    check_passphrase(passphrase)?;
    let system_db = crate::db::system::system_db_path(data_dir);
    if !system_db.is_file() {
        return Err(BackupError::Invalid(format!(
            "{} holds no Enclave data (no system.db)",
            data_dir.display()
        )));
    }
    fs::create_dir_all(out_dir)?;
    let _lock = lock(out_dir)?;
    remove_leftovers(out_dir)?;
    let installation_id = {
        let conn = rusqlite::Connection::open_with_flags(
            &system_db,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )?;
        crate::db::system::read_instance(&conn)?
            .map(|i| i.installation_id)
            .unwrap_or_default()
    };
    let tenants = tenant_dirs(data_dir)?;
    let mut files = Vec::new();
    for (_, dir) in &tenants {
        files_under(data_dir, &dir.join("files"), &mut files)?;
    }
    // Free space: the snapshots plus the archive (never larger than its content, give or take).
    let mut needed = fs::metadata(&system_db)?.len();
    for (_, dir) in &tenants {
        needed += fs::metadata(dir.join("tenant.db"))?.len();
    }
    let content: u64 = files
        .iter()
        .map(|(_, p)| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>()
        + needed;
    let needed = needed + content + 16 * 1024 * 1024;
    let available = available_bytes(out_dir)?;
    if available < needed {
        return Err(BackupError::NoSpace {
            dir: out_dir.display().to_string(),
            needed,
            available,
        });
    }
    let created_at = crate::time_util::now_rfc3339();
    let stamp: String = created_at
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    // Two backups in one second (a failed upgrade, then another) must not overwrite each other.
    let base = format!("enclave-{stamp}-{}", kind.as_str());
    let name = (1..)
        .map(|n| match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        })
        .find(|name| !out_dir.join(format!("{name}{SUFFIX}")).exists())
        .unwrap_or(base);
    let staging = out_dir.join(format!(".staging-{name}"));
    let partial = out_dir.join(format!("{name}{PARTIAL_SUFFIX}"));
    let result = (|| {
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging)?;
        let mut databases = Vec::new();
        let (version, at) = snapshot_database(&system_db, &staging.join("system.db"))?;
        databases.push(DatabaseInfo {
            path: "system.db".into(),
            kind: "system".into(),
            schema_version: version,
            snapshot_at: at,
        });
        for (id, dir) in &tenants {
            let rel = format!("tenants/{id}/tenant.db");
            let (version, at) = snapshot_database(&dir.join("tenant.db"), &staging.join(&rel))?;
            databases.push(DatabaseInfo {
                path: rel,
                kind: "tenant".into(),
                schema_version: version,
                snapshot_at: at,
            });
        }
        let sources: Vec<(String, PathBuf)> = databases
            .iter()
            .map(|db| (db.path.clone(), staging.join(&db.path)))
            .chain(files.iter().cloned())
            .collect();
        let header = Header::new(&created_at, &installation_id, kind.as_str());
        let (manifest, content_bytes) =
            write_archive(&partial, passphrase, header, iterations, sources, databases)?;
        Ok::<_, BackupError>((manifest, content_bytes))
    })();
    let _ = fs::remove_dir_all(&staging);
    let (manifest, content_bytes) = match result {
        Ok(done) => done,
        Err(e) => {
            let _ = fs::remove_file(&partial);
            return Err(match e {
                BackupError::DiskFull(_) => BackupError::DiskFull(format!(
                    "{} filled up during the backup; the partial file was removed",
                    out_dir.display()
                )),
                e => e,
            });
        }
    };
    let path = out_dir.join(format!("{name}{SUFFIX}"));
    fs::rename(&partial, &path)?;
    crate::db::fsync_dir(out_dir)?;
    Ok(Created {
        bytes: fs::metadata(&path)?.len(),
        path,
        entries: manifest.entries.len(),
        databases: manifest.databases.len(),
        content_bytes,
    })
}

/// Writes one archive file: the header, then `sources` (path in the archive, path on disk) and the
/// manifest as records, compressed and encrypted; synced before it returns.
fn write_archive(
    target: &Path,
    passphrase: &str,
    header: Header,
    iterations: u32,
    sources: Vec<(String, PathBuf)>,
    databases: Vec<DatabaseInfo>,
) -> Result<(Manifest, u64), BackupError> {
    let file = BufWriter::with_capacity(256 * 1024, File::create(target)?);
    let (created_at, installation_id) = (header.created_at.clone(), header.installation_id.clone());
    let (encrypting, _) = EncryptingWriter::new(file, passphrase.as_bytes(), header, iterations)?;
    let mut zstd = zstd::stream::write::Encoder::new(encrypting, 3)?;
    let entries = write_records(&mut zstd, sources)?;
    let content_bytes = entries.iter().map(|e| e.size).sum::<u64>();
    let manifest = Manifest {
        format: 1,
        app_version: crate::VERSION.to_string(),
        created_at,
        installation_id,
        entries,
        databases,
    };
    let json = serde_json::to_vec(&manifest).map_err(|e| BackupError::Io(e.to_string()))?;
    zstd.write_all(&[RECORD_MANIFEST])?;
    zstd.write_all(&(json.len() as u32).to_be_bytes())?;
    zstd.write_all(&json)?;
    let encrypting = zstd.finish()?;
    let file = encrypting.finish()?;
    let file = file
        .into_inner()
        .map_err(|e| BackupError::Io(e.to_string()))?;
    file.sync_all()?;
    Ok((manifest, content_bytes))
}

/// Reads a backup's records, giving each file's content to `on_file` (which must read all of it),
/// and checks every size and hash against the manifest at the end.
fn read_records(
    file: &Path,
    passphrase: &str,
    mut on_file: impl FnMut(&str, &mut dyn Read) -> Result<(), BackupError>,
) -> Result<Checked, BackupError> {
    let input = BufReader::with_capacity(
        256 * 1024,
        File::open(file).map_err(|e| BackupError::Io(format!("{}: {e}", file.display())))?,
    );
    let (decrypting, header) = DecryptingReader::open(input, passphrase.as_bytes())?;
    let mut zstd = zstd::stream::read::Decoder::new(decrypting)?;
    let result = (|| {
        let mut seen: Vec<Entry> = Vec::new();
        let mut content_bytes = 0u64;
        loop {
            let mut kind = [0u8; 1];
            zstd.read_exact(&mut kind)?;
            match kind[0] {
                RECORD_FILE => {
                    let mut len = [0u8; 2];
                    zstd.read_exact(&mut len)?;
                    let mut path = vec![0u8; u16::from_be_bytes(len) as usize];
                    zstd.read_exact(&mut path)?;
                    let path = String::from_utf8(path)
                        .map_err(|_| BackupError::Damaged("a path is not UTF-8".into()))?;
                    let mut size = [0u8; 8];
                    zstd.read_exact(&mut size)?;
                    let size = u64::from_be_bytes(size);
                    let mut hashing = HashingReader {
                        inner: (&mut zstd).take(size),
                        hash: ring::digest::Context::new(&ring::digest::SHA256),
                        read: 0,
                    };
                    on_file(&path, &mut hashing)?;
                    io::copy(&mut hashing, &mut io::sink())?;
                    if hashing.read != size {
                        return Err(BackupError::Truncated(format!("{path} is cut short")));
                    }
                    content_bytes += size;
                    seen.push(Entry {
                        path,
                        size,
                        sha256: sha256_hex(hashing.hash),
                    });
                }
                RECORD_MANIFEST => {
                    let mut len = [0u8; 4];
                    zstd.read_exact(&mut len)?;
                    let mut json = vec![0u8; u32::from_be_bytes(len) as usize];
                    zstd.read_exact(&mut json)?;
                    let manifest: Manifest = serde_json::from_slice(&json).map_err(|e| {
                        BackupError::Damaged(format!("the manifest is not readable: {e}"))
                    })?;
                    let mut rest = [0u8; 1];
                    if zstd.read(&mut rest)? != 0 {
                        return Err(BackupError::Damaged("records follow the manifest".into()));
                    }
                    if manifest.entries != seen {
                        let wrong = manifest
                            .entries
                            .iter()
                            .find(|e| !seen.contains(e))
                            .map_or_else(|| "the list of files".to_string(), |e| e.path.clone());
                        return Err(BackupError::Damaged(format!(
                            "{wrong} does not match the manifest (size or SHA-256)"
                        )));
                    }
                    return Ok((manifest, content_bytes));
                }
                other => return Err(BackupError::Damaged(format!("unknown record kind {other}"))),
            }
        }
    })();
    match result {
        Ok((manifest, content_bytes)) => Ok(Checked {
            header,
            manifest,
            content_bytes,
        }),
        Err(e) => {
            // The decryption layer's reason is the precise one.
            let decrypting = zstd.get_mut();
            Err(decrypting.get_mut().failure.take().unwrap_or(match e {
                BackupError::Io(m) => BackupError::Damaged(m),
                other => other,
            }))
        }
    }
}

struct HashingReader<R: Read> {
    inner: R,
    hash: ring::digest::Context,
    read: u64,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        self.read += n as u64;
        Ok(n)
    }
}

/// A path of the backup as a relative path under a directory, refusing anything that would leave it.
fn safe_relative(path: &str) -> Result<PathBuf, BackupError> {
    let p = Path::new(path);
    if path.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(BackupError::Damaged(format!("unsafe path {path:?}")));
    }
    Ok(p.to_path_buf())
}

/// Checks a restored database copy: integrity and a schema this binary knows.
fn check_database(path: &Path, info: &DatabaseInfo) -> Result<(), BackupError> {
    let conn = rusqlite::Connection::open(path)?;
    let check: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    if check != "ok" {
        return Err(BackupError::Damaged(format!(
            "{} fails its integrity check: {check}",
            info.path
        )));
    }
    let version: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let set = if info.kind == "system" {
        crate::db::migrate::MigrationSet::system()
    } else {
        crate::db::migrate::MigrationSet::tenant()
    }
    .map_err(|e| BackupError::Io(e.to_string()))?;
    if version > set.latest() {
        return Err(BackupError::TooNew {
            path: info.path.clone(),
            found: version,
            known: set.latest(),
        });
    }
    Ok(())
}

/// Decrypts a backup and checks every hash and every database, in a scratch directory beside it;
/// live data is not touched.
pub fn verify(file: &Path, passphrase: &str) -> Result<Checked, BackupError> {
    let scratch = tempfile_dir(file)?;
    let result = (|| {
        let mut dbs = Vec::new();
        let checked = read_records(file, passphrase, |path, content| {
            if path.ends_with(".db") {
                let target = scratch.join(format!("db-{}", dbs.len()));
                io::copy(content, &mut File::create(&target)?)?;
                dbs.push((path.to_string(), target));
            }
            Ok(())
        })?;
        for (path, target) in &dbs {
            let info = checked
                .manifest
                .databases
                .iter()
                .find(|d| &d.path == path)
                .ok_or_else(|| BackupError::Damaged(format!("{path} is not in the manifest")))?;
            check_database(target, info)?;
        }
        Ok(checked)
    })();
    let _ = fs::remove_dir_all(&scratch);
    result
}

fn tempfile_dir(near: &Path) -> Result<PathBuf, BackupError> {
    let parent = near
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let dir = parent.join(format!(
        ".verify-{}-{}",
        std::process::id(),
        hex::encode(crate::tenancy::random_bytes::<4>())
    ));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Restores a backup into `into`, which must not exist or be empty: everything is written and checked
/// in `into/.restoring` first and moved into place only when all of it is sound.
pub fn restore(file: &Path, passphrase: &str, into: &Path) -> Result<Checked, BackupError> {
    if into.exists() && fs::read_dir(into)?.next().is_some() {
        return Err(BackupError::Invalid(format!(
            "{} is not empty: restore into a new or empty directory",
            into.display()
        )));
    }
    fs::create_dir_all(into)?;
    let held = lock(into)?;
    let staging = into.join(".restoring");
    let result = (|| {
        fs::create_dir_all(&staging)?;
        let checked = read_records(file, passphrase, |path, content| {
            let target = staging.join(safe_relative(path)?);
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut out = File::create(&target)?;
            io::copy(content, &mut out)?;
            out.sync_all()?;
            Ok(())
        })?;
        for info in &checked.manifest.databases {
            check_database(&staging.join(safe_relative(&info.path)?), info)?;
        }
        Ok(checked)
    })();
    let checked = match result {
        Ok(checked) => checked,
        Err(e) => {
            // A failed restore leaves the directory as it found it: empty.
            let _ = fs::remove_dir_all(&staging);
            drop(held);
            let _ = fs::remove_file(into.join(".lock"));
            return Err(e);
        }
    };
    for entry in fs::read_dir(&staging)? {
        let entry = entry?;
        fs::rename(entry.path(), into.join(entry.file_name()))?;
    }
    fs::remove_dir(&staging)?;
    drop(held);
    let _ = fs::remove_file(into.join(".lock"));
    crate::db::fsync_dir(into)?;
    Ok(checked)
}

/// The plain header of a finished backup file (no passphrase needed): who made it, when, what kind.
pub fn read_header(path: &Path) -> Result<Header, BackupError> {
    if !path.to_string_lossy().ends_with(SUFFIX) {
        return Err(BackupError::Invalid(format!(
            "{} is not a finished backup (its name does not end in {SUFFIX})",
            path.display()
        )));
    }
    let file =
        File::open(path).map_err(|e| BackupError::Invalid(format!("{}: {e}", path.display())))?;
    Ok(archive::read_header(&mut BufReader::new(file))?.0)
}

/// A finished backup in a directory.
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub path: PathBuf,
    pub bytes: u64,
    pub header: Option<Header>,
}

/// The finished backups in `dir` (partial files are not backups), newest first.
pub fn list(dir: &Path) -> Result<Vec<Listed>, BackupError> {
    let mut out = Vec::new();
    if !dir.is_dir() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.ends_with(SUFFIX) {
            continue;
        }
        let path = entry.path();
        let header = File::open(&path)
            .ok()
            .and_then(|f| archive::read_header(&mut BufReader::new(f)).ok())
            .map(|(h, _)| h);
        out.push(Listed {
            bytes: entry.metadata()?.len(),
            path,
            header,
        });
    }
    out.sort_by(|a, b| b.path.cmp(&a.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_settles_the_meters_bounds_and_leaves_the_original_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let source = dir.path().join("tenant.db");
        let mut conn = crate::db::open_connection(
            &source,
            crate::db::OpenMode::CreateIfMissing,
            std::time::Duration::from_secs(5),
        )
        .expect("open");
        crate::db::migrate::MigrationSet::tenant()
            .expect("set")
            .apply(&mut conn, &source)
            .expect("migrate");
        // Bounds left behind by a server that ran before the machine restarted, not yet started again.
        conn.execute_batch(
            "INSERT INTO tenant_meta (id, tenant_id, created_at) VALUES (1, 'acme', '2026-11-01T00:00:00Z');
             INSERT INTO usage_daily VALUES ('2026-11-26', 'key:a', 'api_requests', 100);
             INSERT INTO usage_allowance VALUES ('2026-11-26', 'key:a', 'api_requests', 140, 'an-earlier-boot');",
        )
        .expect("seed");
        let target = dir.path().join("copy.db");
        snapshot_database(&source, &target).expect("snapshot");
        let read = |path: &Path| -> (i64, i64) {
            let c = rusqlite::Connection::open(path).expect("open");
            (
                c.query_row("SELECT quantity FROM usage_daily", [], |r| r.get(0))
                    .expect("count"),
                c.query_row("SELECT count(*) FROM usage_allowance", [], |r| r.get(0))
                    .expect("bounds"),
            )
        };
        assert_eq!(
            read(&target),
            (140, 0),
            "the copy is raised and carries no bound"
        );
        assert_eq!(
            read(&source),
            (100, 1),
            "the original waits for the server's start-up"
        );
    }

    #[test]
    fn backup_paths_cannot_leave_the_restore_directory() {
        assert!(safe_relative("tenants/acme/files/a.pdf").is_ok());
        for bad in ["", "../x", "/etc/passwd", "tenants/../../x", "./x"] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_data_directory_round_trips_and_damage_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("tenants/acme/files/ab")).expect("mkdir");
        let system = rusqlite::Connection::open(data.join("system.db")).expect("db");
        system
            .execute_batch(
                "CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('system row'); PRAGMA user_version = 1;
                 CREATE TABLE instance (id INTEGER PRIMARY KEY, installation_id TEXT, created_at TEXT,
                     last_started_at TEXT, last_seen_at TEXT);
                 INSERT INTO instance VALUES (1, 'inst-1', 'a', 'b', 'c');",
            )
            .expect("sql");
        let tenant = rusqlite::Connection::open(data.join("tenants/acme/tenant.db")).expect("db");
        tenant
            .execute_batch("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('tenant row'); PRAGMA user_version = 1;")
            .expect("sql");
        fs::write(data.join("tenants/acme/files/ab/doc.txt"), b"uploaded file").expect("write");
        let out = dir.path().join("backups");
        // What a backup killed mid-way leaves: never listed, removed by the next backup.
        fs::create_dir_all(out.join(".staging-enclave-old-manual/tenants")).expect("mkdir");
        fs::write(
            out.join(format!("enclave-old-manual{PARTIAL_SUFFIX}")),
            b"ENCLBAK1 cut",
        )
        .expect("write");
        assert!(list(&out).expect("list").is_empty());
        let created =
            create_with(&data, &out, "correct horse battery", Kind::Manual, 1000).expect("backup");
        let names: Vec<String> = fs::read_dir(&out)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
            .filter(|n| n != ".lock")
            .collect();
        assert_eq!(names.len(), 1, "only the new backup remains: {names:?}");
        assert_eq!((created.entries, created.databases), (3, 2));
        assert_eq!(list(&out).expect("list").len(), 1);
        let checked = verify(&created.path, "correct horse battery").expect("verify");
        assert_eq!(checked.manifest.entries.len(), 3);
        assert_eq!(checked.header.installation_id, "inst-1");
        assert!(matches!(
            verify(&created.path, "wrong passphrase"),
            Err(BackupError::WrongPassphrase)
        ));
        let restored = dir.path().join("restored");
        restore(&created.path, "correct horse battery", &restored).expect("restore");
        assert_eq!(
            fs::read(restored.join("tenants/acme/files/ab/doc.txt")).expect("file"),
            b"uploaded file"
        );
        let row: String = rusqlite::Connection::open(restored.join("tenants/acme/tenant.db"))
            .expect("db")
            .query_row("SELECT x FROM t", [], |r| r.get(0))
            .expect("row");
        assert_eq!(row, "tenant row");
        assert!(matches!(
            restore(&created.path, "correct horse battery", &restored),
            Err(BackupError::Invalid(_))
        ));
        // A flipped byte in the middle of the archive.
        let mut bytes = fs::read(&created.path).expect("read");
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x40;
        let damaged = out.join("damaged.enclave-backup");
        fs::write(&damaged, &bytes).expect("write");
        assert!(matches!(
            verify(&damaged, "correct horse battery"),
            Err(BackupError::Damaged(_))
        ));
        let nowhere = dir.path().join("nowhere");
        assert!(restore(&damaged, "correct horse battery", &nowhere).is_err());
        assert!(
            fs::read_dir(&nowhere).expect("dir").next().is_none(),
            "a failed restore leaves nothing"
        );
        assert!(matches!(
            create_with(&data, &out, "short", Kind::Manual, 1000),
            Err(BackupError::Invalid(_))
        ));
    }
}
