//! The uploaded originals: `<tenant>/files/<dataset>/<document>`, kept byte for byte.
//!
//! An upload is streamed into `files/.incoming/` (hashed and counted on the way), fsynced, and renamed
//! into place inside the transaction that records the document, so a committed document always has
//! its file. Leftovers in `.incoming/` from a crash are removed when the server starts.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::KnowledgeError;

/// The directory of a tenant's files, inside the tenant directory.
pub const FILES_DIR: &str = "files";
const INCOMING_DIR: &str = ".incoming";

/// A tenant's file store.
pub struct FileStore {
    root: PathBuf,
}

fn io<'a>(context: &str, path: &'a Path) -> impl FnOnce(std::io::Error) -> KnowledgeError + 'a {
    let context = context.to_string();
    move |e| KnowledgeError::Io(format!("{context} {}: {e}", path.display()))
}

/// Whether `id` is one of our hex ids (so it can become a path component).
fn is_safe_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

impl FileStore {
    pub fn new(tenant_dir: &Path) -> FileStore {
        FileStore {
            root: tenant_dir.join(FILES_DIR),
        }
    }

    /// The path of a document's file.
    pub fn path(&self, dataset_id: &str, document_id: &str) -> Result<PathBuf, KnowledgeError> {
        if !is_safe_id(dataset_id) || !is_safe_id(document_id) {
            return Err(KnowledgeError::Invalid("malformed id".into()));
        }
        Ok(self.root.join(dataset_id).join(document_id))
    }

    /// A new file to stream an upload into.
    pub fn incoming(&self) -> Result<Incoming, KnowledgeError> {
        let dir = self.root.join(INCOMING_DIR);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        let path = dir.join(super::new_id());
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io("creating", &path))?;
        Ok(Incoming {
            path,
            file: Some(std::io::BufWriter::with_capacity(256 * 1024, file)),
            hasher: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
            kept: false,
        })
    }

    /// Moves a finished upload to its place (and fsyncs the directory).
    pub fn install(
        &self,
        incoming: &mut Incoming,
        dataset_id: &str,
        document_id: &str,
    ) -> Result<PathBuf, KnowledgeError> {
        let target = self.path(dataset_id, document_id)?;
        let dir = self.root.join(dataset_id);
        std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
        std::fs::rename(&incoming.path, &target).map_err(io("moving the upload to", &target))?;
        crate::db::fsync_dir(&dir).map_err(io("syncing", &dir))?;
        incoming.kept = true;
        Ok(target)
    }

    /// Removes a document's file (missing is fine).
    pub fn remove(&self, dataset_id: &str, document_id: &str) -> Result<(), KnowledgeError> {
        let path = self.path(dataset_id, document_id)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &path)(e)),
        }
    }

    /// Removes a dataset's files.
    pub fn remove_dataset(&self, dataset_id: &str) -> Result<(), KnowledgeError> {
        if !is_safe_id(dataset_id) {
            return Err(KnowledgeError::Invalid("malformed id".into()));
        }
        let dir = self.root.join(dataset_id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &dir)(e)),
        }
    }

    /// Removes uploads a crash left half-way.
    pub fn clean_incoming(&self) {
        let dir = self.root.join(INCOMING_DIR);
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// An upload being received. Dropped without [`FileStore::install`], its file is removed.
pub struct Incoming {
    path: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: ring::digest::Context,
    bytes: u64,
    kept: bool,
}

impl Incoming {
    /// Appends a chunk of the upload.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), KnowledgeError> {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
        if let Some(file) = self.file.as_mut() {
            file.write_all(chunk).map_err(io("writing", &self.path))?;
        }
        Ok(())
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flushes and fsyncs the file; returns its SHA-256 (hex).
    pub fn finish(&mut self) -> Result<String, KnowledgeError> {
        if let Some(file) = self.file.take() {
            let file = file
                .into_inner()
                .map_err(|e| KnowledgeError::Io(format!("writing {}: {e}", self.path.display())))?;
            file.sync_all().map_err(io("syncing", &self.path))?;
        }
        Ok(hex::encode(self.hasher.clone().finish()))
    }

    /// Where the file is while it is incoming.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Incoming {
    fn drop(&mut self) {
        if !self.kept {
            self.file.take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
