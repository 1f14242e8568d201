//! Identity tokens: the OAuth2 refresh token `docker login` keeps (`identitytoken` in
//! `config.json`) for registries whose token server hands one out. It is never sent as a
//! password: the registry's `WWW-Authenticate: Bearer realm=…,service=…` challenge names the
//! token server, which trades it (`grant_type=refresh_token`) for an access token to one
//! repository, as the docker CLI and containerd do.

/// The access token for pulling and pushing `repository` on `registry`. Errors are one line
/// that names the step and the status, never a token.
pub(crate) async fn redeem(
    plain_http: bool,
    registry: &str,
    repository: &str,
    refresh_token: &str,
) -> Result<String, String> {
    let scheme = if plain_http { "http" } else { "https" };
    let http = reqwest::Client::builder()
        .connect_timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let challenge = http
        .get(format!("{scheme}://{registry}/v2/"))
        .send()
        .await
        .map_err(|e| format!("GET /v2/: {e}"))?;
    let header = challenge
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            format!(
                "the registry answered /v2/ with {} and no WWW-Authenticate challenge, so it has no token server to trade an identity token with",
                challenge.status()
            )
        })?
        .to_owned();
    let params = bearer_challenge(&header)
        .ok_or_else(|| format!("the registry's challenge is not a Bearer one: {header}"))?;
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.clone())
        .ok_or("the registry's Bearer challenge names no realm")?;
    let service = params
        .iter()
        .find(|(k, _)| k == "service")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .append_pair("service", &service)
        .append_pair("scope", &format!("repository:{repository}:pull,push"))
        .append_pair("client_id", "brix")
        .finish();
    let answer = http
        .post(&realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("POST {realm}: {}", e.without_url()))?;
    let status = answer.status();
    if !status.is_success() {
        return Err(format!(
            "the token server {realm} refused the identity token ({status}): log in again (docker login {registry})"
        ));
    }
    let json: serde_json::Value = answer
        .json()
        .await
        .map_err(|_| format!("the token server {realm} answered with no JSON token"))?;
    json["access_token"]
        .as_str()
        .or_else(|| json["token"].as_str())
        .map(str::to_owned)
        .ok_or_else(|| format!("the token server {realm} answered with no access_token"))
}

/// The parameters of a `Bearer k="v",k2="v2"` challenge, or `None` for another scheme.
fn bearer_challenge(header: &str) -> Option<Vec<(String, String)>> {
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let mut out = Vec::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let end = quoted.find('"')?;
            (quoted[..end].to_owned(), &quoted[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        out.push((key, value));
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_are_read_as_registries_write_them() {
        let params = bearer_challenge(
            r#"Bearer realm="http://127.0.0.1:5002/token/",service="brix-e2e-registry",scope="repository:a/b:pull""#,
        )
        .expect("a Bearer challenge");
        assert_eq!(
            params,
            [
                (
                    "realm".to_owned(),
                    "http://127.0.0.1:5002/token/".to_owned()
                ),
                ("service".to_owned(), "brix-e2e-registry".to_owned()),
                ("scope".to_owned(), "repository:a/b:pull".to_owned()),
            ]
        );
        assert!(bearer_challenge(r#"Basic realm="x""#).is_none());
        assert_eq!(
            bearer_challenge("Bearer realm=https://auth.example/token")
                .expect("unquoted")
                .first()
                .map(|(_, v)| v.as_str()),
            Some("https://auth.example/token")
        );
    }
}
