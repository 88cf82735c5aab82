//! Field names as they arrive on the wire, matched to `http`'s constants for the common ones:
//! a length switch and a compare or two, where `HeaderName::from_bytes` first copies the name
//! into lower case and looks it up (≈ 140 instructions per name). Used for request heads (the
//! native HTTP/1.1 server) and response heads (the backend client).

use http::header::{self, HeaderName, InvalidHeaderName};

/// One common name: its usual spelling, its lower-case spelling, and the constant.
type Common = (&'static [u8], &'static [u8], HeaderName);

static LEN_4: [Common; 4] = [
    (b"Host", b"host", header::HOST),
    (b"Date", b"date", header::DATE),
    (b"ETag", b"etag", header::ETAG),
    (b"Vary", b"vary", header::VARY),
];
static LEN_6: [Common; 5] = [
    (b"Accept", b"accept", header::ACCEPT),
    (b"Cookie", b"cookie", header::COOKIE),
    (b"Origin", b"origin", header::ORIGIN),
    (b"Server", b"server", header::SERVER),
    (b"Pragma", b"pragma", header::PRAGMA),
];
static LEN_7: [Common; 1] = [(b"Referer", b"referer", header::REFERER)];
static LEN_8: [Common; 1] = [(b"Location", b"location", header::LOCATION)];
static LEN_10: [Common; 3] = [
    (b"Connection", b"connection", header::CONNECTION),
    (b"User-Agent", b"user-agent", header::USER_AGENT),
    (b"Set-Cookie", b"set-cookie", header::SET_COOKIE),
];
static LEN_12: [Common; 1] = [(b"Content-Type", b"content-type", header::CONTENT_TYPE)];
static LEN_13: [Common; 5] = [
    (b"Authorization", b"authorization", header::AUTHORIZATION),
    (b"Cache-Control", b"cache-control", header::CACHE_CONTROL),
    (b"Last-Modified", b"last-modified", header::LAST_MODIFIED),
    (b"Accept-Ranges", b"accept-ranges", header::ACCEPT_RANGES),
    (b"If-None-Match", b"if-none-match", header::IF_NONE_MATCH),
];
static LEN_14: [Common; 1] = [(b"Content-Length", b"content-length", header::CONTENT_LENGTH)];
static LEN_15: [Common; 2] = [
    (
        b"Accept-Encoding",
        b"accept-encoding",
        header::ACCEPT_ENCODING,
    ),
    (
        b"Accept-Language",
        b"accept-language",
        header::ACCEPT_LANGUAGE,
    ),
];
static LEN_16: [Common; 1] = [(
    b"Content-Encoding",
    b"content-encoding",
    header::CONTENT_ENCODING,
)];
static LEN_17: [Common; 1] = [(
    b"Transfer-Encoding",
    b"transfer-encoding",
    header::TRANSFER_ENCODING,
)];

/// The common names of `len` bytes.
fn of_len(len: usize) -> &'static [Common] {
    match len {
        4 => &LEN_4,
        6 => &LEN_6,
        7 => &LEN_7,
        8 => &LEN_8,
        10 => &LEN_10,
        12 => &LEN_12,
        13 => &LEN_13,
        14 => &LEN_14,
        15 => &LEN_15,
        16 => &LEN_16,
        17 => &LEN_17,
        _ => &[],
    }
}

/// The field name `name` as received: what `HeaderName::from_bytes` gives, found without it
/// for the usual and the lower-case spellings of common names.
pub(crate) fn field_name(name: &[u8]) -> Result<HeaderName, InvalidHeaderName> {
    for (usual, lower, constant) in of_len(name.len()) {
        if name == *usual || name == *lower {
            return Ok(constant.clone());
        }
    }
    HeaderName::from_bytes(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_names_are_the_parsed_ones() {
        let mut seen = 0;
        for len in 0..=64 {
            for (usual, lower, constant) in of_len(len) {
                assert_eq!(usual.len(), len);
                assert!(usual.eq_ignore_ascii_case(lower));
                for spelling in [*usual, *lower] {
                    assert_eq!(field_name(spelling).unwrap(), constant);
                    assert_eq!(HeaderName::from_bytes(spelling).unwrap(), constant);
                }
                seen += 1;
            }
        }
        assert_eq!(seen, 25);
        // other spellings and names still parse (or fail) as `from_bytes` does
        for name in [
            &b"CONTENT-TYPE"[..],
            b"content-Type",
            b"X-Custom",
            b"Dat",
            b"Dates",
            b"HOST",
            b"x-request-id",
        ] {
            assert_eq!(
                field_name(name).unwrap(),
                HeaderName::from_bytes(name).unwrap()
            );
        }
        assert!(field_name(b"bad name").is_err());
        assert!(field_name(b"Bad:Name").is_err());
        assert!(field_name(b"").is_err());
    }
}
