//! BuildKit's value units: disk sizes ([`DiskSpace`]) and durations ([`Duration`]), plus the
//! Go formatting helpers buildx uses to print them (`19.53KiB`, `48h0m0s`).
//!
//! The parsers follow BuildKit's `cmd/buildkitd/config/gcpolicy.go`: a disk size is `"N%"` or
//! anything docker/go-units `RAMInBytes` accepts (binary units: `"512MB"` is 512 MiB, and a bare
//! number is bytes); a duration is a Go duration string (`"48h"`) or an integer of seconds.

use std::fmt;

/// Why a disk-size or duration value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    /// The text is not a size BuildKit understands.
    #[error(
        "invalid disk size {0:?}: use an integer number of bytes, a size with a binary unit such as \"20GB\" (= 20 GiB), or a percentage such as \"10%\""
    )]
    InvalidSize(String),
    /// A size or percentage below zero.
    #[error("negative disk size {0:?}: sizes must be zero or more")]
    NegativeSize(String),
    /// A percentage above 100.
    #[error("percentage {0:?} is over 100%: use a value between 0% and 100%")]
    PercentOver100(String),
    /// The text is not a Go duration nor an integer of seconds.
    #[error(
        "invalid duration {0:?}: use a Go duration such as \"48h\" or \"90m\", or an integer number of seconds"
    )]
    InvalidDuration(String),
    /// A negative duration.
    #[error("negative duration {0:?}: durations must be zero or more")]
    NegativeDuration(String),
}

/// How a value was spelled in the TOML file: as a bare integer or as a quoted string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Spelling {
    /// A TOML integer such as `20000` (BuildKit reads its raw text).
    Integer,
    /// A TOML string such as `"20GB"`.
    String,
}

/// A disk-space value (`gckeepstorage`, `reservedSpace`, `maxUsedSpace`, `minFreeSpace`,
/// `keepBytes`) with its original spelling, so lints can quote it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskSpace {
    raw: String,
    spelling: Spelling,
    bytes: i64,
    percentage: i64,
}

impl DiskSpace {
    /// Parses `text` as BuildKit's `DiskSpace.UnmarshalText` does, refusing negative values
    /// and percentages over 100 (BuildKit accepts them but they make no sense).
    pub fn parse(text: &str, spelling: Spelling) -> Result<Self, UnitError> {
        let stripped = strip_quotes(text);
        let mut value = DiskSpace {
            raw: text.to_string(),
            spelling,
            bytes: 0,
            percentage: 0,
        };
        if stripped.is_empty() {
            return Ok(value);
        }
        if let Some(number) = stripped.strip_suffix('%') {
            let pct: i64 =
                go_parse_int(number).ok_or_else(|| UnitError::InvalidSize(text.into()))?;
            if pct < 0 {
                return Err(UnitError::NegativeSize(text.into()));
            }
            if pct > 100 {
                return Err(UnitError::PercentOver100(text.into()));
            }
            value.percentage = pct;
            return Ok(value);
        }
        if stripped.trim_start().starts_with('-') {
            return Err(UnitError::NegativeSize(text.into()));
        }
        value.bytes = ram_in_bytes(stripped).ok_or_else(|| UnitError::InvalidSize(text.into()))?;
        Ok(value)
    }

    /// A value of `bytes` bytes, spelled as a TOML integer.
    pub fn from_bytes(bytes: i64) -> Self {
        DiskSpace {
            raw: bytes.to_string(),
            spelling: Spelling::Integer,
            bytes,
            percentage: 0,
        }
    }

    /// The text as written (without TOML quotes).
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether the value was a TOML integer or a string.
    pub fn spelling(&self) -> Spelling {
        self.spelling
    }

    /// Absolute size in bytes, or 0 when the value is a percentage or empty.
    pub fn bytes(&self) -> i64 {
        self.bytes
    }

    /// Percentage of the disk, or 0 when the value is absolute or empty.
    pub fn percentage(&self) -> i64 {
        self.percentage
    }

    /// True when BuildKit treats this value as "not set" (zero bytes and zero percent).
    pub fn is_unset(&self) -> bool {
        self.bytes == 0 && self.percentage == 0
    }

    /// Resolves to bytes for a disk of `disk_total` bytes (`None` = unknown), exactly as
    /// BuildKit's `DiskSpace.AsBytes`: percentages round up to whole GiB-derived GB as
    /// `(total*pct/100 / 2^30 + 1) * 1e9`, and an unknown disk gives 2 GB.
    pub fn as_bytes(&self, disk_total: Option<u64>) -> i64 {
        resolve_bytes(self.bytes, self.percentage, disk_total)
    }
}

/// BuildKit's fallback when the disk size is unknown (`defaultCap`, 2 GB).
pub const DEFAULT_CAP_BYTES: i64 = 2_000_000_000;

pub(crate) fn resolve_bytes(bytes: i64, percentage: i64, disk_total: Option<u64>) -> i64 {
    if bytes != 0 {
        return bytes;
    }
    if percentage == 0 {
        return 0;
    }
    let total = match disk_total {
        Some(t) if t > 0 => i64::try_from(t).unwrap_or(i64::MAX),
        _ => return DEFAULT_CAP_BYTES,
    };
    // Go's int64 arithmetic; saturate instead of wrapping on absurd disk sizes.
    let avail = total.saturating_mul(percentage) / 100;
    (avail / (1 << 30) + 1).saturating_mul(1_000_000_000)
}

impl fmt::Display for DiskSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.spelling {
            Spelling::Integer => write!(f, "{}", self.raw),
            Spelling::String => write!(f, "{:?}", self.raw),
        }
    }
}

/// A duration value (`keepDuration`, `maxAge`, `platformsCacheMaxAge`) with its spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duration {
    raw: String,
    spelling: Spelling,
    nanos: i64,
}

impl Duration {
    /// Parses `text` as BuildKit's `Duration.UnmarshalText`: a Go duration, else an integer
    /// of seconds. Negative durations are refused.
    pub fn parse(text: &str, spelling: Spelling) -> Result<Self, UnitError> {
        let stripped = strip_quotes(text);
        let mut value = Duration {
            raw: text.to_string(),
            spelling,
            nanos: 0,
        };
        if stripped.is_empty() {
            return Ok(value);
        }
        let nanos = match parse_go_duration(stripped) {
            Some(n) => n,
            None => match go_parse_int(stripped) {
                Some(secs) => secs
                    .checked_mul(1_000_000_000)
                    .ok_or_else(|| UnitError::InvalidDuration(text.into()))?,
                None => return Err(UnitError::InvalidDuration(text.into())),
            },
        };
        if nanos < 0 {
            return Err(UnitError::NegativeDuration(text.into()));
        }
        value.nanos = nanos;
        Ok(value)
    }

    /// A duration of `secs` seconds spelled as a TOML integer.
    pub fn from_secs(secs: i64) -> Self {
        Duration {
            raw: secs.to_string(),
            spelling: Spelling::Integer,
            nanos: secs.saturating_mul(1_000_000_000),
        }
    }

    /// The text as written.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Whether the value was a TOML integer or a string.
    pub fn spelling(&self) -> Spelling {
        self.spelling
    }

    /// The duration in nanoseconds (Go's `time.Duration`).
    pub fn nanos(&self) -> i64 {
        self.nanos
    }
}

fn strip_quotes(s: &str) -> &str {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Go's `strconv.ParseInt(s, 10, 64)`: optional sign, ASCII digits only.
fn go_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// docker/go-units `RAMInBytes`: a decimal number, an optional space, and an optional binary
/// suffix `k|m|g|t|p` followed by optional `b` or `ib` (case-insensitive), or a lone `b`.
/// Returns `None` where go-units returns an error.
pub fn ram_in_bytes(s: &str) -> Option<i64> {
    let sep = s.rfind(|c: char| c.is_ascii_digit() || c == '.' || c == ' ')?;
    let (num, sfx) = if s.as_bytes()[sep] == b' ' {
        (&s[..sep], &s[sep + 1..])
    } else {
        (&s[..=sep], &s[sep + 1..])
    };
    let size = parse_go_float(num)?;
    if size < 0.0 {
        return None;
    }
    if sfx.is_empty() {
        return Some(size as i64);
    }
    if sfx.len() > 3 {
        return None;
    }
    let sfx = sfx.to_ascii_lowercase();
    let bytes = sfx.as_bytes();
    if bytes[0] == b'b' {
        return (bytes.len() == 1).then_some(size as i64);
    }
    let mul: f64 = match bytes[0] {
        b'k' => 1024.0,
        b'm' => 1024.0 * 1024.0,
        b'g' => 1024.0 * 1024.0 * 1024.0,
        b't' => 1024.0f64.powi(4),
        b'p' => 1024.0f64.powi(5),
        _ => return None,
    };
    match (bytes.len(), &sfx[1..]) {
        (1, _) | (2, "b") | (3, "ib") => Some((size * mul) as i64),
        _ => None,
    }
}

/// A subset of Go's `strconv.ParseFloat` that matches it on decimal input (Rust also accepts
/// `inf`/`nan`, which Go spells differently, so those are refused here).
fn parse_go_float(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    if body.is_empty()
        || !body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
    {
        return None;
    }
    s.parse().ok()
}

/// Go's `time.ParseDuration`, returning nanoseconds, or `None` on any error Go reports.
pub fn parse_go_duration(orig: &str) -> Option<i64> {
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes()[0];
        if !(b == b'.' || b.is_ascii_digit()) {
            return None;
        }
        // Integer part.
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let pre = int_len > 0;
        let mut v: u64 = 0;
        for d in s[..int_len].bytes() {
            if v > LIMIT / 10 {
                return None;
            }
            v = v * 10 + u64::from(d - b'0');
            if v > LIMIT {
                return None;
            }
        }
        s = &s[int_len..];
        // Fraction part: digits beyond precision are dropped, as in Go.
        let mut frac: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            post = frac_len > 0;
            let mut overflow = false;
            for d in s[..frac_len].bytes() {
                if overflow {
                    continue;
                }
                if frac > (i64::MAX as u64 - 9) / 10 {
                    overflow = true;
                    continue;
                }
                frac = frac * 10 + u64::from(d - b'0');
                scale *= 10.0;
            }
            s = &s[frac_len..];
        }
        if !pre && !post {
            return None;
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return None;
        }
        let unit: u64 = match &s[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        if v > LIMIT / unit {
            return None;
        }
        v *= unit;
        if frac > 0 {
            v += (frac as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return None;
            }
        }
        total = total.checked_add(v)?;
        if total > LIMIT {
            return None;
        }
    }
    if neg {
        return Some((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return None;
    }
    Some(total as i64)
}

/// Go's `time.Duration.String()`: `48h0m0s`, `1.5s`, `300ms`, `0s`.
pub fn format_go_duration(nanos: i64) -> String {
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = String::new();
    if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_string(),
            u if u < 1_000 => (0, "ns"),
            u if u < 1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let (frac, int) = frac_digits(u, prec);
        u = int;
        out.push_str(&u.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = frac_digits(u, 9);
        u = secs;
        let s = u % 60;
        u /= 60;
        if u > 0 {
            let m = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&format!("{s}{frac}s"));
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Splits `v` into `v / 10^prec` and a `.ddd` fraction without trailing zeros (Go `fmtFrac`).
fn frac_digits(v: u64, prec: u32) -> (String, u64) {
    if prec == 0 {
        return (String::new(), v);
    }
    let pow = 10u64.pow(prec);
    let digits = format!("{:0width$}", v % pow, width = prec as usize);
    let trimmed = digits.trim_end_matches('0');
    let frac = if trimmed.is_empty() {
        String::new()
    } else {
        format!(".{trimmed}")
    };
    (frac, v / pow)
}

/// docker/go-units `BytesSize`: binary units with 4 significant digits, as buildx prints
/// GC limits (`19.53KiB`, `488.3MiB`, `9.313GiB`).
pub fn format_bytes_binary(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut size = bytes;
    let mut i = 0;
    while size >= 1024.0 && i < UNITS.len() - 1 {
        size /= 1024.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), UNITS[i])
}

/// docker/go-units `HumanSize`: decimal units (`kB`, `MB`, ...) with 4 significant digits, as
/// buildx's `du` and `prune` print cache sizes (`4.096kB`, `12.5MB`).
pub fn format_bytes_decimal(bytes: f64) -> String {
    const UNITS: [&str; 9] = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
    let mut size = bytes;
    let mut i = 0;
    while size >= 1000.0 && i < UNITS.len() - 1 {
        size /= 1000.0;
        i += 1;
    }
    format!("{}{}", format_g4(size), UNITS[i])
}

/// Go's `%.4g` for values in [0, 1024): 4 significant digits, trailing zeros removed.
fn format_g4(v: f64) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if v.abs() < 1e-4 {
        // Never reached for whole byte counts; keep Go's exponent form anyway.
        let s = format!("{v:.3e}");
        return s;
    }
    let int_digits = if v.abs() < 1.0 {
        0
    } else {
        (v.abs().log10().floor() as i32) + 1
    };
    let decimals = if v.abs() < 1.0 {
        // Leading zeros after the point do not count as significant digits.
        (4 - (v.abs().log10().floor() as i32) - 1).max(0) as usize
    } else {
        (4 - int_digits).max(0) as usize
    };
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_sizes_match_go_units_human_size() {
        assert_eq!(format_bytes_decimal(0.0), "0B");
        assert_eq!(format_bytes_decimal(512.0), "512B");
        assert_eq!(format_bytes_decimal(4096.0), "4.096kB");
        assert_eq!(format_bytes_decimal(12_500_000.0), "12.5MB");
        assert_eq!(format_bytes_decimal(999_960.0), "1000kB");
        assert_eq!(format_bytes_decimal(1_000_000.0), "1MB");
        assert_eq!(format_bytes_decimal(1_234_567_890.0), "1.235GB");
    }

    #[test]
    fn ram_in_bytes_is_binary() {
        assert_eq!(ram_in_bytes("512MB"), Some(512 * 1024 * 1024));
        assert_eq!(ram_in_bytes("20GB"), Some(20 * 1024 * 1024 * 1024));
        assert_eq!(ram_in_bytes("20gib"), Some(20 * 1024 * 1024 * 1024));
        assert_eq!(ram_in_bytes("1 k"), Some(1024));
        assert_eq!(ram_in_bytes("1.5k"), Some(1536));
        assert_eq!(ram_in_bytes("20000"), Some(20000));
        assert_eq!(ram_in_bytes("10b"), Some(10));
        assert_eq!(ram_in_bytes("10bb"), None);
        assert_eq!(ram_in_bytes("10GiBs"), None);
        assert_eq!(ram_in_bytes("10x"), None);
        assert_eq!(ram_in_bytes("GB"), None);
        assert_eq!(ram_in_bytes(""), None);
        assert_eq!(ram_in_bytes("inf"), None);
        assert_eq!(ram_in_bytes("10mi"), None);
    }

    #[test]
    fn disk_space_parse_and_resolve() {
        let d = DiskSpace::parse("20000", Spelling::Integer).expect("valid");
        assert_eq!(d.bytes(), 20000);
        assert_eq!(d.as_bytes(Some(1 << 40)), 20000);
        let p = DiskSpace::parse("10%", Spelling::String).expect("valid");
        assert_eq!(p.percentage(), 10);
        // 10% of 270553174016 = 27055317401; / 2^30 = 25; (25+1)*1e9.
        assert_eq!(p.as_bytes(Some(270_553_174_016)), 26_000_000_000);
        assert_eq!(p.as_bytes(None), DEFAULT_CAP_BYTES);
        assert!(
            DiskSpace::parse("", Spelling::String)
                .expect("empty")
                .is_unset()
        );
        assert_eq!(
            DiskSpace::parse("-5", Spelling::Integer),
            Err(UnitError::NegativeSize("-5".into()))
        );
        assert_eq!(
            DiskSpace::parse("101%", Spelling::String),
            Err(UnitError::PercentOver100("101%".into()))
        );
        assert!(matches!(
            DiskSpace::parse("10.5%", Spelling::String),
            Err(UnitError::InvalidSize(_))
        ));
        assert!(matches!(
            DiskSpace::parse("20_000", Spelling::Integer),
            Err(UnitError::InvalidSize(_))
        ));
    }

    #[test]
    fn durations() {
        let h48 = 48 * 3_600_000_000_000i64;
        assert_eq!(
            Duration::parse("48h", Spelling::String).map(|d| d.nanos()),
            Ok(h48)
        );
        assert_eq!(
            Duration::parse("172800", Spelling::Integer).map(|d| d.nanos()),
            Ok(h48)
        );
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration(".5s"), Some(500_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("1"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration("."), None);
        assert_eq!(parse_go_duration("3\u{b5}s"), Some(3_000));
        assert_eq!(parse_go_duration("9999999999999h"), None);
        assert!(matches!(
            Duration::parse("-1h", Spelling::String),
            Err(UnitError::NegativeDuration(_))
        ));
        assert!(matches!(
            Duration::parse("2 days", Spelling::String),
            Err(UnitError::InvalidDuration(_))
        ));
    }

    #[test]
    fn go_duration_string() {
        assert_eq!(format_go_duration(48 * 3_600_000_000_000), "48h0m0s");
        assert_eq!(format_go_duration(1440 * 3_600_000_000_000), "1440h0m0s");
        assert_eq!(format_go_duration(0), "0s");
        assert_eq!(format_go_duration(1_500_000_000), "1.5s");
        assert_eq!(format_go_duration(90_000_000_000), "1m30s");
        assert_eq!(format_go_duration(172_800_000), "172.8ms");
        assert_eq!(format_go_duration(172_800), "172.8\u{b5}s");
        assert_eq!(format_go_duration(12), "12ns");
        assert_eq!(format_go_duration(-1_000_000_000), "-1s");
    }

    #[test]
    fn bytes_size_matches_go_units() {
        assert_eq!(format_bytes_binary(20000.0), "19.53KiB");
        assert_eq!(format_bytes_binary(512_000_000.0), "488.3MiB");
        assert_eq!(format_bytes_binary(10_000_000_000.0), "9.313GiB");
        assert_eq!(format_bytes_binary(100_000_000_000.0), "93.13GiB");
        assert_eq!(format_bytes_binary(6_000_000_000.0), "5.588GiB");
        assert_eq!(format_bytes_binary(21_474_836_480.0), "20GiB");
        assert_eq!(format_bytes_binary(1024.0), "1KiB");
        assert_eq!(format_bytes_binary(1023.0), "1023B");
        assert_eq!(format_bytes_binary(0.0), "0B");
        assert_eq!(format_bytes_binary(1_048_575.0), "1024KiB");
    }
}
