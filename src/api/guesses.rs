//! Token checks that give nothing away: compared in constant time, and wrong tokens
//! counted per client address, so that a guesser is stopped after a few tries.
//!
//! After [`MAX_WRONG`] different wrong tokens from one address within [`WINDOW`], every
//! request from that address is answered 429 until the window ends (the right token
//! included: a guesser must not learn from the answer that a guess was right). The same
//! wrong token sent again is not counted again: a page still polling with the cookie of a
//! token that has since been changed must not lock its user out of the login form. Other
//! addresses are not affected, and nothing the recorder does depends on the API: a
//! recording under way goes on.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use subtle::ConstantTimeEq;

/// Different wrong tokens one address may send within [`WINDOW`].
pub const MAX_WRONG: u32 = 10;
/// How long wrong tokens are remembered, and how long an address is then refused.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Addresses remembered at most (the oldest windows are forgotten first).
const MAX_ADDRESSES: usize = 4096;

/// The client's address, as the server accepted its connection.
#[derive(Clone, Copy, Debug)]
pub struct Peer(pub IpAddr);

/// `given` is `token`, compared in constant time (only the length may show).
pub fn same(given: &[u8], token: &[u8]) -> bool {
    given.ct_eq(token).into()
}

/// Wrong tokens by client address.
#[derive(Default)]
pub struct Guesses {
    by_address: Mutex<HashMap<Option<IpAddr>, Wrong>>,
    /// Keys the hashes of wrong tokens (random per process).
    hasher: std::collections::hash_map::RandomState,
}

#[derive(Clone)]
struct Wrong {
    since: Instant,
    /// Hashes of the different wrong tokens seen (at most [`MAX_WRONG`]).
    seen: Vec<u64>,
}

impl Guesses {
    /// How long `peer` is still refused, if it is.
    pub fn refused_for(&self, peer: Option<IpAddr>) -> Option<Duration> {
        let map = self.by_address.lock();
        let w = map.get(&peer)?;
        let left = WINDOW.checked_sub(w.since.elapsed())?;
        (w.seen.len() >= MAX_WRONG as usize).then_some(left)
    }

    /// Counts wrong token `given` from `peer`, unless it was already counted.
    pub fn wrong(&self, peer: Option<IpAddr>, given: &[u8]) {
        let hash = self.hasher.hash_one(given);
        let mut map = self.by_address.lock();
        let now = Instant::now();
        if map.len() >= MAX_ADDRESSES {
            map.retain(|_, w| now.duration_since(w.since) < WINDOW);
            if map.len() >= MAX_ADDRESSES {
                // A flood from many addresses: forget the oldest half.
                let mut starts: Vec<Instant> = map.values().map(|w| w.since).collect();
                starts.sort();
                let cut = starts[starts.len() / 2];
                map.retain(|_, w| w.since > cut);
            }
        }
        let w = map.entry(peer).or_insert(Wrong {
            since: now,
            seen: Vec::new(),
        });
        if now.duration_since(w.since) >= WINDOW {
            *w = Wrong {
                since: now,
                seen: Vec::new(),
            };
        }
        if w.seen.contains(&hash) || w.seen.len() >= MAX_WRONG as usize {
            return;
        }
        w.seen.push(hash);
        if w.seen.len() == MAX_WRONG as usize {
            tracing::warn!(
                "{MAX_WRONG} wrong API tokens from {} within {} s: its requests are refused for the rest of that minute",
                peer.map_or("an unknown address".to_string(), |p| p.to_string()),
                WINDOW.as_secs()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_too_many_wrong_tokens_and_others_are_not() {
        let g = Guesses::default();
        let a = Some("192.0.2.1".parse().unwrap());
        let b = Some("192.0.2.2".parse().unwrap());
        for i in 0..MAX_WRONG - 1 {
            g.wrong(a, format!("guess {i}").as_bytes());
        }
        assert_eq!(g.refused_for(a), None);
        // The same wrong token again (a page polling with an old cookie) is not a new guess.
        for _ in 0..100 {
            g.wrong(a, b"guess 0");
        }
        assert_eq!(g.refused_for(a), None);
        g.wrong(a, b"one more");
        let left = g.refused_for(a).expect("refused");
        assert!(left <= WINDOW && left > WINDOW - Duration::from_secs(5));
        assert_eq!(g.refused_for(b), None);
    }

    #[test]
    fn tokens_are_compared_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cre", b"s3cret"));
        assert!(!same(b"s3cret!", b"s3cret"));
        assert!(!same(b"S3cret", b"s3cret"));
        assert!(!same(b"", b"s3cret"));
    }

    #[test]
    fn a_flood_of_addresses_is_bounded() {
        let g = Guesses::default();
        for i in 0..(MAX_ADDRESSES as u32 + 10) {
            g.wrong(Some(IpAddr::from(i.to_be_bytes())), b"guess");
        }
        assert!(g.by_address.lock().len() <= MAX_ADDRESSES);
    }
}
