//! The two facts about a certificate that rustls does not hand out and the "leaf in the root
//! pool" rule needs (see [`super::tls`]): its validity period and its extended key usages.
//! A few lines of DER reading, nothing more; everything else (names, signatures) goes
//! through rustls and webpki.

/// What [`read`] takes from a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertificateFacts {
    /// `notBefore`, seconds since the Unix epoch.
    pub not_before: i64,
    /// `notAfter`, seconds since the Unix epoch.
    pub not_after: i64,
    /// Whether the certificate may serve TLS servers: it has no extended key usage
    /// extension, or one listing `serverAuth` or `anyExtendedKeyUsage` (as Go checks it).
    pub server_auth: bool,
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const OID: u8 = 0x06;
const BOOLEAN: u8 = 0x01;
const OCTET_STRING: u8 = 0x04;
const VERSION: u8 = 0xa0;
const EXTENSIONS: u8 = 0xa3;
/// 2.5.29.37, extKeyUsage.
const EXT_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25];
/// 1.3.6.1.5.5.7.3.1, id-kp-serverAuth.
const SERVER_AUTH: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x01];
/// 2.5.29.37.0, anyExtendedKeyUsage.
const ANY_EXTENDED_KEY_USAGE: &[u8] = &[0x55, 0x1d, 0x25, 0x00];

/// Reads the validity and the extended key usages of a DER certificate; `None` when it is
/// not one.
pub(crate) fn read(der: &[u8]) -> Option<CertificateFacts> {
    let (tag, certificate, _) = tlv(der)?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, mut tbs, _) = tlv(certificate)?;
    if tag != SEQUENCE {
        return None;
    }
    let mut next = || -> Option<(u8, &[u8])> {
        let (tag, value, rest) = tlv(tbs)?;
        tbs = rest;
        Some((tag, value))
    };
    let (first, _) = next()?;
    if first == VERSION {
        // What follows the version is the serial number.
        next()?;
    }
    // signature, issuer.
    next()?;
    next()?;
    let (tag, validity) = next()?;
    if tag != SEQUENCE {
        return None;
    }
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    let not_after = time(tag, not_after)?;
    // subject, subjectPublicKeyInfo, then the optional fields up to the extensions.
    next()?;
    next()?;
    let mut server_auth = true;
    while let Some((tag, value)) = next() {
        if tag == EXTENSIONS
            && let Some(usages) = extended_key_usages(value)?
        {
            server_auth = usages
                .iter()
                .any(|oid| *oid == SERVER_AUTH || *oid == ANY_EXTENDED_KEY_USAGE);
        }
    }
    Some(CertificateFacts {
        not_before,
        not_after,
        server_auth,
    })
}

/// The OIDs of the extended key usage extension among `extensions` (`[3] EXPLICIT
/// SEQUENCE OF Extension`), `Some(None)` when there is none, `None` when malformed.
fn extended_key_usages(extensions: &[u8]) -> Option<Option<Vec<&[u8]>>> {
    let (tag, mut list, _) = tlv(extensions)?;
    if tag != SEQUENCE {
        return None;
    }
    while !list.is_empty() {
        let (tag, extension, rest) = tlv(list)?;
        list = rest;
        if tag != SEQUENCE {
            return None;
        }
        let (tag, id, mut fields) = tlv(extension)?;
        if tag != OID || id != EXT_KEY_USAGE {
            continue;
        }
        let (mut tag, mut value, rest) = tlv(fields)?;
        if tag == BOOLEAN {
            fields = rest;
            (tag, value, _) = tlv(fields)?;
        }
        if tag != OCTET_STRING {
            return None;
        }
        let (tag, mut oids, _) = tlv(value)?;
        if tag != SEQUENCE {
            return None;
        }
        let mut out = Vec::new();
        while !oids.is_empty() {
            let (tag, oid, rest) = tlv(oids)?;
            if tag != OID {
                return None;
            }
            out.push(oid);
            oids = rest;
        }
        return Some(Some(out));
    }
    Some(None)
}

/// One DER element: its tag, its content and what follows it.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (length, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return None;
        }
        let (bytes, rest) = rest.split_at(count);
        let length = bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (length, rest)
    };
    if rest.len() < length {
        return None;
    }
    let (value, rest) = rest.split_at(length);
    Some((tag, value, rest))
}

/// A UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049 as RFC 5280 reads them) or GeneralizedTime
/// (`YYYYMMDDHHMMSSZ`) as seconds since the Unix epoch.
fn time(tag: u8, value: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(value).ok()?;
    let digits = text.strip_suffix('Z')?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> { digits.get(range)?.parse().ok() };
    let (year, rest) = match (tag, digits.len()) {
        (UTC_TIME, 12) => {
            let yy = number(0..2)?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, 2)
        }
        (GENERALIZED_TIME, 14) => (number(0..4)?, 4),
        _ => return None,
    };
    let month = number(rest..rest + 2)?;
    let day = number(rest + 2..rest + 4)?;
    let hour = number(rest + 4..rest + 6)?;
    let minute = number(rest + 6..rest + 8)?;
    let second = number(rest + 8..rest + 10)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// `YYYY-MM-DD` of a time in seconds since the Unix epoch (UTC), for messages.
pub(crate) fn date(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2);
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm,
/// the inverse of [`days_from_civil`]).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    fn der(pem: &str) -> Vec<u8> {
        CertificateDer::from_pem_slice(pem.as_bytes())
            .map(|c| c.as_ref().to_vec())
            .unwrap_or_else(|e| panic!("test certificate: {e}"))
    }

    #[test]
    fn dates_are_counted_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(time(UTC_TIME, b"700101000000Z"), Some(0));
        assert_eq!(time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(
            time(GENERALIZED_TIME, b"21250101000000Z"),
            Some(4_891_363_200)
        );
        assert_eq!(time(UTC_TIME, b"700101000000"), None);
        assert_eq!(date(0), "1970-01-01");
        assert_eq!(date(4_891_363_200), "2125-01-01");
        assert_eq!(date(951_782_400), "2000-02-29");
        assert_eq!(time(UTC_TIME, b"701301000000Z"), None);
    }

    #[test]
    fn a_self_signed_registry_certificate_is_read() {
        let facts = read(&der(include_str!("testdata/self-signed.crt"))).expect("facts");
        assert_eq!(facts.not_before, 1_796_214_894, "2026-12-02T12:34:54Z");
        assert!(facts.not_after > 4_000_000_000);
        assert!(facts.server_auth, "no extended key usage: any use");
    }

    #[test]
    fn a_client_only_certificate_is_not_for_servers() {
        let facts = read(&der(include_str!("testdata/client-only.crt"))).expect("facts");
        assert!(!facts.server_auth);
    }

    #[test]
    fn garbage_is_not_a_certificate() {
        assert_eq!(read(b""), None);
        assert_eq!(read(&[0x30, 0x05, 0x01]), None);
        assert_eq!(read(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }
}
