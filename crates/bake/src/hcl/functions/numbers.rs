//! Arithmetic and comparison: cty's number functions (`add`, `modulo`, `ceil`, `log`,
//! `parseint`, …).

use super::{Failure, Outcome, arg, number_arg, whole_number};
use crate::types::Type;
use crate::value::{Value, denoise};

fn two(args: &[Value]) -> Result<(f64, f64), Failure> {
    Ok((number_arg(args, 0)?, number_arg(args, 1)?))
}

/// `absolute(num)`.
pub(super) fn absolute(args: &[Value]) -> Outcome {
    Ok(Value::Number(number_arg(args, 0)?.abs()))
}

/// `add(a, b)`.
pub(super) fn add(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    let sum = a + b;
    if sum.is_nan() {
        return Err(Failure::call("can't compute sum of opposing infinities"));
    }
    Ok(Value::Number(denoise(sum)))
}

/// `subtract(a, b)`.
pub(super) fn subtract(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    let difference = a - b;
    if difference.is_nan() {
        return Err(Failure::call("can't subtract infinity from itself"));
    }
    Ok(Value::Number(denoise(difference)))
}

/// `multiply(a, b)`.
pub(super) fn multiply(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    let product = a * b;
    if product.is_nan() {
        return Err(Failure::call("can't multiply zero by infinity"));
    }
    Ok(Value::Number(denoise(product)))
}

/// `divide(a, b)`: dividing by zero gives an infinity, as big.Float does.
pub(super) fn divide(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    let quotient = a / b;
    if quotient.is_nan() {
        return Err(Failure::call(
            "can't divide zero by zero or infinity by infinity",
        ));
    }
    Ok(Value::Number(denoise(quotient)))
}

/// `modulo(a, b)`: the remainder of truncated division (sign of `a`); `a` when `b` is zero.
pub(super) fn modulo(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    if a.is_infinite() || b.is_infinite() {
        // cty multiplies to get an infinity of the right sign
        let product = a * b;
        if product.is_nan() {
            return Err(Failure::call("can't use modulo with zero and infinity"));
        }
        return Ok(Value::Number(product));
    }
    if b == 0.0 {
        return Ok(Value::Number(a));
    }
    Ok(Value::Number(denoise(a - b * (a / b).trunc())))
}

/// `greaterthan(a, b)`.
pub(super) fn greater_than(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    Ok(Value::Bool(a > b))
}

/// `greaterthanorequalto(a, b)`.
pub(super) fn greater_than_or_equal(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    Ok(Value::Bool(a >= b))
}

/// `lessthan(a, b)`.
pub(super) fn less_than(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    Ok(Value::Bool(a < b))
}

/// `lessthanorequalto(a, b)`.
pub(super) fn less_than_or_equal(args: &[Value]) -> Outcome {
    let (a, b) = two(args)?;
    Ok(Value::Bool(a <= b))
}

/// `negate(num)`.
pub(super) fn negate(args: &[Value]) -> Outcome {
    Ok(Value::Number(-number_arg(args, 0)?))
}

fn numbers(args: &[Value]) -> Result<Vec<f64>, Failure> {
    if args.is_empty() {
        return Err(Failure::call("must pass at least one number"));
    }
    (0..args.len()).map(|i| number_arg(args, i)).collect()
}

/// `min(numbers...)`.
pub(super) fn min(args: &[Value]) -> Outcome {
    Ok(Value::Number(
        numbers(args)?.into_iter().fold(f64::INFINITY, f64::min),
    ))
}

/// `max(numbers...)`.
pub(super) fn max(args: &[Value]) -> Outcome {
    Ok(Value::Number(
        numbers(args)?.into_iter().fold(f64::NEG_INFINITY, f64::max),
    ))
}

/// `int(num)`: truncates towards zero.
pub(super) fn int(args: &[Value]) -> Outcome {
    let n = number_arg(args, 0)?;
    if n.is_infinite() {
        // cty panics on this; HCL reports the panic
        return Err(Failure::call(
            "panic in function implementation: runtime error: invalid memory address or nil pointer dereference",
        ));
    }
    // + 0.0: big.Int has no negative zero
    Ok(Value::Number(n.trunc() + 0.0))
}

/// `ceil(num)`.
pub(super) fn ceil(args: &[Value]) -> Outcome {
    Ok(Value::Number(number_arg(args, 0)?.ceil() + 0.0))
}

/// `floor(num)`.
pub(super) fn floor(args: &[Value]) -> Outcome {
    Ok(Value::Number(number_arg(args, 0)?.floor() + 0.0))
}

/// A float64 result as cty makes a number of it: NaN makes `big.Float` panic, which HCL
/// reports.
fn not_nan(n: f64) -> Outcome {
    if n.is_nan() {
        return Err(Failure::call(
            "panic in function implementation: Float.SetFloat64(NaN)",
        ));
    }
    Ok(Value::Number(n))
}

/// `log(num, base)`, in float64 as cty computes it.
pub(super) fn log(args: &[Value]) -> Outcome {
    let (num, base) = two(args)?;
    not_nan(num.ln() / base.ln())
}

/// `pow(num, power)`, in float64 as cty computes it.
pub(super) fn pow(args: &[Value]) -> Outcome {
    let (num, power) = two(args)?;
    not_nan(num.powf(power))
}

/// `signum(num)`: -1, 0 or 1; the number must be whole (cty reads it as a Go int).
pub(super) fn signum(args: &[Value]) -> Outcome {
    let n = whole_number(number_arg(args, 0)?).map_err(Failure::call)?;
    Ok(Value::Number(n.signum() as f64))
}

/// `parseint(number, base)`: a string of digits in base 2 to 62, as Go's
/// `big.Int.SetString` reads it (optional sign; up to base 36 letters in either case,
/// above it lowercase before uppercase).
pub(super) fn parse_int(args: &[Value]) -> Outcome {
    let text = match arg(args, 0) {
        Value::String(text) => text.as_str(),
        other => {
            let ty = Type::of(other).friendly_name();
            return Err(Failure::arg(
                0,
                format!("first argument must be a string, not {ty}"),
            ));
        }
    };
    let base = number_arg(args, 1)?;
    let base = whole_number(base).map_err(|m| Failure::arg(1, m))?;
    if !(2..=62).contains(&base) {
        return Err(Failure::arg(
            1,
            "base must be a whole number between 2 and 62 inclusive",
        ));
    }
    let cannot = || {
        Failure::arg(
            0,
            format!(
                "cannot parse {} as a base {base} integer",
                crate::types::go_quote(text)
            ),
        )
    };
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() {
        return Err(cannot());
    }
    let mut value = 0f64;
    for c in digits.bytes() {
        let digit = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'a'..=b'z' => u32::from(c - b'a') + 10,
            b'A'..=b'Z' if base <= 36 => u32::from(c - b'A') + 10,
            b'A'..=b'Z' => u32::from(c - b'A') + 36,
            _ => return Err(cannot()),
        };
        if i64::from(digit) >= base {
            return Err(cannot());
        }
        value = value * base as f64 + f64::from(digit);
    }
    Ok(Value::Number(if negative { -value } else { value }))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{b, fails, n, ok, s};
    use crate::value::{Value, number_to_string};

    #[test]
    fn decimal_arithmetic_reads_as_cty_prints_it() {
        // cty's 512-bit numbers have no f64 rounding noise
        assert_eq!(ok("add", vec![n(0.1), n(0.2)]), n(0.3));
        assert_eq!(ok("multiply", vec![n(0.1), n(3.0)]), n(0.3));
        assert_eq!(ok("add", vec![n(0.1), n(0.7)]), n(0.8));
        let Value::Number(third) = ok("divide", vec![n(1.0), n(3.0)]) else {
            panic!("not a number")
        };
        assert_eq!(number_to_string(third), "0.3333333333333333");
        let Value::Number(zero) = ok("multiply", vec![n(0.0), n(-1.0)]) else {
            panic!("not a number")
        };
        assert_eq!(number_to_string(zero), "-0");
        let nan = "panic in function implementation: Float.SetFloat64(NaN)";
        assert_eq!(
            fails("pow", vec![n(-1.0), n(1.5)]),
            format!("Call to function \"pow\" failed: {nan}.")
        );
        assert_eq!(
            fails("log", vec![n(-1.0), n(2.0)]),
            format!("Call to function \"log\" failed: {nan}.")
        );
    }

    #[test]
    fn arithmetic_matches_cty() {
        assert_eq!(ok("absolute", vec![n(-3.0)]), n(3.0));
        assert_eq!(ok("add", vec![n(1.0), n(2.0)]), n(3.0));
        assert_eq!(ok("subtract", vec![n(1.0), n(2.0)]), n(-1.0));
        assert_eq!(ok("multiply", vec![n(2.0), n(2.5)]), n(5.0));
        assert_eq!(ok("divide", vec![n(10.0), n(4.0)]), n(2.5));
        assert_eq!(ok("divide", vec![n(1.0), n(0.0)]), n(f64::INFINITY));
        assert_eq!(
            fails("divide", vec![n(0.0), n(0.0)]),
            "Call to function \"divide\" failed: can't divide zero by zero or infinity by infinity."
        );
        assert_eq!(ok("modulo", vec![n(7.0), n(0.0)]), n(7.0));
        assert_eq!(ok("modulo", vec![n(-7.0), n(3.0)]), n(-1.0));
        assert_eq!(ok("modulo", vec![n(7.5), n(2.0)]), n(1.5));
        assert_eq!(ok("negate", vec![n(2.0)]), n(-2.0));
        assert_eq!(ok("add", vec![s("1"), n(2.0)]), n(3.0));
        assert_eq!(
            fails("add", vec![n(1.0), Value::Null]),
            "Invalid value for \"b\" parameter: argument must not be null."
        );
    }

    #[test]
    fn comparisons_match_cty() {
        assert_eq!(ok("greaterthan", vec![n(2.0), n(1.0)]), b(true));
        assert_eq!(ok("greaterthanorequalto", vec![n(1.0), n(1.0)]), b(true));
        assert_eq!(ok("lessthan", vec![n(1.0), s("2")]), b(true));
        assert_eq!(ok("lessthanorequalto", vec![n(3.0), n(2.0)]), b(false));
        assert_eq!(ok("max", vec![n(1.0), n(5.0), n(3.0)]), n(5.0));
        assert_eq!(ok("max", vec![n(1.5), s("7")]), n(7.0));
        assert_eq!(ok("min", vec![n(1.0), n(-5.0)]), n(-5.0));
        assert_eq!(
            fails("min", vec![]),
            "Call to function \"min\" failed: must pass at least one number."
        );
        assert_eq!(
            fails("min", vec![Value::Null]),
            "Invalid value for \"numbers\" parameter: argument must not be null."
        );
    }

    #[test]
    fn rounding_and_powers_match_cty() {
        assert_eq!(ok("int", vec![n(-3.7)]), n(-3.0));
        assert_eq!(ok("int", vec![n(3.7)]), n(3.0));
        assert_eq!(ok("ceil", vec![n(1.2)]), n(2.0));
        let Value::Number(zero) = ok("ceil", vec![n(-0.5)]) else {
            panic!("not a number")
        };
        assert!(zero.is_sign_positive());
        assert_eq!(ok("floor", vec![n(-1.2)]), n(-2.0));
        assert_eq!(ok("ceil", vec![n(f64::INFINITY)]), n(f64::INFINITY));
        assert_eq!(ok("log", vec![n(8.0), n(2.0)]), n(3.0));
        assert_eq!(ok("log", vec![n(0.0), n(10.0)]), n(f64::NEG_INFINITY));
        assert_eq!(ok("pow", vec![n(2.0), n(10.0)]), n(1024.0));
        assert_eq!(ok("pow", vec![n(0.5), n(2.0)]), n(0.25));
        assert_eq!(ok("signum", vec![n(-5.0)]), n(-1.0));
        assert_eq!(ok("signum", vec![n(0.0)]), n(0.0));
        assert_eq!(ok("signum", vec![n(3.0)]), n(1.0));
        assert_eq!(
            fails("signum", vec![n(-0.5)]),
            "Call to function \"signum\" failed: value must be a whole number, between -9223372036854775808 and 9223372036854775807."
        );
    }

    #[test]
    fn parseint_matches_cty() {
        assert_eq!(ok("parseint", vec![s("ff"), n(16.0)]), n(255.0));
        assert_eq!(ok("parseint", vec![s("FF"), n(16.0)]), n(255.0));
        assert_eq!(ok("parseint", vec![s("-101"), n(2.0)]), n(-5.0));
        assert_eq!(ok("parseint", vec![s("zz"), n(36.0)]), n(1295.0));
        assert_eq!(ok("parseint", vec![s("Zz"), n(62.0)]), n(3817.0));
        assert_eq!(ok("parseint", vec![s("+7"), n(10.0)]), n(7.0));
        assert_eq!(
            fails("parseint", vec![s("12"), n(1.0)]),
            "Invalid value for \"base\" parameter: base must be a whole number between 2 and 62 inclusive."
        );
        assert_eq!(
            fails("parseint", vec![s("1.5"), n(10.0)]),
            "Invalid value for \"number\" parameter: cannot parse \"1.5\" as a base 10 integer."
        );
        assert_eq!(
            fails("parseint", vec![n(10.0), n(10.0)]),
            "Invalid value for \"number\" parameter: first argument must be a string, not number."
        );
        for bad in ["", "0x10", "1_000", "-"] {
            assert!(
                fails("parseint", vec![s(bad), n(16.0)]).contains("cannot parse"),
                "{bad}"
            );
        }
    }
}
