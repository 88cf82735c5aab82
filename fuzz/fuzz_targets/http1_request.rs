//! The native HTTP/1.1 server's request-head reader on arbitrary client bytes, fed in two
//! pieces as reads deliver them. Nothing panics; a head it serves becomes a request whose
//! fields are the head's (or, refused by the `http` types, every byte is put back for hyper);
//! a partial head stays partial until complete; what follows a head stays in the buffer.
//!
//! Run with: `bash fuzz/run.sh http1_request` (from the workspace root).
#![no_main]

use apim_gateway::http1::request_head::{parse, Parsed, Spans, MAX_FIELDS};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, input)) = data.split_first() else {
        return;
    };
    let split = usize::from(split).min(input.len());
    let max_head = 512;
    let mut spans: Spans = [[0; 4]; MAX_FIELDS];
    // the first piece alone: partial, or the same answer as the whole
    let first = parse(&input[..split], max_head, &mut spans);
    let whole = parse(input, max_head, &mut spans);
    match (&first, &whole) {
        (Parsed::Native(a), Parsed::Native(b)) => assert_eq!(a.is_head(), b.is_head()),
        (Parsed::Other, Parsed::Other) | (Parsed::Partial, _) => {}
        (a, b) => panic!("{a:?} from a prefix, then {b:?}"),
    }
    let Parsed::Native(head) = whole else {
        return;
    };
    let mut buf = BytesMut::from(input);
    match head.into_request(&mut buf, &spans) {
        Some(req) => {
            assert!(buf.len() < input.len(), "the head was taken off");
            assert!(input.ends_with(&buf), "what follows the head stays");
            assert!(req.uri().path().starts_with('/'));
            assert!(req.headers().len() <= MAX_FIELDS);
        }
        None => assert_eq!(&buf[..], input, "every byte is back for hyper"),
    }
});
