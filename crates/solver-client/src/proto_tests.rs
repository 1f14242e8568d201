//! Properties of the generated protobuf code that other modules rely on.

use crate::proto::moby::buildkit::v1::BytesMessage;
use crate::proto::pb;
use prost::Message;
use std::collections::BTreeMap;

fn source_op(attrs: &[(&str, &str)]) -> pb::Op {
    pb::Op {
        inputs: vec![],
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: "local://context".into(),
            attrs: attrs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })),
        platform: None,
        constraints: Some(pb::WorkerConstraints::default()),
    }
}

#[test]
fn map_fields_are_btree_maps() {
    // A compile-time check as much as a runtime one: HashMap here would make LLB digests
    // change from run to run.
    let op = pb::SourceOp::default();
    let _: &BTreeMap<String, String> = &op.attrs;
    let def = pb::Definition::default();
    let _: &BTreeMap<String, pb::OpMetadata> = &def.metadata;
}

#[test]
fn an_op_encodes_identically_and_in_key_order() {
    let attrs = [
        ("local.unique", "u1"),
        ("local.sharedkeyhint", "context"),
        ("local.session", "s1"),
        ("local.followpaths", "[\"Dockerfile\"]"),
    ];
    let mut reversed = attrs;
    reversed.reverse();
    let a = source_op(&attrs).encode_to_vec();
    let b = source_op(&reversed).encode_to_vec();
    assert_eq!(a, b, "insertion order must not matter");
    assert_eq!(a, source_op(&attrs).encode_to_vec());
    // Map entries come out sorted by key, as Go's deterministic marshalling writes them.
    let text = String::from_utf8_lossy(&a);
    let positions: Vec<usize> = [
        "local.followpaths",
        "local.session",
        "local.sharedkeyhint",
        "local.unique",
    ]
    .iter()
    .map(|k| text.find(k).expect("key encoded"))
    .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
}

#[test]
fn op_wire_bytes_match_the_field_numbers() {
    // Op{inputs:[{digest:"d",index:1}], source:{identifier:"x"}, constraints:{}}
    let op = pb::Op {
        inputs: vec![pb::Input {
            digest: "d".into(),
            index: 1,
        }],
        op: Some(pb::op::Op::Source(pb::SourceOp {
            identifier: "x".into(),
            attrs: BTreeMap::new(),
        })),
        platform: None,
        constraints: Some(pb::WorkerConstraints::default()),
    };
    let expected: &[u8] = &[
        0x0a, 0x05, 0x0a, 0x01, b'd', 0x10, 0x01, // field 1: Input{1:"d", 2:1}
        0x1a, 0x03, 0x0a, 0x01, b'x', // field 3 (source): SourceOp{1:"x"}
        0x5a, 0x00, // field 11: empty WorkerConstraints
    ];
    assert_eq!(op.encode_to_vec(), expected);
}

#[test]
fn bytes_message_data_is_zero_copy_bytes() {
    let msg = BytesMessage {
        data: bytes::Bytes::from_static(b"tunnel"),
    };
    let decoded = BytesMessage::decode(msg.encode_to_vec().as_slice()).expect("decodes");
    let _: &bytes::Bytes = &decoded.data;
    assert_eq!(&decoded.data[..], b"tunnel");
}
