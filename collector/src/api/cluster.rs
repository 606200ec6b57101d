//! `GET /v1/cluster`: whether this collector leads its database or stands by.

use std::sync::{Arc, RwLock};

use axum::extract::State;
use axum::Json;
use fleetdeck_proto::{ClusterStatus, ErrorBody};

use super::AppState;

/// This collector's role, as the cluster loop ([`crate::cluster`]) last set it. Shared by the
/// leader's and the standby's API states, so a stream opened before a takeover reads it current.
#[derive(Debug, Clone)]
pub struct ClusterView(Arc<RwLock<ClusterStatus>>);

impl Default for ClusterView {
    fn default() -> Self {
        Self(Arc::new(RwLock::new(ClusterStatus {
            role: "single".into(),
            this: crate::store::db::leader::who_am_i(),
            leader: None,
            epoch: None,
            since_unix_ms: crate::store::now_ms(),
        })))
    }
}

impl ClusterView {
    pub fn get(&self) -> ClusterStatus {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Takes `role` (`leader` or `standby`); `since` moves only when the role does.
    pub fn set(&self, role: &str, leader: Option<String>, epoch: Option<i64>) {
        let mut now = self.0.write().unwrap_or_else(|e| e.into_inner());
        if now.role != role {
            now.since_unix_ms = crate::store::now_ms();
        }
        now.role = role.to_owned();
        now.leader = leader;
        now.epoch = epoch;
    }
}

/// This collector's role (viewer): `single` (alone on its database), `leader` (polls,
/// subscribes and alerts) or `standby` (serves the API from the shared database; takes over when
/// the leader goes), and who leads.
#[utoipa::path(
    get,
    path = "/v1/cluster",
    responses((status = 200, body = ClusterStatus), (status = 401, body = ErrorBody)),
    security(("bearer" = []))
)]
pub async fn cluster(State(state): State<AppState>) -> Json<ClusterStatus> {
    Json(state.cluster.get())
}
