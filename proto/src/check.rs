use serde::{Deserialize, Serialize};

/// How an endpoint check reaches its app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    Http,
    Https,
    Tcp,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Https => "https",
            Self::Tcp => "tcp",
        }
    }
}

/// The last result of one endpoint check the agent runs next to an app (`[[apps.checks]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckResult {
    /// The check's name, unique within its app.
    pub name: String,
    pub kind: CheckKind,
    /// The URL (`http`, `https`) or `host:port` (`tcp`) it reaches.
    pub target: String,
    /// Whether the last run passed. A check that has not run yet is absent from the list.
    pub ok: bool,
    /// Failed runs in a row, 0 after a pass. Two or more make the app `degraded`.
    pub consecutive_failures: u32,
    /// The HTTP status of the last run, if it got one.
    pub status_code: Option<u16>,
    /// Time to the answer (HTTP: to the status and body; TCP: to the connection).
    pub latency_ms: Option<f64>,
    /// Why the last run failed, in words a person can act on.
    pub error: Option<String>,
    /// HTTPS: when the server's certificate expires.
    pub cert_not_after_unix_ms: Option<u64>,
    pub checked_unix_ms: u64,
}

/// A check in a sample: enough for history and charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CheckSample {
    pub name: String,
    pub ok: bool,
    pub latency_ms: Option<f32>,
}
