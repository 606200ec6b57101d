//! One collector reached at several addresses: a leader and its standbys on one PostgreSQL
//! database (any of them serves the API). Requests go to the address that answered last; one
//! that cannot be connected to moves them to the next, in order. Only a failed *connection*
//! moves on: the request never reached a collector, so sending it again elsewhere (an action
//! included) cannot do it twice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use reqwest::Url;

use super::address::display_url;

/// One address of the collector.
#[derive(Debug)]
pub(super) struct Address {
    pub base: Url,
    /// As people read it (no trailing slash), for messages.
    pub shown: Arc<str>,
}

/// The addresses, first the one the operator gave first, and which answered last.
#[derive(Debug)]
pub(super) struct Addresses {
    all: Vec<Address>,
    active: AtomicUsize,
}

impl Addresses {
    /// `bases`: at least one.
    pub fn new(bases: Vec<Url>) -> Self {
        assert!(!bases.is_empty(), "a collector has an address");
        Self {
            all: bases
                .into_iter()
                .map(|base| Address {
                    shown: display_url(&base).into(),
                    base,
                })
                .collect(),
            active: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.all.len()
    }

    pub fn index(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    pub fn get(&self, index: usize) -> &Address {
        &self.all[index % self.all.len()]
    }

    pub fn active(&self) -> &Address {
        self.get(self.index())
    }

    /// Requests go to `index` from now on.
    pub fn set(&self, index: usize) {
        self.active.store(index % self.all.len(), Ordering::SeqCst);
    }

    pub fn all(&self) -> impl Iterator<Item = &Address> {
        self.all.iter()
    }
}

/// `url` (under `from`) moved under `to`: the same path and query at another address.
pub(super) fn rebase(url: &Url, from: &Url, to: &Url) -> Option<Url> {
    let from = from.as_str().trim_end_matches('/');
    let rest = url.as_str().strip_prefix(from)?;
    Url::parse(&format!("{}{rest}", to.as_str().trim_end_matches('/'))).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_moves_to_another_address_with_its_path_and_query() {
        let a = Url::parse("http://10.0.0.1:7080").expect("a");
        let b = Url::parse("https://ops-b.tail.ts.net/fleetdeck").expect("b");
        let url = Url::parse("http://10.0.0.1:7080/v1/hosts/web%201/metrics?range=1h").expect("u");
        assert_eq!(
            rebase(&url, &a, &b).expect("rebased").as_str(),
            "https://ops-b.tail.ts.net/fleetdeck/v1/hosts/web%201/metrics?range=1h"
        );
        assert_eq!(
            rebase(&rebase(&url, &a, &b).expect("there"), &b, &a)
                .expect("back")
                .as_str(),
            url.as_str()
        );
        let elsewhere = Url::parse("http://other:1/v1/fleet").expect("other");
        assert!(rebase(&elsewhere, &a, &b).is_none());
    }

    #[test]
    fn the_active_address_wraps_around() {
        let addresses = Addresses::new(vec![
            Url::parse("http://a:1").expect("a"),
            Url::parse("http://b:1").expect("b"),
        ]);
        assert_eq!(&*addresses.active().shown, "http://a:1");
        addresses.set(1);
        assert_eq!(&*addresses.active().shown, "http://b:1");
        addresses.set(2);
        assert_eq!(&*addresses.active().shown, "http://a:1");
    }
}
