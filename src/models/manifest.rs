//! A model's manifest, `model.toml` in its directory: what the model is (name, kind, format), where it
//! came from and under which licence, its shape (context length, dimensions), and every file with its
//! size and SHA-256. `SHA256SUMS` beside it lists the same hashes in `sha256sum -c` form.
//!
//! Manifests written by `scripts/fetch-models.sh` carry no `[[files]]` table: the files and hashes of
//! those models come from their `SHA256SUMS`.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// What a model is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    Embedding,
    Chat,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Embedding => "embedding",
            ModelKind::Chat => "chat",
        }
    }
}

/// One file of a model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelFile {
    /// Relative to the model's directory.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// The manifest (`model.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Manifest {
    pub name: String,
    pub kind: ModelKind,
    /// `gguf` (chat) or `safetensors` (embedding).
    pub format: String,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    /// Tokens the model can attend to (chat: prompt and answer together).
    #[serde(default)]
    pub context_length: Option<u64>,
    /// Length of an embedding vector.
    #[serde(default)]
    pub dimensions: Option<u64>,
    /// Longest input an embedding model reads; longer inputs are truncated (and reported).
    #[serde(default)]
    pub max_seq_length: Option<u64>,
    /// The GGUF weights' quantisation as installed (e.g. `Q8_0`).
    #[serde(default)]
    pub quantization: Option<String>,
    /// The quantisation of the imported file, when the import converted it to a faster one.
    #[serde(default)]
    pub requantized_from: Option<String>,
    /// The weights file inside the directory (chat: the `.gguf`).
    #[serde(default)]
    pub weights: Option<String>,
    /// RFC 3339 time of the import (absent for models installed by the fetch script).
    #[serde(default)]
    pub imported_at: Option<String>,
    #[serde(default)]
    pub files: Vec<ModelFile>,
}

impl Manifest {
    /// Reads `<dir>/model.toml`.
    pub fn read(dir: &Path) -> Result<Manifest, String> {
        let path = dir.join("model.toml");
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// The manifest as TOML, with a header line.
    pub fn to_toml(&self) -> Result<String, String> {
        let body = toml::to_string(self).map_err(|e| e.to_string())?;
        Ok(format!("# Written by `enclave models import`\n{body}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_script_manifests_read_and_imported_ones_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("model.toml"),
            "# Written by scripts/fetch-models.sh\nname = \"all-MiniLM-L6-v2\"\nkind = \"embedding\"\nformat = \"safetensors\"\nsource = \"PyPI\"\nlicense = \"apache-2.0\"\ndimensions = 384\nmax_seq_length = 256\n",
        )
        .expect("write");
        let m = Manifest::read(dir.path()).expect("read");
        assert_eq!(m.kind, ModelKind::Embedding);
        assert_eq!(m.dimensions, Some(384));
        assert!(m.files.is_empty());

        let mut imported = m.clone();
        imported.files.push(ModelFile {
            path: "model.safetensors".into(),
            bytes: 3,
            sha256: "ab".into(),
        });
        std::fs::write(
            dir.path().join("model.toml"),
            imported.to_toml().expect("toml"),
        )
        .expect("write");
        assert_eq!(Manifest::read(dir.path()).expect("read"), imported);
    }
}
