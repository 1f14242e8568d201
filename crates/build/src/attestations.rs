//! `--attest`, `--provenance` and `--sbom`: buildx 0.29's attestation flags, read as buildx
//! reads them (`util/buildflags/attests.go`, `CreateAttestations`) and checked as BuildKit
//! checks them (`frontend/attestations/parse.go`, `control/control.go`), before any daemon is
//! contacted.
//!
//! An `--attest` value is one CSV record of `key=value` fields: `type` names the attestation,
//! `disabled` (a Go bool) turns it off, and every other field is the attestation's parameter
//! (`mode`, `builder-id`, `generator`, the scanner's own `BUILDKIT_SCAN_*` settings). buildx
//! sends each attestation as the frontend attribute `attest:TYPE`, rewritten as
//! `type=TYPE[,disabled=true],KEY=VALUE…` with the keys sorted, and leaves a disabled one
//! out. `--provenance V` and `--sbom V` are `--attest type=provenance|sbom,…` placed after
//! the `--attest` values: a Go bool `B` means `disabled=!B`, anything else is more fields. Of
//! several values for one type the first wins.

use std::collections::BTreeMap;

use anyhow::{Context, bail};

use crate::cache::csv_fields;
use crate::go::parse_bool as parse_go_bool;

/// The attestation types BuildKit knows (`attestations.Validate`).
const KNOWN_TYPES: &[&str] = &["sbom", "provenance"];

/// The attestations a build asks for on its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Attestations {
    /// By type as given (`attest:TYPE`): the first value given for it, as buildx sends it, or
    /// `None` when that one is disabled.
    by_type: BTreeMap<String, Option<String>>,
}

impl Attestations {
    /// Reads `--attest` values, then `--provenance` and `--sbom`, as buildx does.
    pub(crate) fn parse(
        attests: &[String],
        provenance: Option<&str>,
        sbom: Option<&str>,
    ) -> anyhow::Result<Self> {
        let shorthands = [("provenance", provenance), ("sbom", sbom)];
        let values = attests.iter().cloned().chain(
            shorthands
                .into_iter()
                .filter_map(|(kind, v)| v.and_then(|v| canonical(kind, v))),
        );
        let mut by_type = BTreeMap::new();
        for value in values {
            let (kind, sent) = parse_one(&value)?;
            // buildx's `CreateAttestations`: the first value of a type wins.
            by_type.entry(kind).or_insert(sent);
        }
        Ok(Self { by_type })
    }

    /// The provenance asked for: `None` when not given (the default applies), `Some(None)`
    /// when disabled, else the `attest:provenance` value.
    pub(crate) fn provenance(&self) -> Option<Option<&str>> {
        self.by_type.get("provenance").map(Option::as_deref)
    }

    /// Whether any attestation is asked for and not disabled (buildx then needs a node whose
    /// image store keeps attestations).
    pub(crate) fn any_enabled(&self) -> bool {
        self.by_type.values().any(Option::is_some)
    }

    /// The frontend attributes of the enabled attestations other than `provenance` (whose
    /// value also depends on the outputs and the node): `attest:TYPE` → value.
    pub(crate) fn other_frontend_attrs(&self) -> Vec<(String, String)> {
        self.by_type
            .iter()
            .filter(|(kind, _)| kind.as_str() != "provenance")
            .filter_map(|(kind, v)| Some((format!("attest:{kind}"), v.clone()?)))
            .collect()
    }

    /// What BuildKit refuses in the attestation attributes it would be sent (these, and the
    /// `BUILDKIT_ATTEST_*` build arguments in `frontend_attrs`), refused here with the line
    /// buildx prints for the daemon's refusal: an unknown type, an empty SBOM generator.
    pub(crate) fn check(&self, frontend_attrs: &BTreeMap<String, String>) -> anyhow::Result<()> {
        let sent = self
            .by_type
            .iter()
            .filter_map(|(kind, v)| Some((kind.as_str(), v.as_deref()?)));
        let build_args = frontend_attrs
            .iter()
            .filter_map(|(k, v)| Some((k.strip_prefix("build-arg:BUILDKIT_ATTEST_")?, v.as_str())));
        // BuildKit lowercases the type; the last spelling of one type wins there.
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (kind, value) in sent.chain(build_args) {
            seen.insert(kind.to_lowercase(), value);
        }
        if let Some(unknown) = seen.keys().find(|k| !KNOWN_TYPES.contains(&k.as_str())) {
            bail!("failed to build: failed to solve: unknown attestation type {unknown:?}");
        }
        if let Some(sbom) = seen.get("sbom").filter(|v| !v.is_empty()) {
            let fields = csv_fields(sbom)
                .context("failed to build: failed to solve: failed to parse sbom")?;
            // The last `generator` field is BuildKit's (its attributes are a map).
            let generator = fields.iter().rev().find_map(|f| match f.split_once('=') {
                Some(("generator", v)) => Some(v),
                None if f == "generator" => Some(""),
                _ => None,
            });
            if generator == Some("") {
                bail!("failed to build: failed to solve: sbom generator cannot be empty");
            }
        }
        Ok(())
    }
}

/// buildx's `CanonicalizeAttest`: `--provenance`/`--sbom` as an `--attest` value (none for
/// an empty one).
fn canonical(kind: &str, value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    Some(match parse_go_bool(value) {
        Some(on) => format!("type={kind},disabled={}", !on),
        None => format!("type={kind},{value}"),
    })
}

/// One `--attest` value: its type and what buildx sends for it (`None`: disabled).
fn parse_one(value: &str) -> anyhow::Result<(String, Option<String>)> {
    if value.is_empty() {
        // csvvalue reads no record from an empty value.
        bail!("EOF");
    }
    let mut kind = None;
    let mut disabled = false;
    let mut attrs = BTreeMap::new();
    for field in csv_fields(value)? {
        let Some((key, v)) = field.split_once('=') else {
            bail!("invalid value {field}");
        };
        match key.trim().to_lowercase().as_str() {
            "type" => kind = Some(v.to_owned()),
            "disabled" => {
                disabled = parse_go_bool(v).with_context(|| {
                    format!(
                        "invalid value {field}: strconv.ParseBool: parsing {v:?}: invalid syntax"
                    )
                })?;
            }
            _ => {
                attrs.insert(key.to_owned(), v.to_owned());
            }
        }
    }
    let kind = kind
        .filter(|k| !k.is_empty())
        .context("attestation type not specified")?;
    if disabled {
        return Ok((kind, None));
    }
    let mut sent = vec![csv_pair("type", &kind)];
    // Go's sort.Strings: byte order, as BTreeMap's.
    sent.extend(attrs.iter().map(|(k, v)| csv_pair(k, v)));
    Ok((kind, Some(sent.join(","))))
}

/// `KEY=VALUE` as buildx's csvBuilder writes it: quoted as one CSV field when it holds a comma
/// or a quote, so BuildKit reads it back whole.
fn csv_pair(key: &str, value: &str) -> String {
    let pair = format!("{key}={value}");
    if pair.contains([',', '"']) {
        format!("\"{}\"", pair.replace('"', "\"\""))
    } else {
        pair
    }
}

#[cfg(test)]
mod tests {
    use super::Attestations;
    use std::collections::BTreeMap;

    fn parse(attests: &[&str], provenance: Option<&str>, sbom: Option<&str>) -> Attestations {
        let attests: Vec<String> = attests.iter().map(|s| s.to_string()).collect();
        Attestations::parse(&attests, provenance, sbom).expect("parsed")
    }

    fn error(attests: &[&str], provenance: Option<&str>, sbom: Option<&str>) -> String {
        let attests: Vec<String> = attests.iter().map(|s| s.to_string()).collect();
        let err = Attestations::parse(&attests, provenance, sbom).expect_err("refused");
        crate::one_line(err.as_ref())
    }

    fn sent(a: &Attestations) -> Vec<(String, Option<String>)> {
        a.by_type.clone().into_iter().collect()
    }

    fn on(kind: &str, v: &str) -> (String, Option<String>) {
        (kind.to_owned(), Some(v.to_owned()))
    }

    #[test]
    fn values_are_sent_as_buildx_rewrites_them() {
        // Observed with buildx 0.29 in the daemon's build records.
        assert_eq!(
            sent(&parse(
                &["mode=max,type=provenance,builder-id=x,disabled=false,Mode=Y"],
                None,
                None
            )),
            vec![on(
                "provenance",
                "type=provenance,Mode=Y,builder-id=x,mode=max"
            )]
        );
        assert_eq!(
            sent(&parse(&[" TYPE =provenance,mode=max"], None, None)),
            vec![on("provenance", "type=provenance,mode=max")]
        );
        assert_eq!(
            sent(&parse(&["type=sbom,\"FOO=a,b\",generator=r/x"], None, None)),
            vec![on("sbom", "type=sbom,\"FOO=a,b\",generator=r/x")]
        );
    }

    #[test]
    fn shorthands_are_attest_values_after_the_others() {
        assert_eq!(
            sent(&parse(&[], Some("true"), Some("1"))),
            vec![on("provenance", "type=provenance"), on("sbom", "type=sbom")]
        );
        assert_eq!(
            sent(&parse(
                &[],
                Some("mode=max,builder-id=b"),
                Some("generator=localhost:5000/s:e2e")
            )),
            vec![
                on("provenance", "type=provenance,builder-id=b,mode=max"),
                on("sbom", "type=sbom,generator=localhost:5000/s:e2e")
            ]
        );
        let off = parse(&[], Some("false"), Some("0"));
        assert_eq!(off.provenance(), Some(None));
        assert!(!off.any_enabled());
        assert!(off.other_frontend_attrs().is_empty());
        // An empty shorthand is not given at all.
        assert_eq!(parse(&[], Some(""), Some("")), Attestations::default());
        assert_eq!(parse(&[], None, None).provenance(), None);
    }

    #[test]
    fn the_first_value_of_a_type_wins() {
        let a = parse(&["type=provenance,mode=max"], Some("false"), None);
        assert_eq!(a.provenance(), Some(Some("type=provenance,mode=max")));
        let a = parse(
            &["type=sbom,disabled=true", "type=sbom,generator="],
            None,
            None,
        );
        assert_eq!(sent(&a), vec![("sbom".to_owned(), None)]);
        let a = parse(&["type=sbom"], None, Some("false"));
        assert_eq!(
            a.other_frontend_attrs(),
            vec![("attest:sbom".to_owned(), "type=sbom".to_owned())]
        );
    }

    #[test]
    fn malformed_values_get_buildx_s_messages() {
        assert_eq!(
            error(&["mode=max"], None, None),
            "attestation type not specified"
        );
        assert_eq!(error(&["type"], None, None), "invalid value type");
        assert_eq!(error(&[""], None, None), "EOF");
        assert_eq!(error(&[], None, Some("foo")), "invalid value foo");
        assert_eq!(
            error(&["type=sbom,disabled=maybe"], None, None),
            "invalid value disabled=maybe: strconv.ParseBool: parsing \"maybe\": invalid syntax"
        );
        assert!(error(&["type=sbom,\"x"], None, None).contains("extraneous or missing \""));
    }

    #[test]
    fn what_buildkit_refuses_is_refused_first() {
        let check = |a: &Attestations, attrs: &[(&str, &str)]| {
            let attrs: BTreeMap<String, String> = attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            a.check(&attrs).map_err(|e| crate::one_line(e.as_ref()))
        };
        assert_eq!(
            check(&parse(&["type=foo"], None, None), &[]),
            Err("failed to build: failed to solve: unknown attestation type \"foo\"".to_owned())
        );
        assert_eq!(
            check(
                &parse(&[], None, None),
                &[("build-arg:BUILDKIT_ATTEST_BAR", "")]
            ),
            Err("failed to build: failed to solve: unknown attestation type \"bar\"".to_owned())
        );
        assert_eq!(
            check(&parse(&["type=sbom,generator="], None, None), &[]),
            Err("failed to build: failed to solve: sbom generator cannot be empty".to_owned())
        );
        // BuildKit lowercases types; disabled ones are never sent.
        assert_eq!(
            check(&parse(&["type=SBOM", "type=Provenance"], None, None), &[]),
            Ok(())
        );
        assert_eq!(
            check(&parse(&["type=foo,disabled=true"], None, None), &[]),
            Ok(())
        );
    }
}
