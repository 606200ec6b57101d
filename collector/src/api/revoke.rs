//! Deleting a key ends its open streams (the event stream, proxied log follows) at once, not when
//! the client leaves. A deletion bumps one counter; each stream of a key watches it and, when it
//! moves, asks the database whether its key still exists. Key ids are never reused
//! (`AUTOINCREMENT`, `migrations/0002_key_ids.sql`), so a new key cannot keep a dead one's streams.

use std::future::Future;
use std::sync::Arc;

use futures_util::{Stream, StreamExt};
use tokio::sync::watch;

use crate::store::{keys, Store};

#[derive(Debug, Clone)]
pub struct Revocations {
    deleted: Arc<watch::Sender<u64>>,
}

impl Default for Revocations {
    fn default() -> Self {
        Self {
            deleted: Arc::new(watch::channel(0).0),
        }
    }
}

impl Revocations {
    /// Says a key was deleted: every stream checks whether it was its own.
    pub fn key_deleted(&self) {
        self.deleted.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Keys deleted at the command line (another process): every KEY_RECHECK, open streams
    /// check whether their key is gone, until `stop` changes.
    pub async fn recheck_every(self, every: std::time::Duration, mut stop: watch::Receiver<bool>) {
        let mut ticker = tokio::time::interval(every);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = ticker.tick() => self.key_deleted(),
                _ = stop.changed() => return,
            }
        }
    }

    /// Completes once the key `key_id` no longer exists (or cannot be checked). Watching starts
    /// now, before the first check, so a deletion between the request's authentication and this
    /// call is seen too.
    pub fn revoked(&self, store: Store, key_id: i64) -> impl Future<Output = ()> + Send + 'static {
        let mut deleted = self.deleted.subscribe();
        async move {
            loop {
                let exists = store
                    .with_conn(move |conn| keys::exists(conn, key_id))
                    .await
                    .unwrap_or(false);
                if !exists {
                    return;
                }
                if deleted.changed().await.is_err() {
                    // The API is shutting down; shutdown ends the streams.
                    std::future::pending::<()>().await;
                }
            }
        }
    }

    /// `stream`, ended when the key `key_id` is deleted.
    pub fn until_revoked<S: Stream + Send + 'static>(
        &self,
        stream: S,
        store: Store,
        key_id: i64,
    ) -> impl Stream<Item = S::Item> + Send + 'static {
        stream.take_until(self.revoked(store, key_id))
    }
}
