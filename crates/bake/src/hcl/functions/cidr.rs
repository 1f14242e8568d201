//! `cidrhost`, `cidrnetmask`, `cidrsubnet` and `cidrsubnets`, as go-cty-funcs computes
//! them with Go's `net` package and apparentlymart/go-cidr.
//!
//! Addresses are kept as Go keeps a `net.IP` (4 or 16 bytes, IPv4 in IPv6 form where Go
//! has it so), since that decides how results print.

use super::{Failure, Outcome, number_arg, string, string_arg, whole_number};
use crate::value::Value;

/// A Go `net.IP`: 4 or 16 bytes.
type Ip = Vec<u8>;

const V4_IN_V6_PREFIX: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// A Go `net.IPNet`; a None mask is Go's nil mask.
#[derive(Debug, Clone)]
struct IpNet {
    ip: Option<Ip>,
    mask: Option<Vec<u8>>,
}

/// Go's `IP.To4`.
fn to4(ip: &[u8]) -> Option<Ip> {
    match ip.len() {
        4 => Some(ip.to_vec()),
        16 if ip[..12] == V4_IN_V6_PREFIX => Some(ip[12..].to_vec()),
        _ => None,
    }
}

/// Go's `net.CIDRMask`.
fn cidr_mask(ones: i64, bits: i64) -> Option<Vec<u8>> {
    if (bits != 32 && bits != 128) || ones < 0 || ones > bits {
        return None;
    }
    let mut mask = vec![0u8; (bits / 8) as usize];
    let mut remaining = ones;
    for byte in &mut mask {
        if remaining >= 8 {
            *byte = 0xff;
            remaining -= 8;
        } else {
            *byte = !(0xffu8 >> remaining);
            remaining = 0;
        }
    }
    Some(mask)
}

/// Go's `IPMask.Size`: leading ones and total bits (0, 0 for a non-canonical mask).
fn mask_size(mask: &[u8]) -> (i64, i64) {
    let mut ones = 0i64;
    let mut seen_zero = false;
    for byte in mask {
        for bit in (0..8).rev() {
            if byte >> bit & 1 == 1 {
                if seen_zero {
                    return (0, 0);
                }
                ones += 1;
            } else {
                seen_zero = true;
            }
        }
    }
    (ones, mask.len() as i64 * 8)
}

/// Go's `IP.Mask`.
fn apply_mask(ip: &[u8], mask: &[u8]) -> Option<Ip> {
    let mut mask = mask;
    let mut ip = ip;
    if mask.len() == 16 && ip.len() == 4 && mask[..12].iter().all(|b| *b == 0xff) {
        mask = &mask[12..];
    }
    if mask.len() == 4 && ip.len() == 16 && ip[..12] == V4_IN_V6_PREFIX {
        ip = &ip[12..];
    }
    (ip.len() == mask.len()).then(|| ip.iter().zip(mask).map(|(a, m)| a & m).collect())
}

/// Go's `IP.String`.
fn ip_string(ip: &[u8]) -> String {
    if let Some(v4) = to4(ip) {
        return format!("{}.{}.{}.{}", v4[0], v4[1], v4[2], v4[3]);
    }
    if ip.len() != 16 {
        return "?".to_string();
    }
    let groups: Vec<u16> = ip
        .chunks(2)
        .map(|p| u16::from(p[0]) << 8 | u16::from(p[1]))
        .collect();
    // the longest run of two or more zero groups becomes "::" (the first one on a tie)
    let (mut best_start, mut best_len) = (usize::MAX, 0usize);
    let mut i = 0;
    while i < 8 {
        if groups[i] == 0 {
            let start = i;
            while i < 8 && groups[i] == 0 {
                i += 1;
            }
            if i - start > best_len && i - start >= 2 {
                best_start = start;
                best_len = i - start;
            }
        } else {
            i += 1;
        }
    }
    let mut out = String::new();
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            out.push_str("::");
            i += best_len;
            continue;
        }
        if !out.is_empty() && !out.ends_with(':') {
            out.push(':');
        }
        out.push_str(&format!("{:x}", groups[i]));
        i += 1;
    }
    out
}

/// Go's `networkNumberAndMask`.
fn network_and_mask(net: &IpNet) -> Option<(Ip, Vec<u8>)> {
    let ip = net.ip.as_ref()?;
    let ip = match to4(ip) {
        Some(v4) => v4,
        None if ip.len() == 16 => ip.clone(),
        None => return None,
    };
    let mask = net.mask.as_ref()?;
    let mask = match mask.len() {
        4 if ip.len() != 4 => return None,
        4 => mask.clone(),
        16 if ip.len() == 4 => mask[12..].to_vec(),
        16 => mask.clone(),
        _ => return None,
    };
    Some((ip, mask))
}

/// Go's `IPNet.String`.
fn net_string(net: &IpNet) -> String {
    let Some((ip, mask)) = network_and_mask(net) else {
        return "<nil>".to_string();
    };
    let (ones, bits) = mask_size(&mask);
    if bits == 0 && !mask.is_empty() {
        let hex: String = mask.iter().map(|b| format!("{b:02x}")).collect();
        return format!("{}/{hex}", ip_string(&ip));
    }
    format!("{}/{ones}", ip_string(&ip))
}

/// Go's `IPNet.Contains`.
fn net_contains(net: &IpNet, ip: &[u8]) -> bool {
    let Some((network, mask)) = network_and_mask(net) else {
        return false;
    };
    let ip = to4(ip).unwrap_or_else(|| ip.to_vec());
    ip.len() == network.len() && (0..ip.len()).all(|i| network[i] & mask[i] == ip[i] & mask[i])
}

/// Go's `net.ParseCIDR`, keeping only the network.
fn parse_cidr(text: &str) -> Result<IpNet, String> {
    let invalid = || format!("invalid CIDR address: {text}");
    let (address, prefix) = text.split_once('/').ok_or_else(invalid)?;
    let (ip16, bits): ([u8; 16], i64) = if let Ok(v4) = address.parse::<std::net::Ipv4Addr>() {
        (v4.to_ipv6_mapped().octets(), 32)
    } else if let Ok(v6) = address.parse::<std::net::Ipv6Addr>() {
        (v6.octets(), 128)
    } else {
        return Err(invalid());
    };
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) || prefix.len() > 8 {
        return Err(invalid());
    }
    let ones: i64 = prefix.parse().map_err(|_| invalid())?;
    let mask = cidr_mask(ones, bits).ok_or_else(invalid)?;
    Ok(IpNet {
        ip: apply_mask(&ip16, &mask),
        mask: Some(mask),
    })
}

fn ip_to_int(ip: &[u8]) -> u128 {
    ip.iter().fold(0u128, |n, b| n << 8 | u128::from(*b))
}

fn int_to_ip(value: u128, bits: usize) -> Ip {
    let bytes = value.to_be_bytes();
    bytes[16 - bits / 8..].to_vec()
}

/// [`insert_num`] for a number that is not negative.
fn insert_unsigned(ip: &[u8], num: u128, prefix_len: i64) -> Result<Ip, String> {
    let bits = ip.len() * 8;
    let overflow =
        || "panic in function implementation: runtime error: index out of range [-1]".to_string();
    let shift = u32::try_from(bits as i64 - prefix_len).map_err(|_| overflow())?;
    let shifted = if num == 0 {
        0
    } else {
        num.checked_shl(shift).ok_or_else(overflow)?
    };
    if num != 0 && shifted.checked_shr(shift) != Some(num) {
        return Err(overflow());
    }
    let value = ip_to_int(ip) | shifted;
    if bits < 128 && value >> bits != 0 {
        return Err(overflow());
    }
    Ok(int_to_ip(value, bits))
}

/// go-cidr's `insertNumIntoIP`: `num` placed to end at bit `prefix_len`, with Go's
/// `big.Int` semantics (a negative number ORs in two's complement and its magnitude is
/// kept); a result wider than the address makes Go panic, which HCL reports.
fn insert_num(ip: &[u8], num: i128, prefix_len: i64) -> Result<Ip, String> {
    let bits = ip.len() * 8;
    let overflow =
        || "panic in function implementation: runtime error: index out of range [-1]".to_string();
    let shift = u32::try_from(bits as i64 - prefix_len).map_err(|_| overflow())?;
    let base = ip_to_int(ip);
    let magnitude: u128 = if num >= 0 {
        let num = num as u128;
        let shifted = if num == 0 {
            0
        } else {
            num.checked_shl(shift).ok_or_else(overflow)?
        };
        if num != 0 && shifted.checked_shr(shift) != Some(num) {
            return Err(overflow());
        }
        base | shifted
    } else {
        // a | b for a negative b = -m is -(((m - 1) & !a) + 1) in two's complement
        let m = num.unsigned_abs();
        let m_shifted = m.checked_shl(shift).ok_or_else(overflow)?;
        if m_shifted.checked_shr(shift) != Some(m) {
            return Err(overflow());
        }
        ((m_shifted - 1) & !base) + 1
    };
    if bits < 128 && magnitude >> bits != 0 {
        return Err(overflow());
    }
    Ok(int_to_ip(magnitude, bits))
}

fn invalid_cidr(err: String) -> String {
    format!("invalid CIDR expression: {err}")
}

/// `cidrhost(prefix, hostnum)`: the address of host `hostnum` (negative: from the end).
pub(super) fn host(args: &[Value]) -> Outcome {
    let mut num = i128::from(whole_number(number_arg(args, 1)?).map_err(Failure::call)?);
    let network = parse_cidr(string_arg(args, 0)?).map_err(|e| Failure::call(invalid_cidr(e)))?;
    let (Some(ip), Some(mask)) = (network.ip, network.mask) else {
        return Err(Failure::call("invalid CIDR expression"));
    };
    let (parent_len, addr_len) = mask_size(&mask);
    let host_len = (addr_len - parent_len) as u32;
    let max_host: u128 = if host_len >= 128 {
        u128::MAX
    } else {
        (1u128 << host_len) - 1
    };
    let magnitude = if num < 0 {
        (-num - 1) as u128
    } else {
        num as u128
    };
    if magnitude > max_host {
        // cty prints the number after counting a negative one back from the end
        if num < 0 {
            num = max_host as i128 - magnitude as i128;
        }
        return Err(Failure::call(format!(
            "prefix of {parent_len} does not accommodate a host numbered {num}"
        )));
    }
    let host_number = if num < 0 {
        max_host - magnitude
    } else {
        magnitude
    };
    let bit_length = if to4(&ip).is_some() { 32 } else { 128 };
    let address = insert_unsigned(&ip, host_number, bit_length).map_err(Failure::call)?;
    Ok(string(ip_string(&address)))
}

/// `cidrnetmask(prefix)`: the network mask in dotted (or IPv6) form.
pub(super) fn netmask(args: &[Value]) -> Outcome {
    let network = parse_cidr(string_arg(args, 0)?).map_err(|e| Failure::call(invalid_cidr(e)))?;
    Ok(string(ip_string(
        network.mask.as_deref().unwrap_or_default(),
    )))
}

/// go-cidr's `Subnet`.
fn subnet_of(base: &IpNet, new_bits: i64, num: i64) -> Result<IpNet, String> {
    let (Some(ip), Some(mask)) = (&base.ip, &base.mask) else {
        return Err("invalid network".to_string());
    };
    let (parent_len, addr_len) = mask_size(mask);
    let new_prefix_len = parent_len + new_bits;
    if new_prefix_len > addr_len {
        return Err(format!(
            "insufficient address space to extend prefix of {parent_len} by {new_bits}"
        ));
    }
    // Go computes 1 << newBits in uint64, which is 0 from 64 bits on (and for negatives)
    let max_net_num: u64 = match u32::try_from(new_bits) {
        Ok(b) if b < 64 => (1u64 << b) - 1,
        _ => u64::MAX,
    };
    // go-cidr compares the magnitude's low 64 bits (`big.Int.Uint64`)
    if num.unsigned_abs() > max_net_num {
        return Err(format!(
            "prefix extension of {new_bits} does not accommodate a subnet numbered {num}"
        ));
    }
    Ok(IpNet {
        ip: Some(insert_num(ip, i128::from(num), new_prefix_len)?),
        mask: cidr_mask(new_prefix_len, addr_len),
    })
}

/// `cidrsubnet(prefix, newbits, netnum)`.
pub(super) fn subnet(args: &[Value]) -> Outcome {
    let new_bits = whole_number(number_arg(args, 1)?).map_err(Failure::call)?;
    let num = whole_number(number_arg(args, 2)?).map_err(Failure::call)?;
    let network = parse_cidr(string_arg(args, 0)?).map_err(|e| Failure::call(invalid_cidr(e)))?;
    if new_bits > 32 {
        return Err(Failure::call("may not extend prefix by more than 32 bits"));
    }
    let subnet = subnet_of(&network, new_bits, num).map_err(Failure::call)?;
    Ok(string(net_string(&subnet)))
}

/// go-cidr's `Inc` / `Dec` (on the 4-byte form of IPv4 addresses).
fn step(ip: &[u8], up: bool) -> Ip {
    let mut out = to4(ip).unwrap_or_else(|| ip.to_vec());
    for byte in out.iter_mut().rev() {
        if up {
            *byte = byte.wrapping_add(1);
            if *byte > 0 {
                break;
            }
        } else {
            *byte = byte.wrapping_sub(1);
            if *byte < 255 {
                break;
            }
        }
    }
    out
}

fn is_zero_address(ip: &[u8]) -> bool {
    to4(ip).map_or(ip.iter().all(|b| *b == 0) && ip.len() == 16, |v4| {
        v4 == [0, 0, 0, 0]
    })
}

/// go-cidr's `AddressRange`, the last address.
fn last_address(net: &IpNet) -> Option<Ip> {
    let first = net.ip.clone()?;
    let (prefix_len, _) = mask_size(net.mask.as_ref()?);
    let bits = first.len() as i64 * 8;
    let host_len = bits - prefix_len;
    if host_len <= 0 {
        return Some(first);
    }
    let host_mask = if host_len >= 128 {
        u128::MAX
    } else {
        (1u128 << host_len) - 1
    };
    Some(int_to_ip(ip_to_int(&first) | host_mask, bits as usize))
}

/// go-cidr's `PreviousSubnet`.
fn previous_subnet(net: &IpNet, prefix_len: i64) -> IpNet {
    let Some(ip) = &net.ip else {
        return IpNet {
            ip: None,
            mask: None,
        };
    };
    let start = to4(ip).unwrap_or_else(|| ip.clone());
    let mask = cidr_mask(prefix_len, start.len() as i64 * 8);
    let previous = step(&start, false);
    IpNet {
        ip: mask.as_ref().and_then(|m| apply_mask(&previous, m)),
        mask,
    }
}

/// go-cidr's `NextSubnet`: the next subnet and whether the address space rolled over.
fn next_subnet(net: &IpNet, prefix_len: i64) -> (IpNet, bool) {
    let Some(current_last) = last_address(net) else {
        return (
            IpNet {
                ip: None,
                mask: None,
            },
            true,
        );
    };
    let mask = cidr_mask(prefix_len, current_last.len() as i64 * 8);
    let current = IpNet {
        ip: mask.as_ref().and_then(|m| apply_mask(&current_last, m)),
        mask: mask.clone(),
    };
    let Some(last) = last_address(&current) else {
        return (
            IpNet {
                ip: None,
                mask: None,
            },
            true,
        );
    };
    let last = step(&last, true);
    let rolled_over = is_zero_address(&last);
    (
        IpNet {
            ip: mask.as_ref().and_then(|m| apply_mask(&last, m)),
            mask,
        },
        rolled_over,
    )
}

/// `cidrsubnets(prefix, newbits...)`: consecutive subnets of the given sizes.
pub(super) fn subnets(args: &[Value]) -> Outcome {
    let network = parse_cidr(string_arg(args, 0)?).map_err(|e| Failure::arg(0, invalid_cidr(e)))?;
    let start_prefix_len = network.mask.as_deref().map_or(0, |m| mask_size(m).0);
    let lengths = &args[1..];
    if lengths.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    let first = whole_number(number_arg(args, 1)?).map_err(|m| Failure::arg(1, m))?;
    let mut current = previous_subnet(&network, first + start_prefix_len);
    let address_bits = network.ip.as_ref().map_or(0, |ip| ip.len() as i64 * 8);
    let mut out = Vec::with_capacity(lengths.len());
    for i in 0..lengths.len() {
        let length = whole_number(number_arg(args, i + 1)?).map_err(|m| Failure::arg(i + 1, m))?;
        if length < 1 {
            return Err(Failure::arg(
                i + 1,
                "must extend prefix by at least one bit",
            ));
        }
        if length > 32 {
            return Err(Failure::arg(
                i + 1,
                "may not extend prefix by more than 32 bits",
            ));
        }
        let length = length + start_prefix_len;
        if length > address_bits {
            let protocol = match address_bits {
                32 => "IPv4",
                128 => "IPv6",
                _ => "IP",
            };
            return Err(Failure::arg(
                i + 1,
                format!(
                    "would extend prefix to {length} bits, which is too long for an {protocol} address"
                ),
            ));
        }
        let (next, rolled_over) = next_subnet(&current, length);
        if rolled_over
            || !next
                .ip
                .as_ref()
                .is_some_and(|ip| net_contains(&network, ip))
        {
            return Err(Failure::arg(
                i + 1,
                format!(
                    "not enough remaining address space for a subnet with a prefix of {length} bits after {}",
                    net_string(&current)
                ),
            ));
        }
        current = next;
        out.push(string(net_string(&current)));
    }
    Ok(Value::List(out))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{fails, n, ok, s, strs};

    fn call(name: &str, m: &str) -> String {
        format!("Call to function \"{name}\" failed: {m}.")
    }

    #[test]
    fn cidrhost_matches_buildx() {
        assert_eq!(
            ok("cidrhost", vec![s("10.0.0.0/8"), n(-1.0)]),
            s("10.255.255.255")
        );
        assert_eq!(ok("cidrhost", vec![s("10.0.0.0/8"), n(3.0)]), s("10.0.0.3"));
        assert_eq!(
            ok("cidrhost", vec![s("10.12.112.0/20"), n(16.0)]),
            s("10.12.112.16")
        );
        assert_eq!(ok("cidrhost", vec![s("fd00::/64"), n(5.0)]), s("fd00::5"));
        assert_eq!(
            ok("cidrhost", vec![s("::ffff:10.0.0.0/104"), n(1.0)]),
            s("0:1::ffff:a00:0")
        );
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.0/30"), n(4.0)]),
            call(
                "cidrhost",
                "prefix of 30 does not accommodate a host numbered 4"
            )
        );
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.0/30"), n(-5.0)]),
            call(
                "cidrhost",
                "prefix of 30 does not accommodate a host numbered -1"
            )
        );
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.0/8"), n(1.5)]),
            call(
                "cidrhost",
                "value must be a whole number, between -9223372036854775808 and 9223372036854775807"
            )
        );
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.0"), n(1.0)]),
            call(
                "cidrhost",
                "invalid CIDR expression: invalid CIDR address: 10.0.0.0"
            )
        );
        assert_eq!(
            fails("cidrhost", vec![s("10.0.0.300/8"), n(1.0)]),
            call(
                "cidrhost",
                "invalid CIDR expression: invalid CIDR address: 10.0.0.300/8"
            )
        );
    }

    #[test]
    fn cidrnetmask_and_cidrsubnet_match_buildx() {
        assert_eq!(ok("cidrnetmask", vec![s("10.0.0.0/12")]), s("255.240.0.0"));
        assert_eq!(
            ok("cidrnetmask", vec![s("fd00::/64")]),
            s("ffff:ffff:ffff:ffff::")
        );
        assert_eq!(
            ok("cidrsubnet", vec![s("10.0.0.0/8"), n(8.0), n(2.0)]),
            s("10.2.0.0/16")
        );
        assert_eq!(
            ok("cidrsubnet", vec![s("172.16.0.0/12"), n(4.0), n(2.0)]),
            s("172.18.0.0/16")
        );
        assert_eq!(
            ok("cidrsubnet", vec![s("fd00::/56"), n(8.0), n(3.0)]),
            s("fd00:0:0:3::/64")
        );
        assert_eq!(
            ok("cidrsubnet", vec![s("10.0.0.0/8"), n(-1.0), n(0.0)]),
            s("10.0.0.0/7")
        );
        // negative network numbers as buildx computes them (big.Int two's complement)
        assert_eq!(
            ok("cidrsubnet", vec![s("10.0.0.0/8"), n(4.0), n(-1.0)]),
            s("0.16.0.0/12")
        );
        assert_eq!(
            ok("cidrsubnet", vec![s("fd00::/64"), n(8.0), n(-1.0)]),
            s("::100:0:0:0/72")
        );
        assert_eq!(
            ok("cidrhost", vec![s("::/0"), n(-1.0)]),
            s("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(
            fails("cidrsubnet", vec![s("10.0.0.0/8"), n(25.0), n(2.0)]),
            call(
                "cidrsubnet",
                "insufficient address space to extend prefix of 8 by 25"
            )
        );
        assert_eq!(
            fails("cidrsubnet", vec![s("10.0.0.0/8"), n(33.0), n(2.0)]),
            call("cidrsubnet", "may not extend prefix by more than 32 bits")
        );
        assert_eq!(
            fails("cidrsubnet", vec![s("10.0.0.0/8"), n(2.0), n(4.0)]),
            call(
                "cidrsubnet",
                "prefix extension of 2 does not accommodate a subnet numbered 4"
            )
        );
    }

    #[test]
    fn cidrsubnets_matches_buildx() {
        assert_eq!(
            ok(
                "cidrsubnets",
                vec![s("10.0.0.0/8"), n(8.0), n(8.0), n(16.0)]
            ),
            strs(&["10.0.0.0/16", "10.1.0.0/16", "10.2.0.0/24"])
        );
        assert_eq!(
            ok(
                "cidrsubnets",
                vec![s("10.1.0.0/16"), n(4.0), n(4.0), n(8.0), n(4.0)]
            ),
            strs(&[
                "10.1.0.0/20",
                "10.1.16.0/20",
                "10.1.32.0/24",
                "10.1.48.0/20"
            ])
        );
        assert_eq!(
            ok(
                "cidrsubnets",
                vec![s("fd00:fd12:3456:7890::/56"), n(16.0), n(16.0)]
            ),
            strs(&["fd00:fd12:3456:7800::/72", "fd00:fd12:3456:7800:100::/72"])
        );
        assert_eq!(ok("cidrsubnets", vec![s("10.0.0.0/8")]), strs(&[]));
        assert_eq!(
            fails(
                "cidrsubnets",
                vec![s("10.0.0.0/30"), n(1.0), n(1.0), n(1.0)]
            ),
            "Invalid value for \"newbits\" parameter: not enough remaining address space for a subnet with a prefix of 31 bits after 10.0.0.2/31."
        );
        assert_eq!(
            fails("cidrsubnets", vec![s("10.1.2.3/8"), n(0.0)]),
            "Invalid value for \"newbits\" parameter: must extend prefix by at least one bit."
        );
        assert_eq!(
            fails("cidrsubnets", vec![s("10.0.0.0/8"), n(33.0)]),
            "Invalid value for \"newbits\" parameter: may not extend prefix by more than 32 bits."
        );
        assert_eq!(
            fails("cidrsubnets", vec![s("10.0.0.0/30"), n(3.0)]),
            "Invalid value for \"newbits\" parameter: would extend prefix to 33 bits, which is too long for an IPv4 address."
        );
        assert_eq!(
            fails("cidrsubnets", vec![s("nope"), n(3.0)]),
            "Invalid value for \"prefix\" parameter: invalid CIDR expression: invalid CIDR address: nope."
        );
    }
}
