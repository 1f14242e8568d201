//! Which pod serves a connection (`loadbalance`): `sticky` puts the running pods on a
//! consistent-hash ring and takes the one a key falls on, exactly as buildx does with
//! `github.com/serialx/hashring` (one point per pod at MD5(`<pod>-0`), the key at MD5(key),
//! both read as a pair of little-endian signed 64-bit numbers; the first point above the
//! key, wrapping around), so brix and buildx send a project's builds to the same pod;
//! `random` any running pod.

use md5::{Digest, Md5};

/// A point on the ring: MD5 read as (high, low) little-endian `i64`s, compared in order.
fn ring_point(data: &str) -> (i64, i64) {
    let sum = Md5::digest(data.as_bytes());
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&sum[..8]);
    low.copy_from_slice(&sum[8..]);
    (i64::from_le_bytes(high), i64::from_le_bytes(low))
}

/// The pod `key` falls on among `pods` (running pods, any order); `None` when there is none.
pub fn sticky<'a>(pods: &'a [String], key: &str) -> Option<&'a str> {
    let mut ring: Vec<((i64, i64), &str)> = pods
        .iter()
        .map(|p| (ring_point(&format!("{p}-0")), p.as_str()))
        .collect();
    ring.sort();
    let at = ring_point(key);
    ring.iter()
        .find(|(point, _)| at < *point)
        .or_else(|| ring.first())
        .map(|(_, pod)| *pod)
}

/// Any one of `pods`.
pub fn random(pods: &[String]) -> Option<&str> {
    if pods.is_empty() {
        return None;
    }
    let i = (crate::random_u64() % pods.len() as u64) as usize;
    pods.get(i).map(String::as_str)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a test may panic on what it checks
mod tests {
    use super::*;

    /// Expected values printed by serialx/hashring v0.0.0-20200727003509-22c0c7ab6b1b (the
    /// version buildx 0.29 uses) for the same pods and keys.
    #[test]
    fn same_pod_as_buildx() {
        let pods = vec![
            "kube0-6977cdcb75-48ld2".to_string(),
            "kube0-6977cdcb75-rkc6b".to_string(),
        ];
        for (key, want) in [
            ("/work/main/examples/hello", "kube0-6977cdcb75-48ld2"),
            ("/tmp/a", "kube0-6977cdcb75-48ld2"),
            ("/tmp/b", "kube0-6977cdcb75-48ld2"),
            ("/home/user/project", "kube0-6977cdcb75-rkc6b"),
            ("x", "kube0-6977cdcb75-48ld2"),
        ] {
            assert_eq!(sticky(&pods, key), Some(want), "{key}");
        }
        // The pods' order does not matter.
        let reversed: Vec<String> = pods.iter().rev().cloned().collect();
        assert_eq!(
            sticky(&reversed, "/home/user/project"),
            Some("kube0-6977cdcb75-rkc6b")
        );
        let three: Vec<String> = ["x2x4z", "pq7rt", "ab3cd"]
            .iter()
            .map(|s| format!("kube0-5d9f8b7c6d-{s}"))
            .collect();
        for key in ["", "/", "/src/app", "/work/ctx1", "/work/ctx4"] {
            assert_eq!(sticky(&three, key), Some("kube0-5d9f8b7c6d-ab3cd"), "{key}");
        }
        assert_eq!(sticky(&[], "x"), None);
    }

    #[test]
    fn random_stays_in_range() {
        let pods = vec!["a".to_string(), "b".to_string()];
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..64 {
            let pod = random(&pods).unwrap();
            assert!(pods.iter().any(|p| p == pod));
            seen.insert(pod);
        }
        assert_eq!(seen.len(), 2, "64 draws should reach both pods");
        assert_eq!(random(&[]), None);
    }
}
