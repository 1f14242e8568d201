//! Numbers formatted as Go's `math/big` formats cty's numbers (`%e`, `%f`, `%g`, `%v`,
//! `Text('g', 10)`), for `format` and for ordering sets.
//!
//! cty holds a number literal as a 512-bit float; here it is an `f64`. Its shortest decimal
//! form is taken as the number (it is what the file said), and a digit that is exactly
//! half-way when rounding is settled the way the 512-bit value would settle it: up when
//! the 512-bit binary approximation of that decimal lies above it, down when below, to
//! even when it is exact.

/// A decimal number as Go's `math/big` works with one: `0.d₁d₂…dₙ × 10^exp`, without
/// trailing zero digits (no digits: zero).
#[derive(Debug, Clone, PartialEq)]
struct Decimal {
    digits: Vec<u8>,
    exp: i32,
    /// Which way the number lies from an exact half when a digit 5 is the last one:
    /// `Some(true)` above, `Some(false)` below, None exactly (round half to even).
    tie_above: Option<bool>,
}

impl Decimal {
    /// The shortest decimal that reads back as `x`, with the side of
    /// it cty's 512-bit value lies on.
    fn shortest(x: f64) -> Decimal {
        let x = x.abs();
        if x == 0.0 {
            return Decimal {
                digits: Vec::new(),
                exp: 0,
                tie_above: None,
            };
        }
        let text = format!("{x:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or(0);
        let mut digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
        while digits.last() == Some(&b'0') {
            digits.pop();
        }
        let mut decimal = Decimal {
            digits,
            exp: exponent + 1,
            tie_above: None,
        };
        decimal.tie_above = decimal.binary_side(x);
        decimal
    }

    /// On which side of this decimal value its nearest 512-bit binary float lies.
    fn binary_side(&self, x: f64) -> Option<bool> {
        let after_point = self.digits.len() as i32 - self.exp;
        if after_point <= 0 || after_point > 19 || self.digits.len() > 19 {
            return None;
        }
        let mantissa: u64 = self
            .digits
            .iter()
            .fold(0u64, |m, d| m * 10 + u64::from(d - b'0'));
        let modulus = 10u64.pow(after_point as u32);
        // 512-bit mantissa: scale by 2^s with 2^511 <= x·2^s < 2^512.
        let log2 = x.log2().floor() as i32;
        let shift = 511 - log2;
        if shift < 0 {
            return None;
        }
        let mut power = 1u128 % u128::from(modulus);
        let mut base = 2u128 % u128::from(modulus);
        let mut e = shift as u32;
        while e > 0 {
            if e & 1 == 1 {
                power = power * base % u128::from(modulus);
            }
            base = base * base % u128::from(modulus);
            e >>= 1;
        }
        let remainder = u128::from(mantissa) * power % u128::from(modulus);
        match (2 * remainder).cmp(&u128::from(modulus)) {
            std::cmp::Ordering::Greater => Some(true),
            std::cmp::Ordering::Less if remainder != 0 => Some(false),
            _ => None,
        }
    }

    /// Keeps `n` digits, rounding as Go's `decimal.round` does.
    fn round(&mut self, n: i32) {
        if n < 0 || n as usize >= self.digits.len() {
            return;
        }
        let n = n as usize;
        let up = match self.digits[n].cmp(&b'5') {
            std::cmp::Ordering::Greater => true,
            std::cmp::Ordering::Less => false,
            std::cmp::Ordering::Equal if n + 1 < self.digits.len() => true,
            std::cmp::Ordering::Equal => match self.tie_above {
                Some(above) => above,
                None => n > 0 && (self.digits[n - 1] - b'0') % 2 == 1,
            },
        };
        self.tie_above = None;
        if up {
            let mut i = n;
            while i > 0 && self.digits[i - 1] == b'9' {
                i -= 1;
            }
            if i == 0 {
                self.digits = vec![b'1'];
                self.exp += 1;
                return;
            }
            self.digits[i - 1] += 1;
            self.digits.truncate(i);
        } else {
            self.digits.truncate(n);
            while self.digits.last() == Some(&b'0') {
                self.digits.pop();
            }
        }
        if self.digits.is_empty() {
            self.exp = 0;
        }
    }

    fn digit(&self, i: i32) -> u8 {
        if i >= 0 && (i as usize) < self.digits.len() {
            self.digits[i as usize]
        } else {
            b'0'
        }
    }
}

/// `x` as Go's `big.Float.Text(format, prec)` writes it, for the formats `e`, `E`, `f`,
/// `g` and `G`; a negative `prec` asks for the shortest exact form. Infinities are `+Inf`
/// and `-Inf`.
pub(crate) fn float_text(x: f64, format: char, prec: i32) -> String {
    let mut out = String::new();
    if x.is_sign_negative() && x != 0.0 {
        out.push('-');
    }
    if x.is_infinite() {
        if x > 0.0 {
            out.push('+');
        }
        out.push_str("Inf");
        return out;
    }
    let mut d = Decimal::shortest(x);
    let mut prec = prec;
    let shortest = prec < 0;
    let lower = format.to_ascii_lowercase();
    if shortest {
        prec = match lower {
            'e' => d.digits.len() as i32 - 1,
            'f' => (d.digits.len() as i32 - d.exp).max(0),
            _ => d.digits.len() as i32,
        };
    } else {
        match lower {
            'e' => d.round(1 + prec),
            'f' => d.round(d.exp + prec),
            _ => {
                if prec == 0 {
                    prec = 1;
                }
                d.round(prec);
            }
        }
    }
    match lower {
        'e' => fmt_e(&mut out, format, prec, &d),
        'f' => fmt_f(&mut out, prec, &d),
        _ => {
            let mut eprec = prec;
            if eprec > d.digits.len() as i32 && d.digits.len() as i32 >= d.exp {
                eprec = d.digits.len() as i32;
            }
            if shortest {
                eprec = 6;
            }
            let exp = d.exp - 1;
            if exp < -4 || exp >= eprec {
                if prec > d.digits.len() as i32 {
                    prec = d.digits.len() as i32;
                }
                let e = if format == 'G' { 'E' } else { 'e' };
                fmt_e(&mut out, e, prec - 1, &d);
            } else {
                if prec > d.exp {
                    prec = d.digits.len() as i32;
                }
                fmt_f(&mut out, (prec - d.exp).max(0), &d);
            }
        }
    }
    out
}

/// The decimal digits of a whole number's magnitude, as cty holds the number (from its
/// shortest decimal form: `1e30` is a one and thirty zeros).
pub(crate) fn integer_digits(x: f64) -> String {
    let d = Decimal::shortest(x);
    if d.digits.is_empty() || d.exp <= 0 {
        return "0".to_string();
    }
    (0..d.exp).map(|i| char::from(d.digit(i))).collect()
}

/// Go's `%g` with precision `prec` (cty's `big.Float.String()` is `float_text_g(x, 10)`).
pub(crate) fn format_float_g(x: f64, prec: i32) -> String {
    float_text(x, 'g', prec)
}

fn fmt_e(out: &mut String, format: char, prec: i32, d: &Decimal) {
    out.push(if d.digits.is_empty() {
        '0'
    } else {
        char::from(d.digits[0])
    });
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(d.digit(i)));
        }
    }
    out.push(format);
    let exp = if d.digits.is_empty() { 0 } else { d.exp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let exp = exp.abs();
    if exp < 10 {
        out.push('0');
    }
    out.push_str(&exp.to_string());
}

fn fmt_f(out: &mut String, prec: i32, d: &Decimal) {
    if d.exp > 0 {
        for i in 0..d.exp {
            out.push(char::from(d.digit(i)));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(char::from(d.digit(d.exp - 1 + i)));
        }
    }
}

#[cfg(test)]
// 3.14159 is a number the cty probes were run with, not an approximation of π
#[allow(clippy::approx_constant)]
mod tests {
    use super::*;

    #[test]
    fn shortest_forms_match_big_float_text() {
        assert_eq!(float_text(123456789.0, 'g', -1), "1.23456789e+08");
        assert_eq!(float_text(1e21, 'g', -1), "1e+21");
        assert_eq!(float_text(0.0001, 'g', -1), "0.0001");
        assert_eq!(float_text(0.00001, 'g', -1), "1e-05");
        assert_eq!(float_text(1.5, 'g', -1), "1.5");
        assert_eq!(float_text(100000.0, 'g', -1), "100000");
        assert_eq!(float_text(1000000.0, 'g', -1), "1e+06");
        assert_eq!(float_text(0.0, 'g', -1), "0");
        assert_eq!(float_text(-2.5, 'f', -1), "-2.5");
        assert_eq!(float_text(f64::NEG_INFINITY, 'f', -1), "-Inf");
    }

    #[test]
    fn fixed_precisions_round_as_cty_numbers_do() {
        // cty's 512-bit 3.145 lies below 3.145, 2.675 and 0.35 too; 0.25 is exact (to even)
        assert_eq!(float_text(3.145, 'f', 2), "3.14");
        assert_eq!(float_text(2.675, 'f', 2), "2.67");
        assert_eq!(float_text(0.25, 'f', 1), "0.2");
        assert_eq!(float_text(0.5, 'f', 0), "0");
        assert_eq!(float_text(1.5, 'f', 0), "2");
        assert_eq!(float_text(0.35, 'f', 1), "0.3");
        assert_eq!(float_text(123456789.0, 'e', 6), "1.234568e+08");
        assert_eq!(float_text(123456789.0, 'f', 6), "123456789.000000");
        assert_eq!(float_text(1e-7, 'G', -1), "1E-07");
        assert_eq!(float_text(1.5, 'E', 6), "1.500000E+00");
        assert_eq!(float_text(3.14159, 'g', 3), "3.14");
        assert_eq!(float_text(0.0, 'e', 6), "0.000000e+00");
        assert_eq!(float_text(0.6, 'f', 0), "1");
        assert_eq!(float_text(9.99, 'f', 1), "10.0");
        assert_eq!(format_float_g(12345678901.0, 10), "1.23456789e+10");
        assert_eq!(format_float_g(1.0, 10), "1");
    }
}
