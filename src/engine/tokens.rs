//! API tokens for `ferry serve`: made by `ferry token add` (the key is shown once and stored
//! only as its SHA-256), checked on every request but `/healthz`.
//!
//! A key is `ferry_` and 64 hex digits from the operating system's random source (256 bits).
//! A request presents it as `Authorization: Token <key>`; the server looks up the SHA-256 of
//! what it was given, so no key is ever compared with another, character by character or at
//! all, and nothing about a key can be timed out of the server. `viewer` may validate and read;
//! `importer` may also stage and create.

use sha2::{Digest, Sha256};

use crate::error::Error;
use crate::store::{Store, Token};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Validate, status and lists.
    Viewer,
    /// Also stage and create.
    Importer,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "importer" => Some(Role::Importer),
            _ => None,
        }
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Importer => "importer",
        }
    }
}

/// Token names: letters, digits, `-`, `_` and `.`, 1 to 64 of them (they are printed in logs).
fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn key_hash(key: &str) -> String {
    format!("{:x}", Sha256::digest(key.as_bytes()))
}

/// Makes a token; returns its key (shown once: the store keeps only its hash).
pub fn add(store: &mut dyn Store, name: &str, role: Role) -> Result<String, Error> {
    if !valid_name(name) {
        return Err(Error::usage(
            format!("a token name is 1 to 64 letters, digits, '-', '_' or '.': {:?}", crate::text::escape(name)),
            None,
        ));
    }
    let bytes: [u8; 32] = rand::random();
    let key = format!("ferry_{}", bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
    if !store.add_token(name, role.as_str(), &key_hash(&key))? {
        return Err(Error::usage(
            format!("a token named {name:?} exists"),
            Some("revoke it first (`ferry token revoke NAME`), or choose another name"),
        ));
    }
    Ok(key)
}

/// Who a request is, from its `Authorization` header: `Ok(None)` when the header is missing or
/// not `Token <key>`, or the key is not a live token's.
pub fn authenticate(store: &dyn Store, authorization: Option<&str>) -> Result<Option<(Token, Role)>, Error> {
    let Some(hash) = presented_hash(authorization) else { return Ok(None) };
    live_token(store, &hash)
}

/// The live token whose key has this SHA-256, with its role.
fn live_token(store: &dyn Store, hash: &str) -> Result<Option<(Token, Role)>, Error> {
    let Some(token) = store.token_by_key(hash)? else { return Ok(None) };
    Ok(Role::parse(&token.role).map(|role| (token, role)))
}

/// The SHA-256 of the key in an `Authorization: Token <key>` header.
fn presented_hash(authorization: Option<&str>) -> Option<String> {
    authorization.and_then(|h| h.strip_prefix("Token ")).map(|key| key_hash(key.trim()))
}

/// What a server remembers of the keys it was shown, for at most [`Keyring::FRESH`] each: so
/// that a request costs a hash, not a store query, and a revoked token stops working within
/// that time. Bounded: past 1,024 keys (someone trying random keys) it forgets all.
#[derive(Default)]
pub struct Keyring {
    known: std::collections::HashMap<String, (std::time::Instant, Option<(String, Role)>)>,
}

impl Keyring {
    pub const FRESH: std::time::Duration = std::time::Duration::from_secs(1);
    const MOST: usize = 1024;

    /// The token name and role of a header's key, when it is remembered and fresh: `Some(None)`
    /// for a key known to be no live token's; `None` when the store must be asked.
    pub fn recall(&self, authorization: Option<&str>) -> Option<Option<(String, Role)>> {
        let Some(hash) = presented_hash(authorization) else { return Some(None) };
        let (at, who) = self.known.get(&hash)?;
        (at.elapsed() < Self::FRESH).then(|| who.clone())
    }

    /// Asks the store about a header's key and remembers the answer.
    pub fn learn(&mut self, store: &dyn Store, authorization: Option<&str>) -> Result<Option<(String, Role)>, Error> {
        let Some(hash) = presented_hash(authorization) else { return Ok(None) };
        let who = live_token(store, &hash)?.map(|(token, role)| (token.name, role));
        if self.known.len() >= Self::MOST {
            self.known.clear();
        }
        self.known.insert(hash, (std::time::Instant::now(), who.clone()));
        Ok(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_keyring_remembers_for_a_second_and_forgets_revoked_keys() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = crate::store::open(&crate::workdir::Workdir::new(dir.path())).unwrap();
        let key = add(store.as_mut(), "night", Role::Importer).unwrap();
        let header = format!("Token {key}");
        let mut keyring = Keyring::default();
        assert_eq!(keyring.recall(Some(&header)), None, "not seen yet: ask the store");
        assert_eq!(keyring.recall(None), Some(None), "no header: nobody, without the store");
        assert_eq!(keyring.learn(store.as_ref(), Some(&header)).unwrap(), Some(("night".to_owned(), Role::Importer)));
        assert_eq!(keyring.recall(Some(&header)), Some(Some(("night".to_owned(), Role::Importer))));
        assert!(store.revoke_token("night").unwrap());
        assert!(keyring.recall(Some(&header)).is_some(), "still remembered within the second");
        std::thread::sleep(Keyring::FRESH);
        assert_eq!(keyring.recall(Some(&header)), None, "stale: ask again");
        assert_eq!(keyring.learn(store.as_ref(), Some(&header)).unwrap(), None, "revoked");
        assert_eq!(keyring.recall(Some("Token ferry_nope")), None);
    }

    #[test]
    fn roles_and_names() {
        assert!(Role::Importer > Role::Viewer);
        assert_eq!(Role::parse("viewer"), Some(Role::Viewer));
        assert_eq!(Role::parse("admin"), None);
        assert!(valid_name("nightly-push.2026"));
        for bad in ["", "a b", "ключ", "x\\ny", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
