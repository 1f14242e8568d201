//! `BUILDX_METADATA_PROVENANCE` and the `buildx.build.provenance` keys of `--metadata-file`
//! (issue 12), side by side with real buildx on one builder: a two-platform build gets one
//! `buildx.build.provenance/<platform>` key per platform from both tools (brix: one solve per
//! platform; buildx: one multi-platform solve), a single-platform build the plain key; the
//! predicates decode to the same members in the same order, `min` (the default) without
//! `buildConfig`/`metadata`, `max` with them; `disabled` and `false` write none.

use std::path::PathBuf;

use brix_e2e::{E2eEnv, SharedBuilder, path, run, unique_name};
use serde_json::Value;

const PLATFORMS: &str = "linux/amd64,linux/arm64";
const KEY: &str = "buildx.build.provenance";

/// The builder both tools build on ([`SharedBuilder`]) and a context of its own.
struct Builder {
    env: E2eEnv,
    shared: SharedBuilder,
    ctx: PathBuf,
}

impl Builder {
    fn create(purpose: &str) -> Option<Self> {
        let env = E2eEnv::get()?;
        let shared = SharedBuilder::new(&env, purpose);
        let ctx = env.scratch_dir(&format!("{purpose}-ctx"));
        std::fs::write(ctx.join("a.txt"), unique_name(purpose)).expect("a.txt");
        std::fs::write(
            ctx.join("Dockerfile"),
            format!("FROM {}\nCOPY a.txt /a.txt\n", env.busybox),
        )
        .expect("Dockerfile");
        Some(Builder { env, shared, ctx })
    }

    /// The metadata file of `tool build --metadata-file` (to the cache only) with
    /// `BUILDX_METADATA_PROVENANCE` set to `mode` (left unset for `None`).
    fn metadata(&self, tool: &str, mode: Option<&str>, platforms: Option<&str>) -> String {
        let file = self
            .env
            .scratch_dir(&format!("{tool}-metadata"))
            .join("metadata.json");
        let mut c = self.shared.build(tool);
        c.env_remove("BUILDX_METADATA_PROVENANCE");
        if let Some(mode) = mode {
            c.env("BUILDX_METADATA_PROVENANCE", mode);
        }
        c.args([
            "--progress",
            "plain",
            "--output",
            "type=cacheonly",
            "--metadata-file",
            path(&file),
        ]);
        if let Some(p) = platforms {
            c.args(["--platform", p]);
        }
        let r = run(c.arg(&self.ctx)).ok();
        if mode != Some("disabled") && mode.and_then(|m| m.parse::<bool>().ok()) != Some(false) {
            assert!(
                r.stderr.contains("resolving provenance for metadata file"),
                "{tool}: the step is shown:\n{}",
                r.stderr
            );
        }
        std::fs::read_to_string(&file).expect("metadata file")
    }
}

/// The `buildx.build.provenance*` keys of the metadata file `text`, each with its
/// predicate's JSON text as written (buildx writes the object, decoded from base64).
fn provenance(text: &str) -> Vec<(String, String)> {
    let members: std::collections::BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_str(text).expect("metadata JSON");
    members
        .into_iter()
        .filter(|(k, _)| k.starts_with(KEY))
        .map(|(k, v)| (k, v.get().to_owned()))
        .collect()
}

/// The member names of the JSON object `text`, in the order written.
fn member_order(text: &str) -> Vec<String> {
    struct Keys;
    impl<'de> serde::de::Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(
            self,
            mut m: A,
        ) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((k, _)) = m.next_entry::<String, serde::de::IgnoredAny>()? {
                keys.push(k);
            }
            Ok(keys)
        }
    }
    serde::Deserializer::deserialize_map(&mut serde_json::Deserializer::from_str(text), Keys)
        .expect("a JSON object")
}

/// Compares the two tools' provenance keys and predicates; returns brix's predicates.
fn compare(brix: &str, buildx: &str, expected_keys: &[String], what: &str) -> Vec<String> {
    let (ours, theirs) = (provenance(brix), provenance(buildx));
    let keys = |p: &[(String, String)]| p.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>();
    assert_eq!(keys(&theirs), expected_keys, "{what}: buildx's keys");
    assert_eq!(keys(&ours), expected_keys, "{what}: brix's keys");
    for ((key, a), (_, b)) in ours.iter().zip(&theirs) {
        eprintln!("{what}: {key}\n  brix:   {a}\n  buildx: {b}");
        assert_eq!(
            member_order(a),
            member_order(b),
            "{what}: {key}: the same members in the same order"
        );
        let (a, b): (Value, Value) = (
            serde_json::from_str(a).expect("brix JSON"),
            serde_json::from_str(b).expect("buildx JSON"),
        );
        assert_eq!(a["buildType"], b["buildType"], "{what}: {key}: buildType");
        assert_eq!(a["materials"], b["materials"], "{what}: {key}: materials");
        assert_eq!(
            member_order(&a["invocation"].to_string()),
            member_order(&b["invocation"].to_string()),
            "{what}: {key}: the invocation's members"
        );
    }
    ours.into_iter().map(|(_, p)| p).collect()
}

#[test]
fn provenance_in_the_metadata_file_as_with_buildx() {
    let Some(b) = Builder::create("mdprov") else {
        return;
    };
    let per_platform: Vec<String> = PLATFORMS.split(',').map(|p| format!("{KEY}/{p}")).collect();

    // The default is min: no buildConfig, no metadata.
    let brix = b.metadata("brix", None, Some(PLATFORMS));
    let buildx = b.metadata("buildx", None, Some(PLATFORMS));
    for p in compare(&brix, &buildx, &per_platform, "min") {
        let members = member_order(&p);
        assert!(
            !members
                .iter()
                .any(|m| m == "buildConfig" || m == "metadata"),
            "{members:?}"
        );
    }

    let brix = b.metadata("brix", Some("max"), Some(PLATFORMS));
    let buildx = b.metadata("buildx", Some("max"), Some(PLATFORMS));
    for p in compare(&brix, &buildx, &per_platform, "max") {
        let members = member_order(&p);
        assert!(
            members.iter().any(|m| m == "buildConfig") && members.iter().any(|m| m == "metadata"),
            "{members:?}"
        );
    }

    // One platform: the plain key.
    let brix = b.metadata("brix", Some("min"), None);
    let buildx = b.metadata("buildx", Some("min"), None);
    let ours = compare(&brix, &buildx, &[KEY.to_owned()], "single platform");
    // The same request from both tools: the same predicate, byte for byte.
    assert_eq!(
        ours,
        vec![provenance(&buildx).remove(0).1],
        "single platform"
    );

    for mode in ["disabled", "false"] {
        let brix = b.metadata("brix", Some(mode), Some(PLATFORMS));
        let buildx = b.metadata("buildx", Some(mode), Some(PLATFORMS));
        compare(&brix, &buildx, &[], mode);
        assert!(brix.contains("\"buildx.build.ref\""), "{mode}: {brix}");
    }
}
