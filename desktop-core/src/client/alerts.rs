//! The collector's alert history, acknowledgements and silences.

use fleetdeck_proto::desktop::CommandError;
use fleetdeck_proto::{AlertAck, AlertPage, AlertRecord, NewSilence, Silence};
use reqwest::Method;

use super::{CollectorClient, REQUEST_TIMEOUT};

impl CollectorClient {
    /// Alerts, open ones first (`GET /v1/alerts`), at most `limit`; `state` is `open`,
    /// `acknowledged` or `resolved` (none: all).
    pub async fn alerts(
        &self,
        state: Option<&str>,
        limit: usize,
    ) -> Result<AlertPage, CommandError> {
        let mut query = vec![("limit", limit.to_string())];
        if let Some(state) = state {
            query.push(("state", state.to_owned()));
        }
        self.get(&["v1", "alerts"], &query).await
    }

    /// Acknowledges alert `id` with an optional note (operator).
    pub async fn ack(&self, id: i64, note: Option<String>) -> Result<AlertRecord, CommandError> {
        let url = self.endpoint(&["v1", "alerts", &id.to_string(), "ack"]);
        let request = self
            .request(Method::POST, url)
            .timeout(REQUEST_TIMEOUT)
            .json(&AlertAck { note });
        self.call(request).await
    }

    /// The silences in force or to come.
    pub async fn silences(&self) -> Result<Vec<Silence>, CommandError> {
        self.get(&["v1", "silences"], &[]).await
    }

    /// Makes a silence (operator).
    pub async fn silence(&self, new: &NewSilence) -> Result<Silence, CommandError> {
        let url = self.endpoint(&["v1", "silences"]);
        let request = self
            .request(Method::POST, url)
            .timeout(REQUEST_TIMEOUT)
            .json(new);
        self.call(request).await
    }

    /// Ends silence `id` now (operator).
    pub async fn unsilence(&self, id: i64) -> Result<Silence, CommandError> {
        let url = self.endpoint(&["v1", "silences", &id.to_string()]);
        self.call(self.request(Method::DELETE, url).timeout(REQUEST_TIMEOUT))
            .await
    }
}
