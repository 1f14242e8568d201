//! `formatdate`, `timeadd` (cty's, with its strict RFC 3339 reading and Go's error
//! wording) and `timestamp` (buildx's: now, in RFC 3339 UTC).

use std::time::{SystemTime, UNIX_EPOCH};

use super::{Failure, Outcome, string, string_arg};
use crate::types::go_quote;
use crate::value::Value;

/// An instant with the UTC offset it was written in.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Time {
    /// Seconds since the Unix epoch.
    seconds: i64,
    /// Nanoseconds within the second.
    nanos: i64,
    /// Offset from UTC in seconds.
    offset: i64,
}

/// Civil date and time in the instant's own offset.
struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
    weekday: usize,
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in(month: u32, year: i64) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

impl Time {
    fn civil(&self) -> Civil {
        let local = self.seconds + self.offset;
        let days = local.div_euclid(86_400);
        let secs = local.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: (secs / 3600) as u32,
            minute: (secs / 60 % 60) as u32,
            second: (secs % 60) as u32,
            weekday: (days + 4).rem_euclid(7) as usize,
        }
    }

    /// The offset as Go's `-0700` (with `colon`: `-07:00`).
    fn offset_text(&self, colon: bool) -> String {
        let sign = if self.offset < 0 { '-' } else { '+' };
        let minutes = self.offset.abs() / 60;
        let separator = if colon { ":" } else { "" };
        format!("{sign}{:02}{separator}{:02}", minutes / 60, minutes % 60)
    }

    /// Go's `Format(time.RFC3339)`.
    fn rfc3339(&self) -> String {
        let c = self.civil();
        let year = if c.year < 0 {
            format!("-{:04}", -c.year)
        } else {
            format!("{:04}", c.year)
        };
        let zone = if self.offset == 0 {
            "Z".to_string()
        } else {
            self.offset_text(true)
        };
        format!(
            "{year}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            c.month, c.day, c.hour, c.minute, c.second
        )
    }
}

/// cty's own strict RFC 3339 reader; None when it does not accept the text.
fn parse_rfc3339(text: &str) -> Option<Time> {
    let s = text.as_bytes();
    if s.len() < 19 {
        return None;
    }
    let number = |range: std::ops::Range<usize>, min: u32, max: u32| -> Option<u32> {
        let digits = &s[range];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let value = digits
            .iter()
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        (min..=max).contains(&value).then_some(value)
    };
    let year = number(0..4, 0, 9999)?;
    let month = number(5..7, 1, 12)?;
    let day = number(8..10, 1, days_in(month, i64::from(year)))?;
    let hour = number(11..13, 0, 23)?;
    let minute = number(14..16, 0, 59)?;
    let second = number(17..19, 0, 59)?;
    if !(s[4] == b'-' && s[7] == b'-' && s[10] == b'T' && s[13] == b':' && s[16] == b':') {
        return None;
    }
    let mut rest = &s[19..];
    let mut nanos = 0i64;
    if rest.len() >= 2 && rest[0] == b'.' && rest[1].is_ascii_digit() {
        let digits = rest[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        let fraction = &rest[1..1 + digits.min(9)];
        nanos = fraction
            .iter()
            .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'))
            * 10i64.pow(9 - fraction.len() as u32);
        rest = &rest[1 + digits..];
    }
    let offset = if rest == b"Z" {
        0
    } else {
        if rest.len() != 6 || !(rest[0] == b'-' || rest[0] == b'+') || rest[3] != b':' {
            return None;
        }
        let zone = std::str::from_utf8(rest).ok()?;
        let hours: i64 = zone
            .get(1..3)
            .filter(|h| h.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()?;
        let minutes: i64 = zone
            .get(4..6)
            .filter(|m| m.bytes().all(|b| b.is_ascii_digit()))?
            .parse()
            .ok()?;
        if hours > 23 || minutes > 59 {
            return None;
        }
        let offset = (hours * 60 + minutes) * 60;
        if rest[0] == b'-' { -offset } else { offset }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let local = days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second);
    Some(Time {
        seconds: local - offset,
        nanos,
        offset,
    })
}

/// What Go's `time.Parse(time.RFC3339, …)` reports on failure.
struct GoParseError {
    layout_elem: &'static str,
    value_elem: String,
    message: String,
}

/// Go's `time.Parse` with the RFC 3339 layout, for its errors only; Ok when Go would
/// accept the text.
fn go_parse_rfc3339(text: &str) -> Result<(), GoParseError> {
    let err = |layout_elem: &'static str, value_elem: &[u8], message: &str| GoParseError {
        layout_elem,
        value_elem: String::from_utf8_lossy(value_elem).into_owned(),
        message: message.to_string(),
    };
    let digit = |s: &[u8], i: usize| s.get(i).is_some_and(u8::is_ascii_digit);
    // Go's getnum: one or two digits (exactly two when `fixed`)
    let getnum = |s: &[u8], fixed: bool| -> Option<(u32, usize)> {
        if !digit(s, 0) {
            return None;
        }
        if !digit(s, 1) {
            return if fixed {
                None
            } else {
                Some((u32::from(s[0] - b'0'), 1))
            };
        }
        Some((u32::from(s[0] - b'0') * 10 + u32::from(s[1] - b'0'), 2))
    };
    let mut value = text.as_bytes();
    let skip = |value: &mut &[u8], literal: u8| -> bool {
        if value.first() == Some(&literal) {
            *value = &value[1..];
            true
        } else {
            false
        }
    };
    // year
    if value.len() < 4 {
        return Err(err("2006", value, ""));
    }
    if !value[..4].iter().all(u8::is_ascii_digit) {
        return Err(err("2006", value, ""));
    }
    let year = value[..4]
        .iter()
        .fold(0i64, |y, d| y * 10 + i64::from(d - b'0'));
    value = &value[4..];
    if !skip(&mut value, b'-') {
        return Err(err("-", value, ""));
    }
    let hold = value;
    let Some((month, used)) = getnum(value, true) else {
        return Err(err("01", hold, ""));
    };
    value = &value[used..];
    if !(1..=12).contains(&month) {
        return Err(err("01", value, ": month out of range"));
    }
    if !skip(&mut value, b'-') {
        return Err(err("-", value, ""));
    }
    let hold = value;
    let Some((day, used)) = getnum(value, true) else {
        return Err(err("02", hold, ""));
    };
    value = &value[used..];
    if !skip(&mut value, b'T') {
        return Err(err("T", value, ""));
    }
    let hold = value;
    let Some((hour, used)) = getnum(value, false) else {
        return Err(err("15", hold, ""));
    };
    value = &value[used..];
    if hour >= 24 {
        return Err(err("15", value, ": hour out of range"));
    }
    if !skip(&mut value, b':') {
        return Err(err(":", value, ""));
    }
    let hold = value;
    let Some((minute, used)) = getnum(value, true) else {
        return Err(err("04", hold, ""));
    };
    value = &value[used..];
    if minute >= 60 {
        return Err(err("04", value, ": minute out of range"));
    }
    if !skip(&mut value, b':') {
        return Err(err(":", value, ""));
    }
    let hold = value;
    let Some((second, used)) = getnum(value, true) else {
        return Err(err("05", hold, ""));
    };
    value = &value[used..];
    if second >= 60 {
        return Err(err("05", value, ": second out of range"));
    }
    if value.len() >= 2 && (value[0] == b'.' || value[0] == b',') && digit(value, 1) {
        let n = 1 + value[1..].iter().take_while(|b| b.is_ascii_digit()).count();
        value = &value[n..];
    }
    let hold = value;
    if value.first() == Some(&b'Z') {
        value = &value[1..];
    } else {
        if value.len() < 6 || value[3] != b':' {
            return Err(err("Z07:00", hold, ""));
        }
        // Go parses the hour and minute, notes range errors (which win), then fails
        let hours = getnum(&value[1..3], true);
        let minutes = hours.and_then(|_| getnum(&value[4..6], true));
        let after = &value[6..];
        if hours.is_some_and(|(h, _)| h > 24) {
            return Err(err("Z07:00", after, ": time zone offset hour out of range"));
        }
        if minutes.is_some_and(|(m, _)| m > 60) {
            return Err(err(
                "Z07:00",
                after,
                ": time zone offset minute out of range",
            ));
        }
        if minutes.is_none() {
            return Err(err("Z07:00", hold, ""));
        }
        if value[0] != b'+' && value[0] != b'-' {
            return Err(err("Z07:00", hold, ""));
        }
        value = after;
    }
    if !value.is_empty() {
        let extra = format!(
            ": extra text: {}",
            go_quote(&String::from_utf8_lossy(value))
        );
        return Err(err("", value, &extra));
    }
    if day < 1 || day > days_in(month, year) {
        return Err(err("", value, ": day out of range"));
    }
    Ok(())
}

/// cty's `parseTimestamp`: its strict reader, and Go's errors worded its way.
fn parse_timestamp(text: &str) -> Result<Time, String> {
    if let Some(time) = parse_rfc3339(text) {
        return Ok(time);
    }
    let error = match go_parse_rfc3339(text) {
        Err(e) => e,
        Ok(()) => {
            // Go accepts what cty's strict reader does not
            let s = text.as_bytes();
            let two = |b: &[u8]| {
                u32::from(b[0].wrapping_sub(b'0')) * 10 + u32::from(b[1].wrapping_sub(b'0'))
            };
            if s.get(12) == Some(&b':') {
                GoParseError {
                    layout_elem: "15",
                    value_elem: text.get(11..12).unwrap_or("").to_string(),
                    message: ": hour must have two digits".to_string(),
                }
            } else if s.get(19) == Some(&b',') {
                GoParseError {
                    layout_elem: ".",
                    value_elem: ",".to_string(),
                    message: String::new(),
                }
            } else if s.last() != Some(&b'Z') && s.len() >= 6 {
                let zone = text.get(s.len() - 6..).unwrap_or("").to_string();
                if two(&s[s.len() - 5..]) >= 24 || two(&s[s.len() - 2..]) >= 60 {
                    GoParseError {
                        layout_elem: "Z07:00",
                        value_elem: zone,
                        message: String::new(),
                    }
                } else {
                    GoParseError {
                        layout_elem: "2006-01-02T15:04:05Z07:00",
                        value_elem: text.to_string(),
                        message: String::new(),
                    }
                }
            } else {
                GoParseError {
                    layout_elem: "2006-01-02T15:04:05Z07:00",
                    value_elem: text.to_string(),
                    message: String::new(),
                }
            }
        }
    };
    let prefix = "not a valid RFC3339 timestamp";
    if error.layout_elem.is_empty() && error.value_elem.is_empty() && !error.message.is_empty() {
        return Err(format!("{prefix}{}", error.message));
    }
    let what = match error.layout_elem {
        "2006" => "year",
        "01" => "month",
        "02" => "day of month",
        "15" => "hour",
        "04" => "minute",
        "05" => "second",
        "Z07:00" => "UTC offset",
        "T" => return Err(format!("{prefix}: missing required time introducer 'T'")),
        ":" | "-" => {
            return Err(if error.value_elem.is_empty() {
                format!(
                    "{prefix}: end of string where {} is expected",
                    go_quote(error.layout_elem)
                )
            } else {
                format!(
                    "{prefix}: found {} where {} is expected",
                    go_quote(&error.value_elem),
                    go_quote(error.layout_elem)
                )
            });
        }
        _ => "timestamp segment",
    };
    if error.value_elem.is_empty() {
        return Err(format!("{prefix}: end of string before {what}"));
    }
    Err(match what {
        "hour" if error.value_elem.contains(':') => {
            format!("{prefix}: hour must be between 0 and 23 inclusive")
        }
        "hour" if error.value_elem.len() != 2 => {
            format!("{prefix}: hour must have exactly two digits")
        }
        "minute" if error.value_elem.len() != 2 => {
            format!("{prefix}: minute must have exactly two digits")
        }
        _ => format!(
            "{prefix}: cannot use {} as {what}",
            go_quote(&error.value_elem)
        ),
    })
}

/// A string quoted as Go's `time` package quotes it in errors.
fn time_quote(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        if (c as u32) < 0x20 || (c as u32) >= 0x80 {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\x{byte:02x}"));
            }
        } else {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    }
    out.push('"');
    out
}

/// Go's `time.ParseDuration`, in nanoseconds.
fn parse_duration(text: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", time_quote(text));
    let mut s = text;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    const LIMIT: u64 = 1 << 63;
    let mut total: u64 = 0;
    while !s.is_empty() {
        let bytes = s.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for d in &bytes[..int_len] {
            if whole > LIMIT / 10 {
                return Err(invalid());
            }
            whole = whole * 10 + u64::from(d - b'0');
            if whole > LIMIT {
                return Err(invalid());
            }
        }
        s = &s[int_len..];
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut fraction_digits = 0;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let digits = s.bytes().take_while(u8::is_ascii_digit).count();
            let mut overflow = false;
            for d in s[..digits].bytes() {
                if overflow {
                    continue;
                }
                if fraction > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let next = fraction * 10 + u64::from(d - b'0');
                if next > LIMIT {
                    overflow = true;
                    continue;
                }
                fraction = next;
                scale *= 10.0;
            }
            fraction_digits = digits;
            s = &s[digits..];
        }
        if int_len == 0 && fraction_digits == 0 {
            return Err(invalid());
        }
        let unit_len = s
            .bytes()
            .take_while(|b| !(*b == b'.' || b.is_ascii_digit()))
            .count();
        if unit_len == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                time_quote(text)
            ));
        }
        let unit_text = &s[..unit_len];
        s = &s[unit_len..];
        let unit: u64 = match unit_text {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    time_quote(unit_text),
                    time_quote(text)
                ));
            }
        };
        if whole > LIMIT / unit {
            return Err(invalid());
        }
        let mut v = whole * unit;
        if fraction > 0 {
            v += (fraction as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total += v;
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if negative {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > LIMIT - 1 {
        return Err(invalid());
    }
    Ok(total as i64)
}

/// formatdate's tokens, as cty's `splitDateFormat` cuts them.
fn date_tokens(format: &str) -> Vec<&str> {
    let bytes = format.as_bytes();
    let is_verb = |b: u8| b.is_ascii_alphabetic();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        if bytes[i] == b'\'' {
            if bytes.get(i + 1) == Some(&b'\'') {
                i += 2;
            } else {
                let mut j = i + 1;
                let mut end = bytes.len();
                while j < bytes.len() {
                    if bytes[j] == b'\'' {
                        if j + 1 == bytes.len() {
                            end = bytes.len();
                            break;
                        }
                        if bytes[j + 1] == b'\'' {
                            j += 2;
                            continue;
                        }
                        end = j + 1;
                        break;
                    }
                    j += 1;
                }
                i = end;
            }
        } else if is_verb(bytes[i]) {
            let letter = bytes[i];
            while i < bytes.len() && bytes[i] == letter {
                i += 1;
            }
        } else {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' && !is_verb(bytes[i]) {
                i += 1;
            }
        }
        tokens.push(&format[start..i]);
    }
    tokens
}

/// `formatdate(format, time)`.
pub(super) fn format_date(args: &[Value]) -> Outcome {
    let format = string_arg(args, 0)?;
    let time = parse_timestamp(string_arg(args, 1)?).map_err(|e| Failure::arg(1, e))?;
    let c = time.civil();
    let verb_error = |token: &str, why: &str| {
        let detail = if why.is_empty() {
            String::new()
        } else {
            format!(": {why}")
        };
        Failure::arg(
            0,
            format!("invalid date format verb {}{detail}", go_quote(token)),
        )
    };
    let mut out = String::new();
    for token in date_tokens(format) {
        let bytes = token.as_bytes();
        let len = bytes.len();
        if bytes[0] == b'\'' {
            if bytes[len - 1] != b'\'' || len == 1 {
                return Err(Failure::arg(0, "unterminated literal '"));
            }
            if len == 2 {
                out.push('\'');
            } else {
                let raw = &bytes[1..len - 1];
                let mut literal = Vec::with_capacity(raw.len());
                let mut i = 0;
                while i < raw.len() {
                    literal.push(raw[i]);
                    if raw[i] == b'\'' {
                        i += 1;
                    }
                    i += 1;
                }
                out.push_str(&String::from_utf8_lossy(&literal));
            }
            continue;
        }
        if !bytes[0].is_ascii_alphabetic() {
            out.push_str(token);
            continue;
        }
        let twelve = if c.hour % 12 == 0 { 12 } else { c.hour % 12 };
        let piece = match (bytes[0], len) {
            (b'Y', 2) => format!("{:02}", c.year.rem_euclid(100)),
            (b'Y', 4) => format!("{:04}", c.year),
            (b'Y', _) => return Err(verb_error(token, "year must either be \"YY\" or \"YYYY\"")),
            (b'M', 1) => c.month.to_string(),
            (b'M', 2) => format!("{:02}", c.month),
            (b'M', 3) => MONTHS[c.month as usize - 1][..3].to_string(),
            (b'M', 4) => MONTHS[c.month as usize - 1].to_string(),
            (b'M', _) => {
                return Err(verb_error(
                    token,
                    "month must be \"M\", \"MM\", \"MMM\", or \"MMMM\"",
                ));
            }
            (b'D', 1) => c.day.to_string(),
            (b'D', 2) => format!("{:02}", c.day),
            (b'D', _) => {
                return Err(verb_error(
                    token,
                    "day of month must either be \"D\" or \"DD\"",
                ));
            }
            (b'E', 3) => WEEKDAYS[c.weekday][..3].to_string(),
            (b'E', 4) => WEEKDAYS[c.weekday].to_string(),
            (b'E', _) => {
                return Err(verb_error(
                    token,
                    "day of week must either be \"EEE\" or \"EEEE\"",
                ));
            }
            (b'h', 1) => c.hour.to_string(),
            (b'h', 2) => format!("{:02}", c.hour),
            (b'h', _) => return Err(verb_error(token, "24-hour must either be \"h\" or \"hh\"")),
            (b'H', 1) => twelve.to_string(),
            (b'H', 2) => format!("{twelve:02}"),
            (b'H', _) => return Err(verb_error(token, "12-hour must either be \"H\" or \"HH\"")),
            (b'A' | b'a', 2) => {
                let pm = c.hour >= 12;
                match (bytes[0] == b'A', pm) {
                    (true, false) => "AM",
                    (true, true) => "PM",
                    (false, false) => "am",
                    (false, true) => "pm",
                }
                .to_string()
            }
            (b'A' | b'a', _) => {
                let letter = &token[..1];
                return Err(verb_error(token, &format!("must be \"{letter}{letter}\"")));
            }
            (b'm', 1) => c.minute.to_string(),
            (b'm', 2) => format!("{:02}", c.minute),
            (b'm', _) => return Err(verb_error(token, "minute must either be \"m\" or \"mm\"")),
            (b's', 1) => c.second.to_string(),
            (b's', 2) => format!("{:02}", c.second),
            (b's', _) => return Err(verb_error(token, "second must either be \"s\" or \"ss\"")),
            (b'Z', 1) => {
                if time.offset == 0 {
                    "Z".to_string()
                } else {
                    time.offset_text(true)
                }
            }
            (b'Z', 3) => {
                let zone = time.offset_text(false);
                if zone == "+0000" {
                    "UTC".to_string()
                } else {
                    zone
                }
            }
            (b'Z', 4) => time.offset_text(false),
            (b'Z', 5) => time.offset_text(true),
            (b'Z', _) => return Err(verb_error(token, "timezone must be Z, ZZZZ, or ZZZZZ")),
            _ => return Err(verb_error(token, "")),
        };
        out.push_str(&piece);
    }
    Ok(string(out))
}

/// `timeadd(timestamp, duration)`: the time plus a Go duration (`1h30m`, `-10s`), in the
/// same offset, to the second.
pub(super) fn time_add(args: &[Value]) -> Outcome {
    let time = parse_timestamp(string_arg(args, 0)?).map_err(Failure::call)?;
    let duration = parse_duration(string_arg(args, 1)?).map_err(Failure::call)?;
    let total = i128::from(time.nanos) + i128::from(duration);
    let seconds = time.seconds + total.div_euclid(1_000_000_000) as i64;
    let nanos = total.rem_euclid(1_000_000_000) as i64;
    Ok(string(
        Time {
            seconds,
            nanos,
            offset: time.offset,
        }
        .rfc3339(),
    ))
}

/// `timestamp()` (buildx): the current time in RFC 3339, UTC, to the second.
pub(super) fn timestamp(_args: &[Value]) -> Outcome {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    Ok(string(
        Time {
            seconds: now,
            nanos: 0,
            offset: 0,
        }
        .rfc3339(),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, ok, s};
    use crate::value::Value;

    fn date(format: &str, time: &str) -> Value {
        ok("formatdate", vec![s(format), s(time)])
    }
    fn time_error(time: &str) -> String {
        fails("formatdate", vec![s("YYYY"), s(time)])
    }

    #[test]
    fn formatdate_matches_cty() {
        assert_eq!(
            date(
                "YYYY-MM-DD hh:mm:ss ZZZ EEE EEEE MMM MMMM D M h H HH AA aa Z ZZZZ ZZZZZ YY",
                "2024-01-05T03:04:05Z"
            ),
            s("2024-01-05 03:04:05 UTC Fri Friday Jan January 5 1 3 3 03 AM am Z +0000 +00:00 24")
        );
        assert_eq!(
            date("DD MMM YYYY hh:mm ZZZ", "2018-01-02T23:12:01-08:00"),
            s("02 Jan 2018 23:12 -0800")
        );
        assert_eq!(
            date("h:mm aa 'o''clock' ''", "2018-01-02T23:12:01+05:30"),
            s("23:12 pm o'clock '")
        );
        assert_eq!(
            date("EEEE HH AA", "2018-01-02T12:00:00Z"),
            s("Tuesday 12 PM")
        );
        assert_eq!(date("Z", "2018-01-02T00:00:00+01:00"), s("+01:00"));
        assert_eq!(date("s", "2018-01-02T00:00:07.9Z"), s("7"));
        assert_eq!(date("YYYY", "2018-01-02T00:00:00.123456789123Z"), s("2018"));
        assert_eq!(date("YYYY-MM-DD", "2000-02-29T00:00:00Z"), s("2000-02-29"));
        assert_eq!(
            date("YYYY-MM-DD EEE", "1969-12-31T23:59:59Z"),
            s("1969-12-31 Wed")
        );
    }

    #[test]
    fn formatdate_verb_errors_match_cty() {
        let param = |m: &str| format!("Invalid value for \"format\" parameter: {m}.");
        let verb = |format: &str| fails("formatdate", vec![s(format), s("2018-01-02T00:00:00Z")]);
        assert_eq!(verb("'unterminated"), param("unterminated literal '"));
        assert_eq!(
            verb("YYY"),
            param("invalid date format verb \"YYY\": year must either be \"YY\" or \"YYYY\"")
        );
        assert_eq!(
            verb("ZZ"),
            param("invalid date format verb \"ZZ\": timezone must be Z, ZZZZ, or ZZZZZ")
        );
        assert_eq!(verb("x"), param("invalid date format verb \"x\""));
        assert_eq!(
            verb("A"),
            param("invalid date format verb \"A\": must be \"AA\"")
        );
        assert_eq!(
            verb("MMMMM"),
            param(
                "invalid date format verb \"MMMMM\": month must be \"M\", \"MM\", \"MMM\", or \"MMMM\""
            )
        );
    }

    #[test]
    fn timestamp_errors_match_cty() {
        let cases = [
            ("2018-01-02", "missing required time introducer 'T'"),
            ("2018-01-02T00:00:00", "end of string before UTC offset"),
            (
                "2018/01/02T00:00:00Z",
                "found \"/01/02T00:00:00Z\" where \"-\" is expected",
            ),
            (
                "2018-13-02T00:00:00Z",
                "cannot use \"-02T00:00:00Z\" as month",
            ),
            ("2018-02-30T00:00:00Z", "day out of range"),
            ("2018-01-02T5:00:00Z", "hour must have exactly two digits"),
            (
                "2018-01-02T25:00:00Z",
                "hour must be between 0 and 23 inclusive",
            ),
            (
                "2018-01-02t00:00:00Z",
                "missing required time introducer 'T'",
            ),
            (
                "2018-01-02T00:00:00,5Z",
                "cannot use \",\" as timestamp segment",
            ),
            (
                "2018-01-02T00:00:00+24:00",
                "cannot use \"+24:00\" as UTC offset",
            ),
            (
                "2018-01-02T00:00:00+01:60",
                "cannot use \"+01:60\" as UTC offset",
            ),
            (
                "2018-01-02T00:00:00Zx",
                "cannot use \"x\" as timestamp segment",
            ),
            (
                "18-01-02T00:00:00Z",
                "cannot use \"18-01-02T00:00:00Z\" as year",
            ),
            ("", "end of string before year"),
            ("2018-01-02T00:0:00Z", "minute must have exactly two digits"),
            ("2018-01-02T00:00:60Z", "cannot use \"Z\" as second"),
            (
                "2018-01-02T00:00:00+0100",
                "cannot use \"+0100\" as UTC offset",
            ),
            ("2018-01-02T00:00:00.Z", "cannot use \".Z\" as UTC offset"),
            (
                "2018-1-02T00:00:00Z",
                "cannot use \"1-02T00:00:00Z\" as month",
            ),
        ];
        for (time, want) in cases {
            assert_eq!(
                time_error(time),
                format!(
                    "Invalid value for \"time\" parameter: not a valid RFC3339 timestamp: {want}."
                ),
                "{time}"
            );
        }
    }

    #[test]
    fn timeadd_matches_cty() {
        let add = |t: &str, d: &str| ok("timeadd", vec![s(t), s(d)]);
        assert_eq!(
            add("2017-11-22T00:00:00Z", "10m"),
            s("2017-11-22T00:10:00Z")
        );
        assert_eq!(
            add("2017-11-22T00:00:00+05:30", "-1h30m"),
            s("2017-11-21T22:30:00+05:30")
        );
        assert_eq!(
            add("2017-11-22T00:00:00Z", "1.5h"),
            s("2017-11-22T01:30:00Z")
        );
        assert_eq!(add("2017-11-22T00:00:00Z", "0"), s("2017-11-22T00:00:00Z"));
        assert_eq!(
            add("2017-11-22T00:00:00Z", "1µs"),
            s("2017-11-22T00:00:00Z")
        );
        assert_eq!(
            add("2017-11-22T00:00:00.5Z", "1ms"),
            s("2017-11-22T00:00:00Z")
        );
        assert_eq!(
            add("2017-11-22T00:00:00Z", "876000h"),
            s("2117-10-29T00:00:00Z")
        );
        assert_eq!(
            add("2017-11-22T00:00:00-00:00", "1h"),
            s("2017-11-22T01:00:00Z")
        );
        let call = |m: &str| format!("Call to function \"timeadd\" failed: {m}.");
        let add_err = |d: &str| fails("timeadd", vec![s("2017-11-22T00:00:00Z"), s(d)]);
        assert_eq!(
            add_err("1d"),
            call("time: unknown unit \"d\" in duration \"1d\"")
        );
        assert_eq!(add_err("1"), call("time: missing unit in duration \"1\""));
        assert_eq!(add_err(""), call("time: invalid duration \"\""));
        assert_eq!(add_err("x"), call("time: invalid duration \"x\""));
        assert_eq!(add_err(".h"), call("time: invalid duration \".h\""));
        assert_eq!(
            add_err("-20000000h"),
            call("time: invalid duration \"-20000000h\"")
        );
        assert_eq!(
            add_err("9999999999h"),
            call("time: invalid duration \"9999999999h\"")
        );
        assert_eq!(
            fails("timeadd", vec![s("2017-11-22"), s("1h")]),
            call("not a valid RFC3339 timestamp: missing required time introducer 'T'")
        );
    }

    #[test]
    fn timestamp_is_rfc3339_utc() {
        let Value::String(now) = ok("timestamp", vec![]) else {
            panic!("not a string")
        };
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'), "{now}");
        assert_eq!(ok("formatdate", vec![s("YYYY"), s(&now)]), s(&now[..4]));
    }
}
