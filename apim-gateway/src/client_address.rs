//! The client's address behind trusted load balancers (`server.trusted_proxies`,
//! `gateway.trusted_proxies`): the rightmost `X-Forwarded-For` entry a trusted proxy did not
//! add itself. Everything left of it is whatever the client chose to send.

use std::net::{IpAddr, SocketAddr};

use apim_core::auth::key_limits::IpRange;

/// The client's address of a request from `peer`: the peer itself unless it is one of
/// `trusted`; then the rightmost `X-Forwarded-For` entry that is not a trusted proxy (or the
/// leftmost trusted one when all are). A malformed entry ends the walk: nothing left of it
/// can be believed.
pub fn client_ip(headers: &http::HeaderMap, peer: IpAddr, trusted: &[IpRange]) -> IpAddr {
    if !trusted.iter().any(|p| p.contains(peer)) {
        return peer;
    }
    let mut last_trusted = None;
    let entries = headers
        .get_all("x-forwarded-for")
        .iter()
        .rev()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.rsplit(','));
    for entry in entries {
        // some balancers write `address:port` (`[v6]:port`)
        let entry = entry.trim();
        let Some(ip) = entry
            .parse::<IpAddr>()
            .ok()
            .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        else {
            break;
        };
        if trusted.iter().any(|p| p.contains(ip)) {
            last_trusted = Some(ip);
            continue;
        }
        return ip;
    }
    last_trusted.unwrap_or(peer)
}

/// [`client_ip`] as a socket address for `ConnectInfo` (the peer's port when the peer is the
/// client, else 0).
pub fn client_address(
    headers: &http::HeaderMap,
    peer: SocketAddr,
    trusted: &[IpRange],
) -> SocketAddr {
    let ip = client_ip(headers, peer.ip(), trusted);
    if ip == peer.ip() {
        peer
    } else {
        SocketAddr::new(ip, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Behind a trusted load balancer the client is the rightmost `X-Forwarded-For` entry the
    /// balancer did not add itself; from any other peer the header is the client's own words.
    #[test]
    fn client_address_behind_trusted_proxies() {
        let lb = IpRange::parse("10.0.0.0/8").unwrap();
        let peer: std::net::SocketAddr = "10.1.2.3:4000".parse().unwrap();
        let ip = |xff: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in xff {
                h.append("x-forwarded-for", v.parse().unwrap());
            }
            client_address(&h, peer, &[lb]).ip().to_string()
        };
        assert_eq!(ip(&[]), "10.1.2.3");
        assert_eq!(ip(&["203.0.113.9"]), "203.0.113.9");
        // the client's forged entry is left of the one the balancer added
        assert_eq!(ip(&["1.1.1.1, 203.0.113.9"]), "203.0.113.9");
        assert_eq!(ip(&["1.1.1.1", "203.0.113.9, 10.9.9.9"]), "203.0.113.9");
        assert_eq!(ip(&["10.2.2.2"]), "10.2.2.2");
        assert_eq!(ip(&["1.1.1.1, junk"]), "10.1.2.3");
        assert_eq!(ip(&["203.0.113.9:5678"]), "203.0.113.9");
        assert_eq!(ip(&["[2001:db8::1]:443"]), "2001:db8::1");
    }
}
