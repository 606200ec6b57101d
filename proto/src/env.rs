use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /v1/apps/{app}/env`: the app's `.env` file as written and as read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvFile {
    /// SHA-256 of the file's bytes, hex; send it back as `If-Match` to write.
    pub etag: String,
    pub path: String,
    /// Each key once, with the value the common dotenv parsers read (the last assignment wins).
    pub entries: Vec<EnvEntry>,
    /// The file's text (invalid UTF-8 replaced).
    pub raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvEntry {
    pub key: String,
    pub value: String,
    /// The 1-based line where the key's (last) assignment starts.
    pub line: u32,
}

/// `PUT /v1/apps/{app}/env`: either edits (`set` and `unset`), or a whole new text (`raw`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EnvUpdate {
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub unset: Vec<String>,
    pub raw: Option<String>,
}

/// The answer to a write: the new etag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvWritten {
    pub etag: String,
    pub path: String,
}

/// `GET /v1/apps/{app}/env/backups`: the copies the agent keeps of the file before each of its
/// last writes, newest (1) first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvBackups {
    pub backups: Vec<EnvBackup>,
}

/// One backup: read it with `GET /v1/apps/{app}/env/backups/{n}`; restore it by writing its
/// `raw` text with `PUT /v1/apps/{app}/env` (If-Match: the current etag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EnvBackup {
    /// 1 is the newest.
    pub n: u32,
    /// When this content was written (the file's modification time then).
    pub modified_unix_ms: u64,
    pub size_bytes: u64,
    pub etag: String,
}
