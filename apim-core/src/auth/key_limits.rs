//! The usage limits an API key carries (`permittedIP`, `permittedReferer`): one parser for
//! both the issuer (which refuses a bad list with 400 naming the field) and the validator
//! (which skips an entry it cannot use: such an entry permits nothing), and the wildcard
//! matcher for referer patterns.
//!
//! Matching runs on the gateway's worker threads for every request made with a limited key,
//! so it is bounded twice: the matcher takes time linear in the referer per pattern segment
//! (no backtracking: see [`wildcard_match`]), and the issuer caps the patterns' number, length
//! and stars ([`MAX_REFERER_PATTERNS`], [`MAX_PATTERN_BYTES`], [`MAX_PATTERN_STARS`]).

use std::net::IpAddr;

use crate::ApimError;

/// Most entries in `permittedIP`.
pub const MAX_IP_ENTRIES: usize = 64;
/// Most patterns in `permittedReferer`.
pub const MAX_REFERER_PATTERNS: usize = 16;
/// Longest referer pattern, in bytes.
pub const MAX_PATTERN_BYTES: usize = 256;
/// Longest pattern the validator matches in a key issued before [`MAX_PATTERN_BYTES`].
pub const MAX_LEGACY_PATTERN_BYTES: usize = 512;
/// Most `*` in one referer pattern.
pub const MAX_PATTERN_STARS: usize = 4;
/// Longest `permittedIP` / `permittedReferer` value, in bytes.
pub const MAX_LIST_BYTES: usize = 2048;
/// Longest `Referer` the validator matches (longer ones match no pattern); browsers send at
/// most 4096 bytes.
pub const MAX_REFERER_BYTES: usize = 4096;

/// The field names, as the Developer Portal's `additionalProperties` and the key's claims
/// spell them.
pub const PERMITTED_IP: &str = "permittedIP";
/// See [`PERMITTED_IP`].
pub const PERMITTED_REFERER: &str = "permittedReferer";

/// One `permittedIP` entry: an address, or a CIDR range (`address/prefix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The network address (host bits as given).
    pub addr: IpAddr,
    /// The prefix length (32 / 128 for a single address).
    pub prefix: u8,
}

impl IpRange {
    /// Parses `a.b.c.d`, `a.b.c.d/n` (n ≤ 32), an IPv6 address or `v6/n` (n ≤ 128).
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (addr, bits) = match entry.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (entry, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("'{entry}' is not an IP address or CIDR range"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match bits {
            None => max,
            Some(b) => match b.parse::<u8>() {
                Ok(n) if n <= max && !b.starts_with('+') => n,
                _ => return Err(format!("'{entry}' has an invalid prefix length (0-{max})")),
            },
        };
        Ok(IpRange { addr, prefix })
    }

    /// Whether `ip` is in the range (an IPv4 range never holds an IPv6 address, nor the
    /// reverse).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(i) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(i) & mask
            }
            _ => false,
        }
    }
}

/// The entries of a comma-separated list, trimmed, empty ones left out.
fn entries(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|e| !e.is_empty())
}

/// Checks a referer pattern against the caps.
pub fn check_referer_pattern(p: &str) -> Result<(), String> {
    if p.len() > MAX_PATTERN_BYTES {
        return Err(format!(
            "a pattern is longer than {MAX_PATTERN_BYTES} bytes"
        ));
    }
    if p.bytes().filter(|&b| b == b'*').count() > MAX_PATTERN_STARS {
        return Err(format!(
            "'{p}' has more than {MAX_PATTERN_STARS} '*' wildcards"
        ));
    }
    if p.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(format!("'{p}' contains a space or a control character"));
    }
    Ok(())
}

/// Validates a `permittedIP` value as a key is issued: at most [`MAX_IP_ENTRIES`]
/// comma-separated IPv4/IPv6 addresses or CIDR ranges. 400 naming `field` otherwise.
pub fn validate_permitted_ip(field: &str, list: &str) -> Result<(), ApimError> {
    if list.len() > MAX_LIST_BYTES {
        return Err(ApimError::validation(
            field,
            format!("longer than {MAX_LIST_BYTES} bytes"),
        ));
    }
    let mut n = 0;
    for e in entries(list) {
        IpRange::parse(e).map_err(|m| ApimError::validation(field, m))?;
        n += 1;
    }
    if n > MAX_IP_ENTRIES {
        return Err(ApimError::validation(
            field,
            format!("more than {MAX_IP_ENTRIES} entries"),
        ));
    }
    Ok(())
}

/// Validates a `permittedReferer` value as a key is issued: at most [`MAX_REFERER_PATTERNS`]
/// comma-separated patterns, each within [`check_referer_pattern`]'s caps. 400 naming
/// `field` otherwise.
pub fn validate_permitted_referer(field: &str, list: &str) -> Result<(), ApimError> {
    if list.len() > MAX_LIST_BYTES {
        return Err(ApimError::validation(
            field,
            format!("longer than {MAX_LIST_BYTES} bytes"),
        ));
    }
    let mut n = 0;
    for p in entries(list) {
        check_referer_pattern(p).map_err(|m| ApimError::validation(field, m))?;
        n += 1;
    }
    if n > MAX_REFERER_PATTERNS {
        return Err(ApimError::validation(
            field,
            format!("more than {MAX_REFERER_PATTERNS} patterns"),
        ));
    }
    Ok(())
}

/// Whether `ip` is in one of the ranges of a `permittedIP` list. Entries that do not parse
/// (a key issued before the list was validated) permit nothing.
pub fn ip_permitted(list: &str, ip: IpAddr) -> bool {
    entries(list)
        .take(MAX_IP_ENTRIES)
        .filter_map(|e| IpRange::parse(e).ok())
        .any(|r| r.contains(ip))
}

/// Whether `referer` matches one pattern of a `permittedReferer` list (`*` matches any run
/// of bytes). A key issued before the caps were enforced keeps working: its first
/// [`MAX_REFERER_PATTERNS`] patterns of up to [`MAX_LEGACY_PATTERN_BYTES`] count, whatever
/// their stars (matching is linear); a referer over [`MAX_REFERER_BYTES`] matches nothing.
pub fn referer_permitted(list: &str, referer: &str) -> bool {
    referer.len() <= MAX_REFERER_BYTES
        && entries(list)
            .take(MAX_REFERER_PATTERNS)
            .filter(|p| p.len() <= MAX_LEGACY_PATTERN_BYTES)
            .any(|p| wildcard_match(p.as_bytes(), referer.as_bytes()))
}

/// Whether `input` matches `pattern`, where `*` matches any run of bytes (possibly empty)
/// and every other byte itself.
///
/// Without backtracking: the pattern is its literal pieces between the stars; the first must
/// start the input, the last must end it, and each one between is taken at its leftmost
/// occurrence after the previous one. The leftmost occurrence is always a right choice (any
/// match placing a piece later can place it there instead, leaving more input for the rest),
/// so nothing is ever retried: the time is at most the input's length times the longest
/// piece, whatever the number of stars.
pub fn wildcard_match(pattern: &[u8], input: &[u8]) -> bool {
    let mut pieces = pattern.split(|&b| b == b'*');
    // `split` yields at least one piece; exactly one means no star at all
    let first = pieces.next().unwrap_or_default();
    let Some(last) = pieces.next_back() else {
        return pattern == input;
    };
    if input.len() < first.len() + last.len() || !input.starts_with(first) || !input.ends_with(last)
    {
        return false;
    }
    // the middle pieces must fit, in order, between the first and the last
    let mut rest = &input[first.len()..input.len() - last.len()];
    for piece in pieces {
        if piece.is_empty() {
            continue;
        }
        match find(rest, piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    true
}

/// The first position of `needle` (not empty) in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let (&head, tail) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from
            + haystack[from..=haystack.len() - needle.len()]
                .iter()
                .position(|&b| b == head)?;
        if haystack[at + 1..at + needle.len()] == *tail {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook recursive matcher (exponential on many stars): the reference.
    fn reference(p: &[u8], s: &[u8]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
            Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
        }
    }

    fn strings(alphabet: &[u8], max: usize) -> Vec<Vec<u8>> {
        let mut all = vec![Vec::new()];
        let mut frontier = vec![Vec::new()];
        for _ in 0..max {
            frontier = frontier
                .iter()
                .flat_map(|p: &Vec<u8>| {
                    alphabet.iter().map(move |&c| {
                        let mut v = p.clone();
                        v.push(c);
                        v
                    })
                })
                .collect();
            all.extend(frontier.iter().cloned());
        }
        all
    }

    #[test]
    fn agrees_with_the_reference_on_every_small_case() {
        let patterns = strings(b"ab*", 5);
        let inputs = strings(b"ab", 6);
        for p in &patterns {
            for s in &inputs {
                assert_eq!(
                    wildcard_match(p, s),
                    reference(p, s),
                    "{:?} {:?}",
                    String::from_utf8_lossy(p),
                    String::from_utf8_lossy(s)
                );
            }
        }
    }

    #[test]
    fn many_stars_on_a_long_input_are_fast() {
        let p = b"*a*a*a*a*a*a*a*a*b";
        let s = vec![b'a'; 4096];
        let t = std::time::Instant::now();
        for _ in 0..100 {
            assert!(!wildcard_match(p, &s));
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(1),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn ip_ranges() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(ip_permitted("10.0.0.0/8, 192.168.1.5", ip("10.1.2.3")));
        assert!(!ip_permitted("10.0.0.0/8, 192.168.1.5", ip("192.168.1.6")));
        assert!(ip_permitted("2001:db8::/32", ip("2001:db8::7")));
        assert!(!ip_permitted("2001:db8::/32", ip("2001:db9::7")));
        assert!(ip_permitted("0.0.0.0/0", ip("8.8.8.8")));
        assert!(!ip_permitted("0.0.0.0/0", ip("::1")));
        assert!(!ip_permitted("garbage, 1.2.3.4/99", ip("1.2.3.4")));
        for ok in [
            "1.2.3.4",
            "1.2.3.0/24",
            "::1",
            "fe80::/10",
            " 1.1.1.1 , 2.2.2.2/32 ",
        ] {
            assert!(validate_permitted_ip("permittedIP", ok).is_ok(), "{ok}");
        }
        for bad in [
            "1.2.3.4/33",
            "::1/129",
            "1.2.3",
            "example.com",
            "1.2.3.4/",
            "1.2.3.4/+8",
            "1.2.3.4/-1",
        ] {
            let e = validate_permitted_ip("permittedIP", bad).unwrap_err();
            assert!(
                matches!(e, ApimError::Validation { ref field, .. } if field == "permittedIP"),
                "{bad}"
            );
        }
        let many = vec!["1.1.1.1"; MAX_IP_ENTRIES + 1].join(",");
        assert!(validate_permitted_ip("permittedIP", &many).is_err());
    }

    #[test]
    fn referer_lists() {
        assert!(referer_permitted(
            "https://*.example.com/*",
            "https://app.example.com/x"
        ));
        assert!(!referer_permitted(
            "https://*.example.com/*",
            "https://evil.com/"
        ));
        assert!(validate_permitted_referer("r", "https://*.example.com/*, http://x/*").is_ok());
        for bad in [
            "*a*a*a*a*a",
            &"x".repeat(MAX_PATTERN_BYTES + 1),
            "a b",
            &vec!["a"; MAX_REFERER_PATTERNS + 1].join(","),
        ] {
            assert!(validate_permitted_referer("r", bad).is_err(), "{bad}");
        }
        // an old key's pattern over the star cap still matches (in linear time)
        assert!(referer_permitted("*a*a*a*a*a", "aaaaa"));
        assert!(!referer_permitted(
            "*a*a*a*a*a*a*a*a*b",
            &"a".repeat(MAX_REFERER_BYTES)
        ));
        assert!(!referer_permitted("*", &"a".repeat(MAX_REFERER_BYTES + 1)));
    }
}
