//! A minimal HTTP/1.1 client for the callbacks: one connection per request, like a node that
//! posts rarely. Plain `http://` only.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::header::{CONTENT_TYPE, HOST};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Posts `body` as JSON to `url` and returns the status; errors are one-line texts.
pub(crate) async fn post_json(url: &str, body: String, timeout: Duration) -> Result<u16, String> {
    match tokio::time::timeout(timeout, post(url, body)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no response within {timeout:?}")),
    }
}

async fn post(url: &str, body: String) -> Result<u16, String> {
    let uri: hyper::Uri = url
        .parse()
        .map_err(|error| format!("bad url {url}: {error}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("only http:// callbacks are supported, not {url}"));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("no host in {url}"))?
        .clone();
    let address = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let stream = TcpStream::connect(&address)
        .await
        .map_err(|error| format!("connect {address}: {error}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("handshake: {error}"))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let request = Request::post(path)
        .header(HOST, authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|error| format!("request: {error}"))?;
    let exchange = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|error| format!("send: {error}"))?;
        let status = response.status().as_u16();
        // Read the body so the server sees the exchange complete; its content is not needed.
        let _ = response.into_body().collect().await;
        Ok(status)
    };
    // The connection future drives the socket; it ends when the exchange does or fails.
    tokio::select! {
        result = exchange => result,
        ended = connection => match ended {
            Ok(()) => Err("connection closed before the response".to_owned()),
            Err(error) => Err(format!("connection: {error}")),
        },
    }
}
