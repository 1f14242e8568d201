//! `moby.buildkit.secrets.v1.Secrets`: build secrets (`RUN --mount=type=secret`) from files,
//! environment variables or memory.

use std::collections::BTreeMap;
use std::path::PathBuf;

use tonic::{Request, Response, Status};

use crate::proto::moby::buildkit::secrets::v1::secrets_server::Secrets;
use crate::proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};

/// Path of the GetSecret method.
pub const GET_SECRET: &str = "/moby.buildkit.secrets.v1.Secrets/GetSecret";

/// Where a secret's value comes from (buildx `--secret id=X,src=FILE` or `env=VAR`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// The contents of a file, read when the daemon asks.
    File(PathBuf),
    /// The value of an environment variable, read when the daemon asks.
    Env(String),
    /// A value held in memory.
    Value(Vec<u8>),
}

/// The Secrets service over an ID → source map.
#[derive(Debug, Clone, Default)]
pub struct SecretStore {
    secrets: BTreeMap<String, SecretSource>,
}

impl SecretStore {
    /// Serves the given secrets.
    pub fn new(secrets: BTreeMap<String, SecretSource>) -> Self {
        SecretStore { secrets }
    }

    /// The value of secret `id`; NotFound (which BuildKit reports as "secret not found") when
    /// it is not registered or its source is missing.
    pub async fn value(&self, id: &str) -> Result<Vec<u8>, Status> {
        let missing = |why: String| Status::not_found(format!("secret {id} not found: {why}"));
        match self.secrets.get(id) {
            None => Err(missing("not provided to this build".into())),
            Some(SecretSource::Value(v)) => Ok(v.clone()),
            Some(SecretSource::Env(var)) => std::env::var_os(var)
                .map(std::os::unix::ffi::OsStringExt::into_vec)
                .ok_or_else(|| missing(format!("environment variable {var} is not set"))),
            Some(SecretSource::File(path)) => tokio::fs::read(path)
                .await
                .map_err(|e| missing(format!("cannot read {}: {e}", path.display()))),
        }
    }
}

#[tonic::async_trait]
impl Secrets for SecretStore {
    async fn get_secret(
        &self,
        request: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let data = self.value(&request.get_ref().id).await?;
        Ok(Response::new(GetSecretResponse { data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_files_values_and_reports_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("token");
        std::fs::write(&file, b"s3cret").expect("write");
        let store = SecretStore::new(BTreeMap::from([
            ("f".to_owned(), SecretSource::File(file)),
            ("v".to_owned(), SecretSource::Value(b"inline".to_vec())),
            (
                "e".to_owned(),
                SecretSource::Env("BRIX_TEST_SURELY_UNSET_VAR".into()),
            ),
        ]));
        assert_eq!(store.value("f").await.expect("file"), b"s3cret");
        assert_eq!(store.value("v").await.expect("value"), b"inline");
        assert_eq!(
            store.value("e").await.expect_err("unset").code(),
            tonic::Code::NotFound
        );
        assert_eq!(
            store.value("nope").await.expect_err("unknown").code(),
            tonic::Code::NotFound
        );
    }
}
