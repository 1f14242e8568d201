//! JSON written as Go's `encoding/json` writes it (compact; `<`, `>`, `&`, U+2028 and U+2029
//! escaped), and the OCI descriptor with Go's field order, so that what brix writes into a
//! cache reads like what BuildKit writes.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::nullable;
use crate::descriptor::{Descriptor, Platform};

/// Serializes `value` as Go's `json.Marshal` would.
pub(super) fn to_go_json<T: Serialize>(what: &str, value: &T) -> Result<Vec<u8>, crate::Error> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value
        .serialize(&mut serializer)
        .map_err(|e| crate::Error::json(what, e))?;
    Ok(out)
}

/// serde_json's compact formatter plus Go's HTML-safe string escapes.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            let escaped = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..at])?;
            writer.write_all(escaped.as_bytes())?;
            start = at + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// An OCI descriptor in image-spec's field order (`mediaType`, `digest`, `size`, `urls`,
/// `annotations`, `data`, `platform`, `artifactType`), keeping any other field it was read
/// with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct OciDescriptor {
    #[serde(default, deserialize_with = "nullable")]
    pub media_type: String,
    #[serde(default, deserialize_with = "nullable")]
    pub digest: String,
    #[serde(default, deserialize_with = "nullable")]
    pub size: u64,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub urls: Vec<String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: BTreeMap<String, String>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(
        default,
        deserialize_with = "nullable",
        skip_serializing_if = "String::is_empty"
    )]
    pub artifact_type: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl OciDescriptor {
    /// A plain descriptor of `bytes`.
    pub fn of_bytes(media_type: &str, bytes: &[u8]) -> Self {
        OciDescriptor::from(&Descriptor::of_bytes(media_type, bytes))
    }

    /// The crate's descriptor type (fields it has no room for, such as `data`, are dropped).
    pub fn to_descriptor(&self) -> Descriptor {
        Descriptor {
            media_type: self.media_type.clone(),
            digest: self.digest.clone(),
            size: self.size,
            urls: self.urls.clone(),
            annotations: self.annotations.clone(),
            platform: self.platform.clone(),
            artifact_type: Some(self.artifact_type.clone()).filter(|t| !t.is_empty()),
        }
    }
}

impl From<&Descriptor> for OciDescriptor {
    fn from(d: &Descriptor) -> Self {
        OciDescriptor {
            media_type: d.media_type.clone(),
            digest: d.digest.clone(),
            size: d.size,
            urls: d.urls.clone(),
            annotations: d.annotations.clone(),
            data: String::new(),
            platform: d.platform.clone(),
            artifact_type: d.artifact_type.clone().unwrap_or_default(),
            extra: Map::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_go_escapes_them() {
        let value = serde_json::json!({"k": "a<b>&c\u{2028}d\u{2029}\n\u{1}é"});
        let out = String::from_utf8(to_go_json("test", &value).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"k":"a\u003cb\u003e\u0026c\u2028d\u2029\n\u0001é"}"#
        );
    }

    #[test]
    fn descriptors_keep_go_field_order_and_unknown_fields() {
        let json = r#"{"zzz":1,"annotations":{"b":"2","a":"1"},"size":3,"digest":"sha256:x","mediaType":"m","urls":null}"#;
        let d: OciDescriptor = serde_json::from_str(json).unwrap();
        let out = String::from_utf8(to_go_json("test", &d).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"mediaType":"m","digest":"sha256:x","size":3,"annotations":{"a":"1","b":"2"},"zzz":1}"#
        );
    }
}
