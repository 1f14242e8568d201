//! Registry caches (`--cache-to type=registry,ref=R`): the per-platform cache manifests that
//! the solves pushed into `R`'s repository, merged and pushed under `R`'s tag.

use super::merge::{CacheExport, cache_config_descriptor, merge_cache_exports};
use super::{CacheError, distinct_manifests};
use crate::descriptor::Descriptor;
use crate::registry::{ImageReference, Registry};

impl Registry {
    /// Merges the cache manifests `manifests` (the `cache.manifest` descriptors of the solves
    /// that exported to `reference`) and pushes the result under `reference`'s tag (by digest
    /// if it has none); returns the merged manifest's descriptor.
    ///
    /// Each manifest is fetched from `reference`'s repository by digest, with the cache config
    /// it names; the merged config is pushed first, then the merged manifest. The layer blobs
    /// are not touched: the daemons pushed them into the repository already. One distinct
    /// manifest is returned as it is, with nothing pushed: when several solves export to the
    /// same tag concurrently, the tag points at whichever finished last, so with more than one
    /// the merged manifest is always pushed.
    pub async fn merge_cache(
        &self,
        reference: &ImageReference,
        manifests: &[Descriptor],
    ) -> Result<Descriptor, CacheError> {
        let manifests = distinct_manifests(manifests)?;
        match manifests.as_slice() {
            [] => return Err(CacheError::NoManifests),
            [single] => return Ok((*single).clone()),
            _ => {}
        }
        let pairs = futures_util::future::try_join_all(manifests.iter().map(|manifest| async {
            let fetched = self
                .fetch_manifest(&reference.with_digest(&manifest.digest))
                .await?;
            let config = cache_config_descriptor(&fetched.bytes)?;
            let config = self.fetch_blob(reference, &config.digest).await?;
            Ok::<_, CacheError>((fetched.bytes, config))
        }))
        .await?;
        let exports: Vec<CacheExport<'_>> = pairs
            .iter()
            .map(|(manifest, config)| CacheExport { manifest, config })
            .collect();
        let merged = merge_cache_exports(&exports)?;

        self.push_blob_bytes(reference, &merged.config_descriptor.digest, &merged.config)
            .await?;
        let target = match reference.tag() {
            Some(tag) => reference.with_tag(tag),
            None => reference.with_digest(&merged.manifest_descriptor.digest),
        };
        self.push_manifest_bytes(
            &target,
            &merged.manifest_descriptor.media_type,
            &merged.manifest,
        )
        .await?;
        tracing::debug!(
            reference = %target,
            digest = merged.manifest_descriptor.digest,
            merged = pairs.len(),
            "pushed merged cache manifest"
        );
        Ok(merged.manifest_descriptor)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::*;
    use crate::descriptor::media_type;
    use crate::registry::RegistryOptions;

    /// A registry on a closed port: any request would fail.
    fn unreachable() -> (Registry, ImageReference) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let registry = Registry::new(RegistryOptions {
            attempts: 1,
            initial_backoff: Duration::from_millis(1),
            docker_config: Some(PathBuf::from("/nonexistent/config.json")),
            ..Default::default()
        });
        let reference = ImageReference::parse(&format!("127.0.0.1:{port}/cache:main")).unwrap();
        (registry, reference)
    }

    #[tokio::test]
    async fn one_manifest_is_returned_without_a_request() {
        let (registry, reference) = unreachable();
        let only = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"m");
        let merged = registry
            .merge_cache(&reference, &[only.clone(), only.clone()])
            .await
            .unwrap();
        assert_eq!(merged, only);
        assert!(matches!(
            registry.merge_cache(&reference, &[]).await,
            Err(CacheError::NoManifests)
        ));
    }

    #[tokio::test]
    async fn several_manifests_are_fetched_from_the_repository() {
        let (registry, reference) = unreachable();
        let a = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"a");
        let b = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"b");
        let err = registry.merge_cache(&reference, &[a, b]).await.unwrap_err();
        assert!(
            matches!(
                err,
                CacheError::Exporter(crate::Error::RegistryUnreachable { .. })
            ),
            "{err}"
        );
        let mut bad = Descriptor::of_bytes(media_type::OCI_MANIFEST, b"c");
        bad.digest = "sha256:nope".into();
        assert!(matches!(
            registry.merge_cache(&reference, &[bad]).await,
            Err(CacheError::Exporter(crate::Error::InvalidDescriptor { .. }))
        ));
    }
}
