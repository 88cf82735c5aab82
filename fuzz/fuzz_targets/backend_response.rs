//! The gateway's backend HTTP/1.1 client on arbitrary backend answers: response-head parsing
//! (fed in two pieces, as reads deliver it) and chunked body decoding. Nothing panics; a
//! parsed head was split off the input; decoded data is never more than the input; the
//! fields kept as they arrived (`parse_head` with `keep_fields`) are the ones parsed into
//! the header map otherwise.
//!
//! Run with: `bash fuzz/run.sh backend_response` (from the workspace root).
#![no_main]

use apim_gateway::proxy::response_head::{parse_head, parse_response_head};
use apim_gateway::proxy::framing::{Chunked, Decoded, Framing};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, input)) = data.split_first() else {
        return;
    };
    let (head_request, upgrade) = (flags & 1 != 0, flags & 2 != 0);
    let split = usize::from(flags >> 2).min(input.len());

    let mut buf = BytesMut::from(&input[..split]);
    let first = parse_response_head(&mut buf, head_request, upgrade);
    let parsed = match first {
        Ok(Some(x)) => Some(x),
        Ok(None) => {
            buf.extend_from_slice(&input[split..]);
            parse_response_head(&mut buf, head_request, upgrade).ok().flatten()
        }
        Err(_) => None,
    };
    let Some((parts, framing, _reusable)) = parsed else {
        return;
    };
    assert!(buf.len() < input.len(), "the head was split off");
    let mut kept = BytesMut::from(input);
    if let Ok(Some(head)) = parse_head(&mut kept, head_request, upgrade, true) {
        assert_eq!(head.parts.status, parts.status);
        match head.fields {
            Some(fields) => assert_eq!(fields.to_header_map().unwrap(), parts.headers),
            None => assert_eq!(head.parts.headers, parts.headers),
        }
    }
    if head_request || parts.status.as_u16() == 204 || parts.status.as_u16() == 304 {
        assert_eq!(framing, Framing::Empty);
    }
    if framing == Framing::Chunked {
        let total = buf.len();
        let mut state = Chunked::Size;
        let mut out = 0usize;
        while let Ok(Decoded::Data(d)) = state.decode(&mut buf, 1 << 16) {
            assert!(!d.is_empty());
            out += d.len();
        }
        assert!(out <= total);
    }
});
