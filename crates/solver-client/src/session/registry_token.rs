//! Client-side registry tokens, as buildx serves them through the session's Auth service:
//! the daemon gets bearer tokens, never the password.
//!
//! - **Token authority** (`GetTokenAuthority`, `VerifyTokenAuthority`): an ed25519 key per
//!   registry host, derived from a per-session seed with HMAC-SHA256 over the daemon's salt
//!   (the seed left out for a host without credentials), as BuildKit's `authprovider` derives
//!   it. A session that answers with a key is one the daemon asks for tokens; it checks the
//!   key by having a random payload signed (NaCl `sign`: the signature, then the payload).
//!   buildx keeps its seed in `.token_seed` so later sessions can prove the same authority;
//!   brix's lives as long as its session.
//! - **`FetchToken`**: an OAuth2 POST to the realm (a password grant, or a refresh-token grant
//!   for an identity token), then the GET flow with basic credentials when the server does
//!   not take the POST — on 401, 404 and 405 as buildx, and also on 400, which some token
//!   servers answer (distribution's own) and containerd's resolver falls back on. Tokens are
//!   kept in memory only, per host, realm, service and scopes, until shortly before they
//!   expire.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::rand::SecureRandom;
use ring::signature::KeyPair;

use super::auth::RegistryCredentials;

/// How long a token without `expires_in` is taken to last (containerd's default).
const DEFAULT_EXPIRY: Duration = Duration::from_secs(60);
/// A cached token is renewed this long before it expires, so it cannot expire mid-request.
const RENEW_MARGIN: Duration = Duration::from_secs(10);

/// The session's token state: the authority seed and the tokens fetched.
pub(crate) struct TokenState {
    seed: [u8; 32],
    entries: std::sync::Mutex<HashMap<String, IssuedToken>>,
}

impl Default for TokenState {
    fn default() -> Self {
        let mut seed = [0u8; 32];
        // A failing system RNG leaves an all-zero seed: the key is then predictable, which
        // only weakens the proof between this session and the daemon it connected to.
        let _ = ring::rand::SystemRandom::new().fill(&mut seed);
        TokenState {
            seed,
            entries: std::sync::Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for TokenState {
    // Never print a token or the seed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|e| e.len()).unwrap_or(0);
        write!(f, "TokenState({n} tokens)")
    }
}

/// A token the server issued.
#[derive(Clone)]
pub(crate) struct IssuedToken {
    pub(crate) token: String,
    pub(crate) expires_in: i64,
    pub(crate) issued_at: i64,
    valid_until: Instant,
}

/// What a token is asked for.
pub(crate) struct TokenRequest<'a> {
    pub(crate) host: &'a str,
    pub(crate) realm: &'a str,
    pub(crate) service: &'a str,
    pub(crate) scopes: &'a [String],
}

impl TokenRequest<'_> {
    fn key(&self) -> String {
        let mut scopes = self.scopes.to_vec();
        scopes.sort();
        format!(
            "{}\n{}\n{}\n{}",
            self.host,
            self.realm,
            self.service,
            scopes.join(" ")
        )
    }
}

impl TokenState {
    /// The authority key for a host: ed25519 from HMAC-SHA256(salt, seed or nothing).
    fn authority_key(
        &self,
        salt: &[u8],
        has_credentials: bool,
    ) -> Result<ring::signature::Ed25519KeyPair, String> {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, salt);
        let message: &[u8] = if has_credentials { &self.seed } else { &[] };
        let sum = ring::hmac::sign(&key, message);
        ring::signature::Ed25519KeyPair::from_seed_unchecked(&sum.as_ref()[..32])
            .map_err(|e| format!("deriving the token authority key: {e}"))
    }

    /// `GetTokenAuthority`'s answer: the public key.
    pub(crate) fn public_key(&self, salt: &[u8], has_credentials: bool) -> Result<Vec<u8>, String> {
        Ok(self
            .authority_key(salt, has_credentials)?
            .public_key()
            .as_ref()
            .to_vec())
    }

    /// `VerifyTokenAuthority`'s answer: `payload` signed as NaCl's `sign.Sign` lays it out
    /// (the 64-byte signature, then the payload).
    pub(crate) fn sign(
        &self,
        salt: &[u8],
        has_credentials: bool,
        payload: &[u8],
    ) -> Result<Vec<u8>, String> {
        let key = self.authority_key(salt, has_credentials)?;
        let mut signed = key.sign(payload).as_ref().to_vec();
        signed.extend_from_slice(payload);
        Ok(signed)
    }

    /// A token for `request`: the cached one while it is valid, else a new one.
    pub(crate) async fn token(
        &self,
        http: &reqwest::Client,
        request: &TokenRequest<'_>,
        credentials: &RegistryCredentials,
    ) -> Result<IssuedToken, String> {
        let key = request.key();
        if let Ok(entries) = self.entries.lock()
            && let Some(token) = entries.get(&key)
            && Instant::now() + RENEW_MARGIN < token.valid_until
        {
            return Ok(token.clone());
        }
        let token = fetch(http, request, credentials).await?;
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(key, token.clone());
        }
        Ok(token)
    }
}

/// One trip to the token server.
async fn fetch(
    http: &reqwest::Client,
    request: &TokenRequest<'_>,
    credentials: &RegistryCredentials,
) -> Result<IssuedToken, String> {
    if credentials.secret.is_empty() {
        return fetch_with_get(http, request, None).await;
    }
    // Finished before any await: the serializer is not Send.
    let body = {
        let mut form = form_urlencoded::Serializer::new(String::new());
        form.append_pair("scope", &request.scopes.join(" "))
            .append_pair("service", request.service)
            .append_pair("client_id", "buildkit-client")
            .append_pair("access_type", "online");
        if credentials.username.is_empty() {
            form.append_pair("grant_type", "refresh_token")
                .append_pair("refresh_token", &credentials.secret);
        } else {
            form.append_pair("grant_type", "password")
                .append_pair("username", &credentials.username)
                .append_pair("password", &credentials.secret);
        }
        form.finish()
    };
    let answer = http
        .post(request.realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {}: {}", request.realm, e.without_url()))?;
    let status = answer.status().as_u16();
    if matches!(status, 400 | 401 | 404 | 405) && !credentials.username.is_empty() {
        return fetch_with_get(http, request, Some(credentials)).await;
    }
    read_token(answer, request.realm).await
}

/// The GET flow: `realm?service=…&scope=…`, with basic credentials when given.
async fn fetch_with_get(
    http: &reqwest::Client,
    request: &TokenRequest<'_>,
    credentials: Option<&RegistryCredentials>,
) -> Result<IssuedToken, String> {
    let query = {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if !request.service.is_empty() {
            query.append_pair("service", request.service);
        }
        for scope in request.scopes {
            query.append_pair("scope", scope);
        }
        query.finish()
    };
    let separator = if request.realm.contains('?') {
        '&'
    } else {
        '?'
    };
    let url = format!("{}{separator}{query}", request.realm);
    let mut get = http.get(&url);
    if let Some(c) = credentials {
        get = get.basic_auth(&c.username, Some(&c.secret));
    }
    let answer = get
        .send()
        .await
        .map_err(|e| format!("GET {}: {}", request.realm, e.without_url()))?;
    read_token(answer, request.realm).await
}

async fn read_token(answer: reqwest::Response, realm: &str) -> Result<IssuedToken, String> {
    let status = answer.status();
    if !status.is_success() {
        return Err(format!("the token server {realm} answered {status}"));
    }
    let json: serde_json::Value = answer
        .json()
        .await
        .map_err(|_| format!("the token server {realm} answered with no JSON token"))?;
    let token = json["access_token"]
        .as_str()
        .or_else(|| json["token"].as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| format!("the token server {realm} answered with no token"))?
        .to_owned();
    let expires_in = json["expires_in"]
        .as_i64()
        .filter(|s| *s > 0)
        .unwrap_or(DEFAULT_EXPIRY.as_secs() as i64);
    let issued_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    Ok(IssuedToken {
        token,
        expires_in,
        issued_at,
        valid_until: Instant::now() + Duration::from_secs(expires_in.unsigned_abs()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_key_does_not_depend_on_scope_order() {
        let a = [
            "repository:a:pull".to_owned(),
            "repository:b:push".to_owned(),
        ];
        let b = [
            "repository:b:push".to_owned(),
            "repository:a:pull".to_owned(),
        ];
        let key = |scopes: &[String]| {
            TokenRequest {
                host: "h",
                realm: "r",
                service: "s",
                scopes,
            }
            .key()
        };
        assert_eq!(key(&a), key(&b));
    }

    #[test]
    fn a_signed_payload_opens_with_the_public_key_as_nacl_sign_lays_it_out() {
        let state = TokenState::default();
        let public = state.public_key(b"salt", true).expect("key");
        assert_eq!(public.len(), 32);
        let signed = state.sign(b"salt", true, b"payload").expect("signed");
        assert_eq!(&signed[64..], b"payload");
        let verifier = ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, &public);
        verifier
            .verify(b"payload", &signed[..64])
            .expect("the signature verifies");
        // Another salt, another key; a host without credentials gets the seedless key.
        assert_ne!(state.public_key(b"other", true).expect("key"), public);
        assert_ne!(state.public_key(b"salt", false).expect("key"), public);
    }

    #[test]
    fn the_state_prints_no_token() {
        let state = TokenState::default();
        if let Ok(mut e) = state.entries.lock() {
            e.insert(
                "k".into(),
                IssuedToken {
                    token: "secret-token".into(),
                    expires_in: 60,
                    issued_at: 0,
                    valid_until: Instant::now(),
                },
            );
        }
        assert_eq!(format!("{state:?}"), "TokenState(1 tokens)");
    }
}
