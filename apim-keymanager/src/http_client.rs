//! The HTTP client the Key Manager's remote parts share (remote JWKS, introspection, user
//! checks): hyper-util's pooled client over http or https (rustls, webpki roots), HTTP/1.1.

use http_body_util::Full;

/// The client type.
pub(crate) type HttpClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    Full<bytes::Bytes>,
>;

/// A new client.
pub(crate) fn https_client() -> HttpClient {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .build();
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build(https)
}
