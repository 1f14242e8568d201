//! Hashes, `bcrypt`, `rsadecrypt` and UUIDs, as go-cty-funcs does them.

use base64::Engine as _;
use md5::Md5;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs8::DecodePrivateKey;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use super::{Failure, Outcome, number_arg, string, string_arg, whole_number};
use crate::value::Value;

fn hex_digest<D: Digest>(args: &[Value]) -> Outcome {
    let digest = D::digest(string_arg(args, 0)?.as_bytes());
    Ok(string(
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ))
}

/// `md5(str)`: hexadecimal MD5 of the string's UTF-8 bytes.
pub(super) fn md5(args: &[Value]) -> Outcome {
    hex_digest::<Md5>(args)
}

/// `sha1(str)`.
pub(super) fn sha1(args: &[Value]) -> Outcome {
    hex_digest::<Sha1>(args)
}

/// `sha256(str)`.
pub(super) fn sha256(args: &[Value]) -> Outcome {
    hex_digest::<Sha256>(args)
}

/// `sha512(str)`.
pub(super) fn sha512(args: &[Value]) -> Outcome {
    hex_digest::<Sha512>(args)
}

/// `bcrypt(str, cost?)`: a `$2a$` hash with a random salt, as Go's
/// `bcrypt.GenerateFromPassword` makes it (cost 10 by default and below 4).
pub(super) fn bcrypt(args: &[Value]) -> Outcome {
    let mut cost = 10i64;
    if args.len() > 1 {
        cost = whole_number(number_arg(args, 1)?).map_err(Failure::call)?;
    }
    if args.len() > 2 {
        return Err(Failure::call("bcrypt() takes no more than two arguments"));
    }
    let password = string_arg(args, 0)?;
    let failed = |why: String| Failure::call(format!("error occured generating password {why}"));
    if password.len() > 72 {
        return Err(failed(
            "bcrypt: password length exceeds 72 bytes".to_string(),
        ));
    }
    if cost < 4 {
        cost = 10;
    }
    if cost > 31 {
        return Err(failed(format!(
            "crypto/bcrypt: cost {cost} is outside allowed inclusive range 4..31"
        )));
    }
    let parts =
        ::bcrypt::hash_with_result(password, cost as u32).map_err(|e| failed(e.to_string()))?;
    Ok(string(parts.format_for_version(::bcrypt::Version::TwoA)))
}

/// The DER bytes of the first PEM block in `text` and whether its headers mark it
/// encrypted (Go's `pem.Decode`).
fn pem_block(text: &str) -> Option<(Vec<u8>, bool)> {
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let after = &rest[start + "-----BEGIN ".len()..];
        let type_end = after.find("-----")?;
        let label = &after[..type_end];
        let body = &after[type_end + 5..];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = body.find(&end_marker) else {
            rest = after;
            continue;
        };
        let content = &body[..end];
        let mut encrypted = false;
        let mut base64_text = String::new();
        let mut in_headers = true;
        for line in content.lines() {
            let line = line.trim();
            if in_headers && let Some((key, value)) = line.split_once(':') {
                if key.trim() == "Proc-Type" && value.trim() == "4,ENCRYPTED" {
                    encrypted = true;
                }
                continue;
            }
            in_headers = false;
            base64_text.push_str(line);
        }
        if let Ok(der) = base64::engine::general_purpose::STANDARD.decode(base64_text.as_bytes()) {
            return Some((der, encrypted));
        }
        rest = &body[end..];
    }
    None
}

/// `rsadecrypt(ciphertext, privatekey)`: base64 PKCS #1 v1.5 ciphertext decrypted with a
/// PEM PKCS #1 RSA key.
pub(super) fn rsa_decrypt(args: &[Value]) -> Outcome {
    let ciphertext = string_arg(args, 0)?;
    let key = string_arg(args, 1)?;
    let compact: String = ciphertext
        .chars()
        .filter(|c| *c != '\r' && *c != '\n')
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| {
            Failure::call(format!(
                "failed to decode input {}: cipher text must be base64-encoded",
                crate::types::go_quote(ciphertext)
            ))
        })?;
    let (der, encrypted) =
        pem_block(key).ok_or_else(|| Failure::call("failed to parse key: no key found"))?;
    if encrypted {
        return Err(Failure::call(
            "failed to parse key: password protected keys are not supported. Please decrypt the key prior to use",
        ));
    }
    let private_key = rsa::RsaPrivateKey::from_pkcs1_der(&der).map_err(|_| {
        if rsa::RsaPrivateKey::from_pkcs8_der(&der).is_ok() {
            Failure::call("x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)")
        } else {
            Failure::call("asn1: syntax error: truncated tag or length")
        }
    })?;
    let plain = private_key
        .decrypt(rsa::Pkcs1v15Encrypt, &bytes)
        .map_err(|_| Failure::call("crypto/rsa: decryption error"))?;
    Ok(string(String::from_utf8_lossy(&plain)))
}

/// `uuidv4()`: a random UUID.
pub(super) fn uuid_v4(_args: &[Value]) -> Outcome {
    Ok(string(uuid::Uuid::new_v4().to_string()))
}

fn hex_byte(pair: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(pair).ok()?;
    u8::from_str_radix(text, 16)
        .ok()
        .filter(|_| pair.iter().all(u8::is_ascii_hexdigit))
}

/// A UUID as Google's Go `uuid.Parse` reads it (plain, `{…}`, `urn:uuid:…`, or 32 hex
/// digits), with its errors.
fn parse_uuid(text: &str) -> Result<uuid::Uuid, String> {
    let bytes = text.as_bytes();
    let format = || "invalid UUID format".to_string();
    let body = match bytes.len() {
        36 => bytes,
        45 => {
            if !text
                .get(..9)
                .is_some_and(|p| p.eq_ignore_ascii_case("urn:uuid:"))
            {
                let prefix = String::from_utf8_lossy(&bytes[..9]).into_owned();
                return Err(format!(
                    "invalid urn prefix: {}",
                    crate::types::go_quote(&prefix)
                ));
            }
            &bytes[9..]
        }
        38 => &bytes[1..],
        32 => {
            let mut out = [0u8; 16];
            for (i, byte) in out.iter_mut().enumerate() {
                *byte = hex_byte(&bytes[i * 2..i * 2 + 2]).ok_or_else(format)?;
            }
            return Ok(uuid::Uuid::from_bytes(out));
        }
        n => return Err(format!("invalid UUID length: {n}")),
    };
    if body[8] != b'-' || body[13] != b'-' || body[18] != b'-' || body[23] != b'-' {
        return Err(format());
    }
    let mut out = [0u8; 16];
    let offsets = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    for (byte, offset) in out.iter_mut().zip(offsets) {
        *byte = hex_byte(&body[offset..offset + 2]).ok_or_else(format)?;
    }
    Ok(uuid::Uuid::from_bytes(out))
}

/// `uuidv5(namespace, name)`: a name-based UUID; the namespace is `dns`, `url`, `oid`,
/// `x500` or a UUID.
pub(super) fn uuid_v5(args: &[Value]) -> Outcome {
    let namespace_text = string_arg(args, 0)?;
    let namespace = match namespace_text {
        "dns" => uuid::Uuid::NAMESPACE_DNS,
        "url" => uuid::Uuid::NAMESPACE_URL,
        "oid" => uuid::Uuid::NAMESPACE_OID,
        "x500" => uuid::Uuid::NAMESPACE_X500,
        other => parse_uuid(other).map_err(|e| {
            Failure::call(format!(
                "uuidv5() doesn't support namespace {namespace_text} ({e})"
            ))
        })?,
    };
    Ok(string(
        uuid::Uuid::new_v5(&namespace, string_arg(args, 1)?.as_bytes()).to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, n, ok, s};
    use crate::value::Value;

    const KEY: &str = include_str!("testdata/rsa-test-key.pem");
    const KEY_PKCS8: &str = include_str!("testdata/rsa-test-key-pkcs8.pem");
    const CIPHERTEXT: &str = include_str!("testdata/rsa-test-ciphertext.b64");

    #[test]
    fn hashes_match_go() {
        assert_eq!(
            ok("md5", vec![s("hello")]),
            s("5d41402abc4b2a76b9719d911017c592")
        );
        assert_eq!(
            ok("sha1", vec![s("hello")]),
            s("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d")
        );
        assert_eq!(
            ok("sha256", vec![s("hello")]),
            s("2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        );
        assert_eq!(
            ok("sha512", vec![s("")]),
            s(
                "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"
            )
        );
    }

    #[test]
    fn bcrypt_hashes_verify_and_costs_are_checked() {
        let Value::String(hash) = ok("bcrypt", vec![s("a")]) else {
            panic!("not a string")
        };
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(::bcrypt::verify("a", &hash).unwrap_or(false));
        let Value::String(hash) = ok("bcrypt", vec![s("a"), n(3.0)]) else {
            panic!("not a string")
        };
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        let Value::String(hash) = ok("bcrypt", vec![s("a"), n(4.0)]) else {
            panic!("not a string")
        };
        assert!(hash.starts_with("$2a$04$"), "{hash}");
        let call = |m: &str| format!("Call to function \"bcrypt\" failed: {m}.");
        assert_eq!(
            fails("bcrypt", vec![s("a"), n(32.0)]),
            call(
                "error occured generating password crypto/bcrypt: cost 32 is outside allowed inclusive range 4..31"
            )
        );
        assert_eq!(
            fails("bcrypt", vec![s("a"), n(4.0), n(5.0)]),
            call("bcrypt() takes no more than two arguments")
        );
        assert_eq!(
            fails("bcrypt", vec![s("a"), n(1.5)]),
            call(
                "value must be a whole number, between -9223372036854775808 and 9223372036854775807"
            )
        );
        assert_eq!(
            fails("bcrypt", vec![s(&"x".repeat(73))]),
            call("error occured generating password bcrypt: password length exceeds 72 bytes")
        );
    }

    #[test]
    fn rsadecrypt_matches_go() {
        assert_eq!(
            ok("rsadecrypt", vec![s(CIPHERTEXT), s(KEY)]),
            s("bake secret")
        );
        let call = |m: &str| format!("Call to function \"rsadecrypt\" failed: {m}.");
        assert_eq!(
            fails("rsadecrypt", vec![s("x"), s(KEY)]),
            call("failed to decode input \"x\": cipher text must be base64-encoded")
        );
        assert_eq!(
            fails("rsadecrypt", vec![s(CIPHERTEXT), s("bad key")]),
            call("failed to parse key: no key found")
        );
        assert_eq!(
            fails("rsadecrypt", vec![s(CIPHERTEXT), s(KEY_PKCS8)]),
            call(
                "x509: failed to parse private key (use ParsePKCS8PrivateKey instead for this key format)"
            )
        );
        assert_eq!(
            fails("rsadecrypt", vec![s("eA=="), s(KEY)]),
            call("crypto/rsa: decryption error")
        );
    }

    #[test]
    fn uuids_match_google_uuid() {
        let Value::String(v4) = ok("uuidv4", vec![]) else {
            panic!("not a string")
        };
        assert_eq!(v4.len(), 36);
        assert_eq!(&v4[14..15], "4");
        let want = s("cfbff0d1-9375-5685-968c-48ce8b15ae17");
        for namespace in [
            "dns",
            "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "{6ba7b810-9dad-11d1-80b4-00c04fd430c8}",
            "urn:uuid:6ba7b810-9dad-11d1-80b4-00c04fd430c8",
            "6ba7b8109dad11d180b400c04fd430c8",
        ] {
            assert_eq!(
                ok("uuidv5", vec![s(namespace), s("example.com")]),
                want,
                "{namespace}"
            );
        }
        assert_eq!(
            ok("uuidv5", vec![s("url"), s("x")]),
            s("4cd605e7-afa2-5360-b5b9-c5e9fb5c76f4")
        );
        assert_eq!(
            ok("uuidv5", vec![s("oid"), s("x")]),
            s("8558d34a-d3c6-5881-a6e3-bf8f3e6110ea")
        );
        assert_eq!(
            ok("uuidv5", vec![s("x500"), s("x")]),
            s("456e503f-63e3-56c1-b807-4cd79bf8cc22")
        );
        assert_eq!(
            fails("uuidv5", vec![s("nope"), s("x")]),
            "Call to function \"uuidv5\" failed: uuidv5() doesn't support namespace nope (invalid UUID length: 4)."
        );
        assert_eq!(
            fails(
                "uuidv5",
                vec![s("6ba7b810-9dad-11d1-80b4-00c04fd430cg"), s("x")]
            ),
            "Call to function \"uuidv5\" failed: uuidv5() doesn't support namespace 6ba7b810-9dad-11d1-80b4-00c04fd430cg (invalid UUID format)."
        );
    }
}
