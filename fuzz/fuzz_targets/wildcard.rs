//! The API-key referer wildcard matcher (`apim_core::auth::key_limits::wildcard_match`)
//! against the textbook recursive matcher on small inputs: they must agree. The input's
//! first byte says where the pattern ends; pattern and referer are kept small so the
//! (exponential) reference stays fast. Also: the matcher never panics on any size, and the
//! issue-time checks accept only patterns within the caps.
//!
//! Run with: `bash fuzz/run.sh wildcard` (from the workspace root).
#![no_main]

use apim_core::auth::key_limits::{
    referer_permitted, validate_permitted_referer, wildcard_match, MAX_PATTERN_STARS,
};
use libfuzzer_sys::fuzz_target;

fn reference(p: &[u8], s: &[u8]) -> bool {
    match p.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| reference(rest, &s[i..])),
        Some((c, rest)) => s.first() == Some(c) && reference(rest, &s[1..]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let at = usize::from(split).min(rest.len());
    let (pattern, input) = rest.split_at(at);
    let got = wildcard_match(pattern, input);
    if pattern.len() <= 12 && input.len() <= 24 {
        assert_eq!(got, reference(pattern, input), "{pattern:?} {input:?}");
    }
    if let (Ok(p), Ok(s)) = (std::str::from_utf8(pattern), std::str::from_utf8(input)) {
        let accepted = validate_permitted_referer("permittedReferer", p).is_ok();
        if accepted && !p.contains(',') {
            assert!(p.bytes().filter(|&b| b == b'*').count() <= MAX_PATTERN_STARS);
        }
        let _ = referer_permitted(p, s);
    }
});
