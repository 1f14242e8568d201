//! Identity tokens: the OAuth2 refresh token `docker login` keeps (`identitytoken` in
//! `config.json`) for registries whose token server hands one out. It is never sent as a
//! password: the registry's `WWW-Authenticate: Bearer realm=…,service=…` challenge names the
//! token server, which trades it (`grant_type=refresh_token`) for an access token to the
//! scopes asked for, as the docker CLI and containerd do. The answer is read by
//! [`crate::distribution`]'s token handling like any token server's.

use crate::distribution::retry::Failure;

/// Posts the refresh-token grant for `scopes` to `realm`. Errors are one line that names the
/// token server, never the token.
pub(crate) async fn redeem(
    http: &reqwest::Client,
    realm: &str,
    service: Option<&str>,
    scopes: &[String],
    refresh_token: &str,
) -> Result<reqwest::Response, Failure> {
    let body = form(service, scopes, refresh_token);
    http.post(realm)
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        )
        .body(body)
        .send()
        .await
        .map_err(|e| Failure::Transient {
            reason: format!(
                "the token server {realm} is not reachable: {}",
                crate::distribution::retry::root_cause(&e)
            ),
            retry_after: None,
        })
}

/// The form of the grant: Docker's fields, with brix as the client.
fn form(service: Option<&str>, scopes: &[String], refresh_token: &str) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    form.append_pair("grant_type", "refresh_token")
        .append_pair("refresh_token", refresh_token)
        .append_pair("service", service.unwrap_or_default())
        .append_pair("client_id", "brix");
    if !scopes.is_empty() {
        // OAuth2 scopes are one space-separated parameter.
        form.append_pair("scope", &scopes.join(" "));
    }
    form.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grant_names_every_scope_in_one_parameter() {
        let body = form(
            Some("registry.example"),
            &[
                "repository:a:pull,push".to_owned(),
                "repository:b:pull".to_owned(),
            ],
            "refresh",
        );
        assert_eq!(
            body,
            "grant_type=refresh_token&refresh_token=refresh&service=registry.example&client_id=brix&scope=repository%3Aa%3Apull%2Cpush+repository%3Ab%3Apull"
        );
    }
}
