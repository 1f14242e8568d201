//! Whether a file holds a private key an agent can take without a passphrase: the checks
//! BuildKit's provider makes when it loads a key file (x/crypto/ssh's `ParseRawPrivateKey`),
//! with its messages, up to decoding the key material, which `ssh-add` does.
//!
//! A key is the first PEM block in the file; `Proc-Type: 4,ENCRYPTED` means a passphrase;
//! the type must be one x/crypto knows; an `OPENSSH PRIVATE KEY` must name no cipher and no
//! KDF (its header is plain even when the key is encrypted).

use base64::Engine as _;

/// The type of the OpenSSH private key format.
const OPENSSH_TYPE: &str = "OPENSSH PRIVATE KEY";
/// PEM types of the other private key formats x/crypto reads.
const PEM_KEY_TYPES: [&str; 4] = [
    "RSA PRIVATE KEY",
    "PRIVATE KEY",
    "EC PRIVATE KEY",
    "DSA PRIVATE KEY",
];
/// The start of an OpenSSH private key blob.
const OPENSSH_MAGIC: &[u8] = b"openssh-key-v1\0";

/// Why a file is not a private key an agent can hold, in x/crypto/ssh's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyProblem {
    /// No PEM block (a public key, or not a key at all).
    #[error("ssh: no key found")]
    NoKey,
    /// The key is encrypted; buildx asks for no passphrase and neither does brix.
    #[error("ssh: this private key is passphrase protected")]
    PassphraseProtected,
    /// A PEM block of a type that is not a private key.
    #[error("ssh: unsupported key type {0:?}")]
    UnsupportedType(String),
    /// An `OPENSSH PRIVATE KEY` block without the format's magic.
    #[error("ssh: invalid openssh private key format")]
    NotOpenSsh,
    /// An OpenSSH key whose header is cut short.
    #[error("ssh: malformed OpenSSH key")]
    MalformedOpenSsh,
    /// An OpenSSH key file with several keys.
    #[error("ssh: multi-key files are not supported")]
    SeveralKeys,
    /// An OpenSSH key with KDF options but no KDF.
    #[error("ssh: invalid openssh private key")]
    InvalidOpenSsh,
}

/// Checks that `data` holds a private key an agent can take as it is.
pub(super) fn check_private_key(data: &[u8]) -> Result<(), KeyProblem> {
    let block = first_pem_block(data).ok_or(KeyProblem::NoKey)?;
    if block
        .header("Proc-Type")
        .is_some_and(|v| v.contains("ENCRYPTED"))
    {
        return Err(KeyProblem::PassphraseProtected);
    }
    if block.kind == OPENSSH_TYPE {
        check_openssh_header(&block.bytes)
    } else if PEM_KEY_TYPES.contains(&block.kind.as_str()) {
        Ok(())
    } else {
        Err(KeyProblem::UnsupportedType(block.kind))
    }
}

/// The OpenSSH format's header (`PROTOCOL.key`): magic, cipher name, KDF name, KDF options,
/// number of keys, public key, private block.
fn check_openssh_header(blob: &[u8]) -> Result<(), KeyProblem> {
    let mut rest = blob
        .strip_prefix(OPENSSH_MAGIC)
        .ok_or(KeyProblem::NotOpenSsh)?;
    let cipher = take_string(&mut rest)?;
    let kdf = take_string(&mut rest)?;
    let kdf_options = take_string(&mut rest)?;
    let count = take_u32(&mut rest)?;
    let _public_key = take_string(&mut rest)?;
    let _private_block = take_string(&mut rest)?;
    if count != 1 {
        return Err(KeyProblem::SeveralKeys);
    }
    if cipher != b"none" || kdf != b"none" {
        return Err(KeyProblem::PassphraseProtected);
    }
    if !kdf_options.is_empty() {
        return Err(KeyProblem::InvalidOpenSsh);
    }
    Ok(())
}

fn take_u32(rest: &mut &[u8]) -> Result<u32, KeyProblem> {
    let (head, tail) = rest
        .split_first_chunk::<4>()
        .ok_or(KeyProblem::MalformedOpenSsh)?;
    *rest = tail;
    Ok(u32::from_be_bytes(*head))
}

fn take_string<'a>(rest: &mut &'a [u8]) -> Result<&'a [u8], KeyProblem> {
    let len = usize::try_from(take_u32(rest)?).map_err(|_| KeyProblem::MalformedOpenSsh)?;
    if rest.len() < len {
        return Err(KeyProblem::MalformedOpenSsh);
    }
    let (value, tail) = rest.split_at(len);
    *rest = tail;
    Ok(value)
}

/// One PEM block: `-----BEGIN TYPE-----`, optional `Key: value` headers, base64, and
/// `-----END TYPE-----`.
#[derive(Debug)]
struct PemBlock {
    kind: String,
    headers: Vec<(String, String)>,
    bytes: Vec<u8>,
}

impl PemBlock {
    /// A header's value; the last one wins, as in Go's header map.
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The first well-formed PEM block in `data` (a BEGIN line with its headers, a body that
/// is base64 and the matching END line); malformed candidates are skipped, as Go's
/// `pem.Decode` skips them.
fn first_pem_block(data: &[u8]) -> Option<PemBlock> {
    let lines: Vec<&[u8]> = data.split(|&b| b == b'\n').map(trim_line_end).collect();
    (0..lines.len()).find_map(|start| block_at(&lines, start))
}

/// The block whose BEGIN line is `lines[start]`, if it is one.
fn block_at(lines: &[&[u8]], start: usize) -> Option<PemBlock> {
    let kind = lines[start]
        .strip_prefix(b"-----BEGIN ")?
        .strip_suffix(b"-----")?;
    let kind = std::str::from_utf8(kind).ok()?;
    let mut at = start + 1;
    let mut headers = Vec::new();
    while let Some(line) = lines.get(at) {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            break;
        };
        let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_owned();
        headers.push((text(&line[..colon]), text(&line[colon + 1..])));
        at += 1;
    }
    let end_line = format!("-----END {kind}-----");
    let end = at
        + lines[at..]
            .iter()
            .position(|l| l.starts_with(b"-----END "))?;
    if lines[end] != end_line.as_bytes() {
        return None;
    }
    let body: Vec<u8> = lines[at..end]
        .iter()
        .flat_map(|l| l.iter().copied())
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\r'))
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(body)
        .ok()?;
    Some(PemBlock {
        kind: kind.to_owned(),
        headers,
        bytes,
    })
}

/// A line without its `\r` and trailing blanks.
fn trim_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let keep = line
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(0, |i| i + 1);
    &line[..keep]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(kind: &str, headers: &str, body: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        format!("-----BEGIN {kind}-----\n{headers}{b64}\n-----END {kind}-----\n").into_bytes()
    }

    fn openssh_blob(cipher: &str, kdf: &str, kdf_options: &str, count: u32) -> Vec<u8> {
        let mut blob = OPENSSH_MAGIC.to_vec();
        for s in [cipher, kdf, kdf_options] {
            blob.extend((s.len() as u32).to_be_bytes());
            blob.extend(s.as_bytes());
        }
        blob.extend(count.to_be_bytes());
        for s in ["pub", "priv"] {
            blob.extend((s.len() as u32).to_be_bytes());
            blob.extend(s.as_bytes());
        }
        blob
    }

    #[test]
    fn openssh_keys_are_taken_unless_encrypted() {
        let plain = pem(OPENSSH_TYPE, "", &openssh_blob("none", "none", "", 1));
        assert_eq!(check_private_key(&plain), Ok(()));
        let encrypted = pem(
            OPENSSH_TYPE,
            "",
            &openssh_blob("aes256-ctr", "bcrypt", "salt", 1),
        );
        assert_eq!(
            check_private_key(&encrypted),
            Err(KeyProblem::PassphraseProtected)
        );
        let two = pem(OPENSSH_TYPE, "", &openssh_blob("none", "none", "", 2));
        assert_eq!(check_private_key(&two), Err(KeyProblem::SeveralKeys));
        let short = pem(OPENSSH_TYPE, "", OPENSSH_MAGIC);
        assert_eq!(check_private_key(&short), Err(KeyProblem::MalformedOpenSsh));
        let other = pem(OPENSSH_TYPE, "", b"not the magic");
        assert_eq!(check_private_key(&other), Err(KeyProblem::NotOpenSsh));
    }

    #[test]
    fn pem_keys_are_taken_unless_encrypted_or_not_keys() {
        assert_eq!(
            check_private_key(&pem("RSA PRIVATE KEY", "", b"der")),
            Ok(())
        );
        let encrypted = pem(
            "RSA PRIVATE KEY",
            "Proc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\n",
            b"der",
        );
        assert_eq!(
            check_private_key(&encrypted),
            Err(KeyProblem::PassphraseProtected)
        );
        assert_eq!(
            check_private_key(&pem("CERTIFICATE", "", b"der")),
            Err(KeyProblem::UnsupportedType("CERTIFICATE".into()))
        );
        assert_eq!(
            KeyProblem::UnsupportedType("CERTIFICATE".into()).to_string(),
            r#"ssh: unsupported key type "CERTIFICATE""#
        );
    }

    #[test]
    fn files_without_a_pem_block_hold_no_key() {
        for data in [
            &b""[..],
            b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHnO me@host\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n",
            b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
        ] {
            assert_eq!(check_private_key(data), Err(KeyProblem::NoKey), "{data:?}");
        }
    }

    #[test]
    fn text_around_the_block_and_crlf_line_ends_are_fine() {
        let mut data = b"a comment\r\n".to_vec();
        let block = pem(OPENSSH_TYPE, "", &openssh_blob("none", "none", "", 1));
        data.extend(
            String::from_utf8_lossy(&block)
                .replace('\n', "\r\n")
                .bytes(),
        );
        data.extend(b"trailing\n");
        assert_eq!(check_private_key(&data), Ok(()));
    }
}
