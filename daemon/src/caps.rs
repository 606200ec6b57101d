//! Caps on what a client holds open for long (event streams, log follows): at most so many at
//! once in all, and at most so many for one client (an address at the agent, an API key at the
//! collector). A slot is held by a [`Slot`] that lives inside the response stream, so a client
//! that goes away frees it at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Which cap a refused request hit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CapError {
    /// This client holds its share: it should close one (429).
    #[error("this client already holds {limit} {what} open, the most one client may; close one, or retry later")]
    Client { what: &'static str, limit: usize },
    /// The daemon holds all it will: anyone may get one when another ends (503).
    #[error("{limit} {what} are open on this daemon, the most it serves at once; retry shortly")]
    Global { what: &'static str, limit: usize },
}

#[derive(Debug, Default)]
struct Held {
    total: usize,
    by_client: HashMap<String, usize>,
}

/// The caps of one kind of stream.
#[derive(Debug, Clone)]
pub struct StreamCaps {
    what: &'static str,
    global: usize,
    per_client: usize,
    held: Arc<Mutex<Held>>,
}

impl StreamCaps {
    /// `what` names the streams in errors ("log follows").
    pub fn new(what: &'static str, global: usize, per_client: usize) -> Self {
        Self {
            what,
            global,
            per_client,
            held: Arc::default(),
        }
    }

    /// A slot for `client`, or which cap is full.
    pub fn take(&self, client: &str) -> Result<Slot, CapError> {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mine = held.by_client.get(client).copied().unwrap_or(0);
        if mine >= self.per_client {
            return Err(CapError::Client {
                what: self.what,
                limit: self.per_client,
            });
        }
        if held.total >= self.global {
            return Err(CapError::Global {
                what: self.what,
                limit: self.global,
            });
        }
        held.total += 1;
        held.by_client.insert(client.to_owned(), mine + 1);
        Ok(Slot {
            held: self.held.clone(),
            client: client.to_owned(),
        })
    }

    /// How many slots are held now, in all.
    pub fn in_use(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }
}

/// One held slot; dropping it frees it.
#[derive(Debug)]
pub struct Slot {
    held: Arc<Mutex<Held>>,
    client: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.total = held.total.saturating_sub(1);
        if let Some(n) = held.by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                held.by_client.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_client_then_global_and_freed_on_drop() {
        let caps = StreamCaps::new("follows", 3, 2);
        let a1 = caps.take("a").expect("first");
        let _a2 = caps.take("a").expect("second");
        assert_eq!(
            caps.take("a").expect_err("a's share is taken"),
            CapError::Client {
                what: "follows",
                limit: 2
            }
        );
        let _b1 = caps.take("b").expect("b has its own share");
        assert!(matches!(caps.take("c"), Err(CapError::Global { .. })));
        assert_eq!(caps.in_use(), 3);
        drop(a1);
        assert_eq!(caps.in_use(), 2);
        let _c1 = caps.take("c").expect("a freed slot is anyone's");
        assert!(caps.take("a").is_err(), "full again");
    }
}
