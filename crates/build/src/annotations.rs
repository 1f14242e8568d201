//! `--annotation [TYPE[,TYPE…][PLATFORM]:]KEY=VALUE`, read as buildx 0.29 reads it
//! (`util/buildflags` `ParseAnnotations`), and where each annotation goes.
//!
//! buildx turns every annotation into an exporter attribute (`annotation.KEY`,
//! `annotation-manifest[linux/arm64].KEY`, `annotation-index.KEY`, …) of its one solve, and
//! BuildKit's image exporter puts it on the manifests, their descriptors, the index or the
//! index's descriptor (`exporter/containerimage/annotations.go`, `writer.go`). brix does the
//! same when it runs one solve. With one solve per platform, each solve gets only its
//! platform's manifest annotations, and brix puts the index, manifest-descriptor and
//! index-descriptor annotations on the index it assembles itself, as BuildKit would have.

use std::collections::BTreeMap;

use anyhow::bail;
use brix_config::{KNOWN_ARCHITECTURES, KNOWN_OSES, Platform};

/// BuildKit's annotation types, and the one buildx sends when none is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    /// No type (`KEY=VALUE`): `annotation.KEY`, which BuildKit reads as a manifest annotation.
    Untyped,
    /// `manifest`: the image manifests.
    Manifest,
    /// `manifest-descriptor`: the index's entries for the image manifests.
    ManifestDescriptor,
    /// `index`: the image index.
    Index,
    /// `index-descriptor`: the descriptor of the index (an OCI layout's `index.json`).
    IndexDescriptor,
}

impl Level {
    fn from_type(name: &str) -> Option<Self> {
        Some(match name {
            "manifest" => Level::Manifest,
            "manifest-descriptor" => Level::ManifestDescriptor,
            "index" => Level::Index,
            "index-descriptor" => Level::IndexDescriptor,
            _ => return None,
        })
    }

    /// What BuildKit files the annotation under: an untyped one is a manifest annotation.
    fn effective(self) -> Self {
        match self {
            Level::Untyped => Level::Manifest,
            other => other,
        }
    }

    /// Whether BuildKit keeps the platform (`exptypes.AnnotationKey.String`): only the
    /// manifest types are per platform; an index type's platform is dropped.
    fn per_platform(self) -> bool {
        matches!(self, Level::Manifest | Level::ManifestDescriptor)
    }
}

/// One annotation as given.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Annotation {
    level: Level,
    /// Only on the manifest types (see [`Level::per_platform`]), normalized as BuildKit
    /// normalizes it.
    platform: Option<Platform>,
    key: String,
    value: String,
}

impl Annotation {
    /// The exporter attribute buildx makes of it (`exptypes.AnnotationKey.String`).
    fn attribute(&self) -> String {
        let prefix = match self.level {
            Level::Untyped => "annotation",
            Level::Manifest => "annotation-manifest",
            Level::ManifestDescriptor => "annotation-manifest-descriptor",
            Level::Index => "annotation-index",
            Level::IndexDescriptor => "annotation-index-descriptor",
        };
        match &self.platform {
            Some(p) => format!("{prefix}[{p}].{}", self.key),
            None => format!("{prefix}.{}", self.key),
        }
    }

    /// Whether BuildKit reads the attribute as an annotation at all: its pattern ends in
    /// `\.(\S+)$`, so an empty key or one with white space is an unknown exporter attribute,
    /// which the exporter ignores.
    fn read_by_buildkit(&self) -> bool {
        !self.key.is_empty()
            && !self
                .key
                .bytes()
                .any(|b| matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' '))
    }

    fn applies_to(&self, platform: &Platform) -> bool {
        self.platform
            .as_ref()
            .is_none_or(|p| p.to_string() == normalize(platform).to_string())
    }
}

/// The `--annotation` values of a build.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Annotations(Vec<Annotation>);

impl Annotations {
    /// Parses the values with buildx's rules and words: `KEY=VALUE` without a type, or one or
    /// more comma-separated types, each with an optional `[os/arch[/variant]]`, before a `:`.
    pub(crate) fn parse(values: &[String]) -> anyhow::Result<Self> {
        let mut out: Vec<Annotation> = Vec::new();
        for input in values.iter().filter(|v| !v.is_empty()) {
            let fail = |reason: String| -> anyhow::Result<Self> {
                bail!("failed to build: parse annotations: {reason}")
            };
            let Some((name, value)) = input.split_once('=') else {
                return fail(format!("invalid annotation {input:?}, expected key=value"));
            };
            let Some((types, key)) = name.split_once(':') else {
                add(&mut out, Level::Untyped, None, name, value);
                continue;
            };
            for type_and_platform in types.split(',') {
                let Some((kind, platform)) = split_type(type_and_platform) else {
                    return fail(format!(
                        "invalid annotation type {type_and_platform:?}, expected type and optional platform in square brackets"
                    ));
                };
                let Some(level) = Level::from_type(kind) else {
                    return fail(format!("unknown annotation type {kind:?}"));
                };
                let platform = match platform {
                    Some(spec) => match parse_platform(spec) {
                        Ok(p) => Some(p),
                        Err(e) => return fail(format!("invalid platform {spec:?}: {e}")),
                    },
                    None => None,
                };
                add(
                    &mut out,
                    level,
                    platform.filter(|_| level.per_platform()),
                    key,
                    value,
                );
            }
        }
        Ok(Annotations(out))
    }

    /// BuildKit's check when it exports several platforms (`invalid annotation: no platform
    /// … found in source`): a manifest annotation names one of the build's platforms. With
    /// one platform BuildKit checks nothing (the annotation just does not apply).
    pub(crate) fn check_platforms(&self, platforms: &[Platform]) -> anyhow::Result<()> {
        if platforms.len() < 2 {
            return Ok(());
        }
        let built: Vec<String> = platforms.iter().map(|p| normalize(p).to_string()).collect();
        for a in self.0.iter().filter(|a| a.read_by_buildkit()) {
            if let Some(p) = &a.platform
                && !built.contains(&p.to_string())
            {
                bail!(
                    "failed to build: failed to solve: invalid annotation: no platform {p} found in source"
                );
            }
        }
        Ok(())
    }

    /// The exporter attributes of the build's only solve, every annotation as buildx sends
    /// it.
    pub(crate) fn solve_attributes(&self) -> BTreeMap<String, String> {
        self.0
            .iter()
            .map(|a| (a.attribute(), a.value.clone()))
            .collect()
    }

    /// The exporter attributes of the solve of one platform of several: the manifest
    /// annotations for every platform and those for this one (which win, as in BuildKit's
    /// `AnnotationsGroup.Platform`), the latter without their platform, since the solve
    /// exports this platform alone.
    pub(crate) fn platform_solve_attributes(
        &self,
        platform: Option<&Platform>,
    ) -> BTreeMap<String, String> {
        let mut by_key: BTreeMap<&str, (String, &str)> = BTreeMap::new();
        let manifest = self
            .0
            .iter()
            .filter(|a| a.level.effective() == Level::Manifest);
        for a in manifest.clone().filter(|a| a.platform.is_none()) {
            by_key.insert(&a.key, (a.attribute(), &a.value));
        }
        if let Some(platform) = platform {
            for a in manifest.filter(|a| a.platform.is_some() && a.applies_to(platform)) {
                by_key.insert(&a.key, (format!("annotation-manifest.{}", a.key), &a.value));
            }
        }
        by_key
            .into_values()
            .map(|(attribute, value)| (attribute, value.to_owned()))
            .collect()
    }

    /// What brix adds to the index it assembles over the per-platform results, `platforms`
    /// being the platforms built: index annotations on the index, index-descriptor ones on
    /// its descriptor, manifest-descriptor ones on the entries of the image manifests (not
    /// their attestations, as BuildKit's exporter), those for one platform winning.
    pub(crate) fn index_edits(&self, platforms: &[Platform]) -> brix_exporter::IndexEdits {
        let mut edits = brix_exporter::IndexEdits::default();
        let read = || self.0.iter().filter(|a| a.read_by_buildkit());
        for a in read() {
            let map = match a.level {
                Level::Index => &mut edits.index_annotations,
                Level::IndexDescriptor => &mut edits.index_descriptor_annotations,
                _ => continue,
            };
            map.insert(a.key.clone(), a.value.clone());
        }
        // An entry without a platform is given once per image platform, which keeps it off
        // the attestations (`unknown/unknown`); the per-platform ones come after, and win.
        let descriptors = read().filter(|a| a.level == Level::ManifestDescriptor);
        for a in descriptors.clone().filter(|a| a.platform.is_none()) {
            for p in platforms {
                edits.descriptor_annotations.push((
                    Some(normalize(p)),
                    a.key.clone(),
                    a.value.clone(),
                ));
            }
        }
        for a in descriptors.filter(|a| a.platform.is_some()) {
            edits
                .descriptor_annotations
                .push((a.platform.clone(), a.key.clone(), a.value.clone()));
        }
        edits
    }
}

/// Adds an annotation; one BuildKit would file under the same type, platform and key
/// replaces the earlier one, so the last given wins (buildx leaves that to map order).
fn add(
    out: &mut Vec<Annotation>,
    level: Level,
    platform: Option<Platform>,
    key: &str,
    value: &str,
) {
    out.retain(|a| {
        !(a.level.effective() == level.effective() && a.platform == platform && a.key == key)
    });
    out.push(Annotation {
        level,
        platform,
        key: key.to_owned(),
        value: value.to_owned(),
    });
}

/// `TYPE` or `TYPE[PLATFORM]`, as buildx's `^([a-z-]+)(?:\[([A-Za-z0-9_/-]+)\])?$`.
fn split_type(text: &str) -> Option<(&str, Option<&str>)> {
    let is_type = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
    let (kind, platform) = match text.split_once('[') {
        Some((kind, rest)) => {
            let platform = rest.strip_suffix(']')?;
            let valid = !platform.is_empty()
                && platform
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_/-".contains(&b));
            if !valid {
                return None;
            }
            (kind, Some(platform))
        }
        None => (text, None),
    };
    is_type(kind).then_some((kind, platform))
}

/// containerd's `platforms.Parse` (as buildx calls it) for what buildx's pattern lets through
/// (`[A-Za-z0-9_/-]`, so no OS version), with its messages, then `platforms.Normalize` (as
/// BuildKit applies it to the attribute it receives). Unlike `Platform::parse`, `os/arch`
/// pairs need not be known.
fn parse_platform(spec: &str) -> Result<Platform, String> {
    const OS_PATTERN: &str =
        r"^([A-Za-z0-9_-]+)(?:\(([A-Za-z0-9_.%-]*)((?:\+[A-Za-z0-9_.%-]+)*)\))?$";
    const COMPONENT_PATTERN: &str = "^[A-Za-z0-9_.-]+$";
    let parts: Vec<&str> = spec.splitn(4, '/').collect();
    // buildx's pattern leaves one way for a part to be invalid: being empty.
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() && i == 0 {
            return Err(format!(
                "{part:?} is an invalid OS component of {spec:?}: OSAndVersion specifier component must match {OS_PATTERN:?}: invalid argument"
            ));
        }
        if part.is_empty() {
            return Err(format!(
                "{part:?} is an invalid component of {spec:?}: platform specifier component must match {COMPONENT_PATTERN:?}: invalid argument"
            ));
        }
    }
    let host = Platform::host();
    let platform = match parts[..] {
        [one] => {
            let as_os = Platform::normalized(one, "", "").os;
            let as_arch = Platform::normalized("", one, "").architecture;
            if KNOWN_OSES.contains(&as_os.as_str()) {
                Platform::normalized(&as_os, &host.architecture, &host.variant)
            } else if KNOWN_ARCHITECTURES.contains(&as_arch.as_str()) {
                Platform::normalized(&host.os, one, "")
            } else {
                return Err(format!(
                    "{spec:?}: unknown operating system or architecture: invalid argument"
                ));
            }
        }
        [os, arch] => Platform::normalized(os, arch, ""),
        [os, arch, variant] => Platform::normalized(os, arch, variant),
        _ => {
            return Err(format!(
                "{spec:?}: cannot parse platform specifier: invalid argument"
            ));
        }
    };
    Ok(platform)
}

/// A platform as BuildKit keys annotations by it (`platforms.Normalize`).
fn normalize(p: &Platform) -> Platform {
    Platform::normalized(&p.os, &p.architecture, &p.variant)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(values: &[&str]) -> anyhow::Result<Annotations> {
        Annotations::parse(&values.iter().map(|v| v.to_string()).collect::<Vec<_>>())
    }

    fn error(values: &[&str]) -> String {
        match parse(values) {
            Ok(a) => panic!("{values:?} parsed: {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn linux(arch: &str) -> Platform {
        Platform::parse(&format!("linux/{arch}")).expect("platform")
    }

    #[test]
    fn every_level_becomes_buildx_s_exporter_attribute() {
        let a = parse(&[
            "plain=1",
            "manifest:m=2",
            "manifest[linux/arm64]:ma=3",
            "manifest-descriptor:md=4",
            "manifest-descriptor[linux/amd64]:mda=5",
            "index:i=6",
            "index-descriptor:id=7",
            "",
        ])
        .expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[
                ("annotation.plain", "1"),
                ("annotation-manifest.m", "2"),
                ("annotation-manifest[linux/arm64].ma", "3"),
                ("annotation-manifest-descriptor.md", "4"),
                ("annotation-manifest-descriptor[linux/amd64].mda", "5"),
                ("annotation-index.i", "6"),
                ("annotation-index-descriptor.id", "7"),
            ])
        );
    }

    #[test]
    fn several_types_a_value_with_equals_and_a_colon_in_the_key() {
        let a = parse(&["index,manifest:k=a=b", "x=y:z"]).expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[
                ("annotation-index.k", "a=b"),
                ("annotation-manifest.k", "a=b"),
                ("annotation.x", "y:z"),
            ])
        );
        let a = parse(&["manifest:a:b=c"]).expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[("annotation-manifest.a:b", "c")])
        );
    }

    #[test]
    fn platforms_are_normalized_and_dropped_from_index_types() {
        let a = parse(&[
            "manifest[linux/aarch64]:a=1",
            "manifest[linux/arm64/v8]:b=2",
            "manifest[linux/arm]:c=3",
            "manifest[arm64]:d=4",
            "manifest[foo/bar]:e=5",
            "index[linux/amd64]:f=6",
            "index-descriptor[linux/amd64]:g=7",
        ])
        .expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[
                ("annotation-manifest[linux/arm64].a", "1"),
                ("annotation-manifest[linux/arm64].b", "2"),
                ("annotation-manifest[linux/arm/v7].c", "3"),
                ("annotation-manifest[linux/arm64].d", "4"),
                ("annotation-manifest[foo/bar].e", "5"),
                ("annotation-index.f", "6"),
                ("annotation-index-descriptor.g", "7"),
            ])
        );
        let host = Platform::host();
        let a = parse(&["manifest[linux]:k=v"]).expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[(&format!("annotation-manifest[{}].k", normalize(&host)), "v")])
        );
    }

    #[test]
    fn the_last_of_the_same_annotation_wins() {
        let a =
            parse(&["k=1", "manifest:k=2", "index:i=1", "index[linux/amd64]:i=2"]).expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[("annotation-manifest.k", "2"), ("annotation-index.i", "2")])
        );
        let a = parse(&["manifest:k=1", "k=2"]).expect("parses");
        assert_eq!(a.solve_attributes(), attrs(&[("annotation.k", "2")]));
    }

    #[test]
    fn bad_input_gets_buildx_s_words() {
        let prefix = "failed to build: parse annotations: ";
        let cases: &[(&str, &str)] = &[
            ("foo", r#"invalid annotation "foo", expected key=value"#),
            (
                "manifest:k",
                r#"invalid annotation "manifest:k", expected key=value"#,
            ),
            ("bogus:k=v", r#"unknown annotation type "bogus""#),
            ("index,bogus:k=v", r#"unknown annotation type "bogus""#),
            ("x:y:z=v", r#"unknown annotation type "x""#),
            (
                ":k=v",
                r#"invalid annotation type "", expected type and optional platform in square brackets"#,
            ),
            (
                "index,:k=v",
                r#"invalid annotation type "", expected type and optional platform in square brackets"#,
            ),
            (
                "Manifest:k=v",
                r#"invalid annotation type "Manifest", expected type and optional platform in square brackets"#,
            ),
            (
                "manifest :k=v",
                r#"invalid annotation type "manifest ", expected type and optional platform in square brackets"#,
            ),
            (
                "manifest[]:k=v",
                r#"invalid annotation type "manifest[]", expected type and optional platform in square brackets"#,
            ),
            (
                "manifest[linux/amd64]x:k=v",
                r#"invalid annotation type "manifest[linux/amd64]x", expected type and optional platform in square brackets"#,
            ),
            (
                "manifest[linux.x]:k=v",
                r#"invalid annotation type "manifest[linux.x]", expected type and optional platform in square brackets"#,
            ),
            (
                "manifest[bad]:k=v",
                r#"invalid platform "bad": "bad": unknown operating system or architecture: invalid argument"#,
            ),
            (
                "manifest[/amd64]:k=v",
                r#"invalid platform "/amd64": "" is an invalid OS component of "/amd64": OSAndVersion specifier component must match "^([A-Za-z0-9_-]+)(?:\\(([A-Za-z0-9_.%-]*)((?:\\+[A-Za-z0-9_.%-]+)*)\\))?$": invalid argument"#,
            ),
            (
                "manifest[linux/]:k=v",
                r#"invalid platform "linux/": "" is an invalid component of "linux/": platform specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument"#,
            ),
            (
                "manifest[linux/arm64/]:k=v",
                r#"invalid platform "linux/arm64/": "" is an invalid component of "linux/arm64/": platform specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument"#,
            ),
            (
                "manifest[a/b/c/d]:k=v",
                r#"invalid platform "a/b/c/d": "a/b/c/d": cannot parse platform specifier: invalid argument"#,
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(error(&[input]), format!("{prefix}{reason}"), "{input}");
        }
        // The first bad value is the one reported.
        assert_eq!(
            error(&["ok=1", "bad", "worse"]),
            format!("{prefix}invalid annotation \"bad\", expected key=value")
        );
    }

    #[test]
    fn keys_buildkit_does_not_read_are_sent_but_not_applied() {
        // buildx sends them; BuildKit's pattern (`\.(\S+)$`) does not take them as annotations.
        let a =
            parse(&["=v", "manifest-descriptor:=v", "index:a b=v", "index:ok=1"]).expect("parses");
        assert_eq!(
            a.solve_attributes(),
            attrs(&[
                ("annotation.", "v"),
                ("annotation-manifest-descriptor.", "v"),
                ("annotation-index.a b", "v"),
                ("annotation-index.ok", "1"),
            ])
        );
        let edits = a.index_edits(&[linux("amd64"), linux("arm64")]);
        assert_eq!(edits.index_annotations, attrs(&[("ok", "1")]));
        assert!(edits.descriptor_annotations.is_empty());
    }

    #[test]
    fn a_platform_s_solve_gets_its_manifest_annotations_unqualified() {
        let a = parse(&[
            "all=1",
            "manifest:m=2",
            "manifest[linux/arm64]:m=arm",
            "manifest[linux/arm64]:only=3",
            "manifest[linux/amd64]:x=4",
            "manifest-descriptor:md=5",
            "index:i=6",
            "index-descriptor:id=7",
        ])
        .expect("parses");
        assert_eq!(
            a.platform_solve_attributes(Some(&linux("arm64"))),
            attrs(&[
                ("annotation.all", "1"),
                ("annotation-manifest.m", "arm"),
                ("annotation-manifest.only", "3"),
            ])
        );
        assert_eq!(
            a.platform_solve_attributes(Some(&linux("amd64"))),
            attrs(&[
                ("annotation.all", "1"),
                ("annotation-manifest.m", "2"),
                ("annotation-manifest.x", "4"),
            ])
        );
        assert_eq!(
            a.platform_solve_attributes(None),
            attrs(&[("annotation.all", "1"), ("annotation-manifest.m", "2")])
        );
    }

    #[test]
    fn the_assembled_index_gets_the_index_and_descriptor_levels() {
        let a = parse(&[
            "m=1",
            "index:i=2",
            "index-descriptor:id=3",
            "manifest-descriptor:md=all",
            "manifest-descriptor[linux/arm64/v8]:md=arm",
        ])
        .expect("parses");
        let amd64 = linux("amd64");
        let arm64 = linux("arm64");
        let edits = a.index_edits(&[amd64.clone(), arm64.clone()]);
        assert_eq!(edits.index_annotations, attrs(&[("i", "2")]));
        assert_eq!(edits.index_descriptor_annotations, attrs(&[("id", "3")]));
        assert_eq!(
            edits.descriptor_annotations,
            vec![
                (Some(amd64.clone()), "md".to_owned(), "all".to_owned()),
                (Some(arm64.clone()), "md".to_owned(), "all".to_owned()),
                (Some(arm64.clone()), "md".to_owned(), "arm".to_owned()),
            ]
        );

        // Applied: on the images, the platform's own value last; not on the attestations.
        let image = |p: &Platform, n: u8| brix_exporter::Descriptor {
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            digest: format!("sha256:{}", format!("{n:x}").repeat(64)),
            size: 1,
            platform: Some(p.clone()),
            ..Default::default()
        };
        let mut attestation = image(&Platform::new("unknown", "unknown", ""), 3);
        attestation.annotations.insert(
            "vnd.docker.reference.type".into(),
            "attestation-manifest".into(),
        );
        let applied = edits.apply(vec![image(&amd64, 1), image(&arm64, 2), attestation]);
        let md: Vec<Option<&str>> = applied
            .iter()
            .map(|d| d.annotations.get("md").map(String::as_str))
            .collect();
        assert_eq!(md, [Some("all"), Some("arm"), None]);
    }

    #[test]
    fn several_platforms_refuse_a_manifest_annotation_for_another() {
        let built = [linux("amd64"), linux("arm64")];
        let ok = parse(&[
            "manifest[linux/aarch64]:a=1",
            "manifest-descriptor[linux/amd64]:b=2",
            "index[linux/s390x]:c=3",
            "manifest[linux/s390x]:=ignored",
        ])
        .expect("parses");
        ok.check_platforms(&built).expect("all built");
        let other = parse(&["manifest-descriptor[linux/s390x]:k=v"]).expect("parses");
        assert_eq!(
            other
                .check_platforms(&built)
                .expect_err("not built")
                .to_string(),
            "failed to build: failed to solve: invalid annotation: no platform linux/s390x found in source"
        );
        // One platform: BuildKit does not check, the annotation just does not apply.
        other.check_platforms(&built[..1]).expect("one platform");
    }
}
