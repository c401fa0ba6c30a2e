//! Basic auth as the exporter-toolkit does it: the bcrypt hashes of `basic_auth_users`,
//! compared so that the time taken tells nothing, with a short cache of successes.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::AUTHORIZATION;
use tokio::sync::Semaphore;

use crate::web_config::WebConfig;

/// How long a verified (user, password) pair is trusted without another bcrypt: a
/// scrape every 15 s then costs one bcrypt a minute instead of one each time.
const AUTH_CACHE_TTL: Duration = Duration::from_secs(60);
/// Bounds the cache's memory whatever clients send; only successes are cached.
const AUTH_CACHE_MAX: usize = 256;

/// Basic auth against the bcrypt hashes of `basic_auth_users`.
pub(super) struct Auth {
    /// Keys are HMACs (with a key made at start) of user, hash and password, so neither
    /// the password nor a plain fast hash of it sits in memory.
    cache: Mutex<HashMap<[u8; 32], Instant>>,
    key: ring::hmac::Key,
    /// bcrypt is deliberately slow: one at a time, so wrong passwords cannot take every
    /// core from the pollers (the toolkit does the same).
    bcrypt: Semaphore,
}

impl Auth {
    pub(super) fn new() -> Auth {
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            // No system randomness is close to impossible; a fixed key only makes the
            // cache keys guessable to someone who can already read this process's memory.
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"wolkvox-exporter"));
        Auth {
            cache: Mutex::new(HashMap::new()),
            key,
            bcrypt: Semaphore::new(1),
        }
    }

    pub(super) async fn allows(&self, web: &WebConfig, req: &Request<Incoming>) -> bool {
        if web.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(req.headers()) else {
            return false;
        };
        let ok = self.check(web, user, password).await;
        if !ok {
            // No user name: people type passwords into the user field.
            tracing::debug!(path = %req.uri().path(), "basic auth failed");
        }
        ok
    }

    async fn check(&self, web: &WebConfig, user: Vec<u8>, password: Vec<u8>) -> bool {
        let Some(first) = web.users.first() else {
            return true;
        };
        // Every configured name is compared, in constant time, so the time taken does
        // not tell which names exist or how much of one matched.
        let mut found: Option<&str> = None;
        for u in &web.users {
            if bool::from(subtle::ConstantTimeEq::ct_eq(
                u.name.as_bytes(),
                user.as_slice(),
            )) {
                found = Some(&u.hash);
            }
        }
        // An unknown name still pays one bcrypt (against a real hash, so at a real
        // cost) and then fails: the answer takes as long as a wrong password.
        let (hash, known) = match found {
            Some(h) => (h.to_string(), true),
            None => (first.hash.clone(), false),
        };
        let key = self.cache_key(&user, &hash, &password);
        if known && self.cached(&key) {
            return true;
        }
        let Ok(_permit) = self.bcrypt.acquire().await else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(&password, &hash))
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or(false);
        if ok && known {
            self.remember(key);
        }
        ok && known
    }

    fn cache_key(&self, user: &[u8], hash: &str, password: &[u8]) -> [u8; 32] {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        // Length prefixes keep ("ab","c") apart from ("a","bc").
        for part in [user, hash.as_bytes(), password] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part);
        }
        let mut out = [0u8; 32];
        out.copy_from_slice(ctx.sign().as_ref());
        out
    }

    fn cached(&self, key: &[u8; 32]) -> bool {
        let cache = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        cache
            .get(key)
            .is_some_and(|at| at.elapsed() < AUTH_CACHE_TTL)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut cache = match self.cache.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if cache.len() >= AUTH_CACHE_MAX {
            cache.retain(|_, at| at.elapsed() < AUTH_CACHE_TTL);
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, Instant::now());
    }
}

/// `Authorization: Basic base64(user:password)`, as bytes (RFC 7617 allows any charset).
fn basic_credentials(headers: &hyper::HeaderMap) -> Option<(Vec<u8>, Vec<u8>)> {
    use base64::Engine as _;
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let colon = raw.iter().position(|b| *b == b':')?;
    Some((raw[..colon].to_vec(), raw[colon + 1..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use hyper::header::HeaderValue;

    fn web(users: &[(&str, &str)]) -> WebConfig {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.yml");
        let mut yaml = String::from("basic_auth_users:\n");
        for (name, password) in users {
            // Cost 4, the lowest: the cost is not what is tested here.
            let hash = bcrypt::hash(password, 4).unwrap();
            yaml.push_str(&format!("  {name}: {hash}\n"));
        }
        std::fs::write(&path, yaml).unwrap();
        WebConfig::from_file(&path).unwrap().0
    }

    fn cache_len(auth: &Auth) -> usize {
        auth.cache.lock().unwrap().len()
    }

    #[tokio::test]
    async fn passwords_are_checked_and_only_successes_cached() {
        let auth = Auth::new();
        let w = web(&[("alice", "pw one"), ("bob", "pw:two")]);
        let c = |u: &str, p: &str| (u.as_bytes().to_vec(), p.as_bytes().to_vec());
        let (u, p) = c("alice", "pw one");
        assert!(auth.check(&w, u, p).await);
        assert_eq!(cache_len(&auth), 1);
        let (u, p) = c("alice", "pw one");
        assert!(auth.check(&w, u, p).await, "again, from the cache");
        assert_eq!(cache_len(&auth), 1);
        for (user, password) in [
            ("alice", "pw two"),
            ("alice", ""),
            ("ALICE", "pw one"),
            ("alic", "pw one"),
            ("mallory", "pw one"),
            ("", ""),
            ("bob", "pw one"),
        ] {
            let (u, p) = c(user, password);
            assert!(!auth.check(&w, u, p).await, "{user:?} {password:?}");
        }
        assert_eq!(cache_len(&auth), 1, "failures are never cached");
        let (u, p) = c("bob", "pw:two");
        assert!(auth.check(&w, u, p).await);
        assert_eq!(cache_len(&auth), 2);
        // Same user and password against another hash (a changed config): not cached.
        let w2 = web(&[("alice", "pw one")]);
        let (u, p) = c("alice", "pw one");
        assert_ne!(
            auth.cache_key(&u, &w.users[0].hash, &p),
            auth.cache_key(&u, &w2.users[0].hash, &p)
        );
    }

    #[test]
    fn cache_is_bounded() {
        let auth = Auth::new();
        for i in 0..(AUTH_CACHE_MAX * 3) {
            auth.remember(auth.cache_key(format!("u{i}").as_bytes(), "h", b"p"));
            assert!(cache_len(&auth) <= AUTH_CACHE_MAX);
        }
    }

    #[test]
    fn basic_credentials_are_parsed_leniently_but_safely() {
        let h = |v: &str| {
            let mut m = hyper::HeaderMap::new();
            m.insert(AUTHORIZATION, HeaderValue::from_str(v).unwrap());
            basic_credentials(&m).map(|(u, p)| {
                (
                    String::from_utf8_lossy(&u).into_owned(),
                    String::from_utf8_lossy(&p).into_owned(),
                )
            })
        };
        let pair = |u: &str, p: &str| Some((u.to_string(), p.to_string()));
        assert_eq!(h("Basic YWxpY2U6cHc="), pair("alice", "pw"));
        assert_eq!(h("basic   YWxpY2U6cHc=  "), pair("alice", "pw"));
        // The password may hold colons; the user name cannot.
        assert_eq!(h("Basic YTpiOmM="), pair("a", "b:c"));
        assert_eq!(h("Basic OnB3"), pair("", "pw"));
        assert_eq!(h("Bearer YWxpY2U6cHc="), None);
        assert_eq!(h("Basic !!!"), None);
        assert_eq!(h("Basic YWxpY2U="), None, "no colon");
        assert_eq!(h("Basic"), None);
        assert_eq!(basic_credentials(&hyper::HeaderMap::new()), None);
    }
}
