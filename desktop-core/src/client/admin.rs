//! Administration through the collector (admin keys): the API keys (list, create, revoke) and
//! the audit log with its filters.

use fleetdeck_proto::desktop::{AuditQuery, CommandError};
use fleetdeck_proto::{AuditPage, KeyCreated, KeyInfo, NewKey, Role};
use reqwest::header::ACCEPT;
use reqwest::Method;

use super::errors::{describe, unreachable};
use super::{error_from_response, CollectorClient, REQUEST_TIMEOUT};

impl CollectorClient {
    /// Every API key (never the keys themselves).
    pub async fn keys(&self) -> Result<Vec<KeyInfo>, CommandError> {
        self.get(&["v1", "keys"], &[]).await
    }

    /// Makes a key; the answer holds it, the only time the collector shows it.
    pub async fn create_key(&self, name: &str, role: Role) -> Result<KeyCreated, CommandError> {
        let url = self.endpoint(&["v1", "keys"]);
        let new = NewKey {
            name: name.to_owned(),
            role,
        };
        self.call(
            self.request(Method::POST, url)
                .timeout(REQUEST_TIMEOUT)
                .json(&new),
        )
        .await
    }

    /// Revokes (deletes) a key by name: the collector refuses it from then on and ends its open
    /// streams.
    pub async fn delete_key(&self, name: &str) -> Result<(), CommandError> {
        let url = self.endpoint(&["v1", "keys", name]);
        let request = self
            .request(Method::DELETE, url)
            .timeout(REQUEST_TIMEOUT)
            .header(ACCEPT, "application/json");
        let resp = self.send(request).await?;
        let status = resp.status();
        if status.is_redirection() {
            return Err(self.redirected(&resp));
        }
        if status.is_success() {
            return Ok(());
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| unreachable(self.url(), &describe(e)))?;
        Err(error_from_response(self.url(), status.as_u16(), &body))
    }

    /// A page of the audit log, newest first, keeping to `query`'s filters.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, CommandError> {
        let mut params = Vec::new();
        params.extend(query.before.map(|b| ("before", b.to_string())));
        params.extend(query.limit.map(|l| ("limit", l.to_string())));
        for (name, value) in [
            ("key", &query.key),
            ("action", &query.action),
            ("target", &query.target),
        ] {
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                params.push((name, v.to_owned()));
            }
        }
        params.extend(query.since_ms.map(|ms| ("since", ms.to_string())));
        params.extend(query.until_ms.map(|ms| ("until", ms.to_string())));
        self.get(&["v1", "audit"], &params).await
    }
}
