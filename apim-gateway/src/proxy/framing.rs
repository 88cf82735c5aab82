//! HTTP/1.1 message framing on the backend side (RFC 9112 §6 and §7.1): how long a response
//! body is, and the chunked transfer coding, decoded from a read buffer.
//!
//! The decoder works on whatever bytes have arrived: it returns the data it can, or asks for
//! more, so the body can be streamed chunk by chunk without buffering a whole message.

use std::io;

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size line (with chunk extensions) or trailer section accepted.
const MAX_LINE: usize = 4096;
/// Largest trailer section accepted (trailers are read and dropped).
const MAX_TRAILERS: usize = 16 << 10;

/// How the end of a response body is found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    /// This many bytes (`Content-Length`).
    Length(u64),
    /// Chunked transfer coding.
    Chunked,
    /// Until the backend closes the connection (no length given); not reusable.
    UntilClose,
}

/// An [`io::ErrorKind::InvalidData`] error: what the backend sent is not valid HTTP/1.1.
pub(crate) fn invalid(msg: impl Into<crate::body::BoxError>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

/// The framing of a response (RFC 9112 §6.3) to a HEAD request or not; `status` and the raw
/// `Transfer-Encoding` / `Content-Length` values as received. A response with both, or with
/// conflicting or malformed lengths, is refused: it is how response smuggling looks. So is any
/// transfer coding but a lone `chunked` (as nginx does): the gateway decodes only chunked, and
/// `Transfer-Encoding` is hop-by-hop, so a `gzip` coding would reach the client still applied
/// with nothing saying so.
pub fn response_framing<'a>(
    head_request: bool,
    status: u16,
    transfer_encoding: impl Iterator<Item = &'a [u8]>,
    content_length: impl Iterator<Item = &'a [u8]>,
) -> io::Result<Framing> {
    if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        return Ok(Framing::Empty);
    }
    let mut codings = 0;
    for v in transfer_encoding {
        for coding in v.split(|b| *b == b',') {
            let coding = coding.trim_ascii();
            if coding.is_empty() {
                continue;
            }
            codings += 1;
            if !coding.eq_ignore_ascii_case(b"chunked") || codings > 1 {
                return Err(invalid(
                    "unsupported Transfer-Encoding from the backend (only chunked)",
                ));
            }
        }
    }
    let te_seen = codings > 0;
    let mut length: Option<u64> = None;
    for v in content_length {
        for n in v.split(|b| *b == b',') {
            let n =
                parse_decimal(n.trim_ascii()).ok_or_else(|| invalid("invalid Content-Length"))?;
            if length.is_some_and(|l| l != n) {
                return Err(invalid("conflicting Content-Length values"));
            }
            length = Some(n);
        }
    }
    match (te_seen, length) {
        (true, Some(_)) => Err(invalid(
            "both Transfer-Encoding and Content-Length in a response",
        )),
        (true, None) => Ok(Framing::Chunked),
        (false, Some(0)) => Ok(Framing::Empty),
        (false, Some(n)) => Ok(Framing::Length(n)),
        (false, None) => Ok(Framing::UntilClose),
    }
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u64::from(b - b'0'))
    })
}

/// Where the chunked decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunked {
    /// Before a chunk-size line.
    Size,
    /// Inside a chunk's data, this many bytes left.
    Data(u64),
    /// After a chunk's data: its CRLF.
    DataEnd,
    /// After the last chunk: the trailer section, this many bytes of it read.
    Trailers(usize),
    /// The message ended.
    Done,
}

/// What the decoder made of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// Body bytes.
    Data(Bytes),
    /// More input is needed.
    NeedMore,
    /// The body ended (trailers, if any, were consumed).
    End,
}

impl Chunked {
    /// Decodes from `buf` (consuming what it uses), at most `max` data bytes at a time.
    pub fn decode(&mut self, buf: &mut BytesMut, max: usize) -> io::Result<Decoded> {
        loop {
            match *self {
                Chunked::Size => {
                    let Some(line) = take_line(buf, MAX_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    let size = line
                        .split(|b| *b == b';')
                        .next()
                        .unwrap_or(&[])
                        .trim_ascii();
                    let size = parse_hex(size).ok_or_else(|| invalid("invalid chunk size"))?;
                    *self = if size == 0 {
                        Chunked::Trailers(0)
                    } else {
                        Chunked::Data(size)
                    };
                }
                Chunked::Data(left) => {
                    if buf.is_empty() {
                        return Ok(Decoded::NeedMore);
                    }
                    let n = usize::try_from(left)
                        .unwrap_or(usize::MAX)
                        .min(buf.len())
                        .min(max);
                    let left = left - n as u64;
                    *self = if left == 0 {
                        Chunked::DataEnd
                    } else {
                        Chunked::Data(left)
                    };
                    return Ok(Decoded::Data(buf.split_to(n).freeze()));
                }
                Chunked::DataEnd => {
                    if buf.len() < 2 {
                        return Ok(Decoded::NeedMore);
                    }
                    if &buf[..2] != b"\r\n" {
                        return Err(invalid("chunk data not followed by CRLF"));
                    }
                    buf.advance(2);
                    *self = Chunked::Size;
                }
                Chunked::Trailers(read) => {
                    let Some(line) = take_line(buf, MAX_LINE)? else {
                        return Ok(Decoded::NeedMore);
                    };
                    if line.is_empty() {
                        *self = Chunked::Done;
                        return Ok(Decoded::End);
                    }
                    let read = read + line.len() + 2;
                    if read > MAX_TRAILERS {
                        return Err(invalid("trailer section too large"));
                    }
                    *self = Chunked::Trailers(read);
                }
                Chunked::Done => return Ok(Decoded::End),
            }
        }
    }
}

/// The next CRLF-terminated line of `buf` (without the CRLF), consumed; `None` when no
/// complete line has arrived yet. A bare LF ends a line too (RFC 9112 §2.2).
fn take_line(buf: &mut BytesMut, max: usize) -> io::Result<Option<Bytes>> {
    match buf.iter().position(|b| *b == b'\n') {
        Some(i) => {
            let mut line = buf.split_to(i + 1);
            line.truncate(i);
            if line.last() == Some(&b'\r') {
                line.truncate(i - 1);
            }
            Ok(Some(line.freeze()))
        }
        None if buf.len() > max => Err(invalid("line too long in chunked body")),
        None => Ok(None),
    }
}

fn parse_hex(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 15 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, b| {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => return None,
        };
        Some(acc << 4 | u64::from(d))
    })
}

/// Appends the chunk header for `len` data bytes (`{len:x}\r\n`) to `out`.
pub(crate) fn chunk_header(out: &mut Vec<u8>, len: usize) {
    use std::io::Write as _;
    let _ = write!(out, "{len:x}\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framing(head: bool, status: u16, te: &[&str], cl: &[&str]) -> io::Result<Framing> {
        response_framing(
            head,
            status,
            te.iter().map(|s| s.as_bytes()),
            cl.iter().map(|s| s.as_bytes()),
        )
    }

    #[test]
    fn framing_follows_rfc_9112() {
        assert_eq!(framing(true, 200, &[], &["10"]).unwrap(), Framing::Empty);
        assert_eq!(framing(false, 204, &[], &[]).unwrap(), Framing::Empty);
        assert_eq!(framing(false, 304, &[], &["10"]).unwrap(), Framing::Empty);
        assert_eq!(
            framing(false, 200, &[], &["10"]).unwrap(),
            Framing::Length(10)
        );
        assert_eq!(
            framing(false, 200, &[], &["10, 10"]).unwrap(),
            Framing::Length(10)
        );
        assert_eq!(framing(false, 200, &[], &["0"]).unwrap(), Framing::Empty);
        assert_eq!(
            framing(false, 200, &["Chunked"], &[]).unwrap(),
            Framing::Chunked
        );
        assert_eq!(framing(false, 200, &[], &[]).unwrap(), Framing::UntilClose);
        for (te, cl) in [
            (&["chunked"][..], &["5"][..]),
            (&["gzip, chunked"][..], &[][..]),
            (&["chunked, gzip"][..], &[][..]),
            (&["chunked", "chunked"][..], &[][..]),
            (&["identity"][..], &[][..]),
            (&[][..], &["5", "6"][..]),
            (&[][..], &["-1"][..]),
            (&[][..], &["1e3"][..]),
            (&[][..], &[""][..]),
            (&[][..], &["99999999999999999999"][..]),
        ] {
            let e = framing(false, 200, te, cl).unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{te:?} {cl:?}");
        }
    }

    fn decode_all(input: &[u8], split: usize) -> io::Result<Vec<u8>> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for piece in input.chunks(split.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match state.decode(&mut buf, 3)? {
                    Decoded::Data(d) => out.extend_from_slice(&d),
                    Decoded::NeedMore => break,
                    Decoded::End => return Ok(out),
                }
            }
        }
        Err(io::Error::from(io::ErrorKind::UnexpectedEof))
    }

    #[test]
    fn chunked_decodes_across_any_split() {
        let msg = b"5;ext=1\r\nhello\r\n1\r\n \r\nA\r\n0123456789\r\n0\r\nx-trailer: 1\r\n\r\n";
        for split in 1..msg.len() {
            assert_eq!(
                decode_all(msg, split).unwrap(),
                b"hello 0123456789",
                "split {split}"
            );
        }
        assert_eq!(decode_all(b"0\r\n\r\n", 1).unwrap(), b"");
        // a bare LF ends a size or trailer line (RFC 9112 §2.2), not chunk data
        assert_eq!(decode_all(b"3\nabc\r\n0\n\n", 2).unwrap(), b"abc");
        assert!(decode_all(b"3\r\nabc\n0\r\n\r\n", 2).is_err());
    }

    #[test]
    fn chunked_refuses_malformed_input() {
        for bad in [
            &b"zz\r\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhelloXX0\r\n\r\n",
            b"\r\nhello\r\n",
            b"10000000000000000\r\n",
        ] {
            assert!(
                decode_all(bad, 4).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let long = vec![b'1'; MAX_LINE + 2];
        assert!(decode_all(&long, long.len()).is_err());
        assert!(
            decode_all(b"1\r\na\r\n", 7).is_err(),
            "ends early: no last chunk"
        );
    }

    #[test]
    fn chunk_header_is_hex() {
        let mut v = Vec::new();
        chunk_header(&mut v, 255);
        assert_eq!(v, b"ff\r\n");
    }
}
