//! `--probe URL`: the health check of container images that have no shell and no curl.
//!
//! A plain HTTP/1.1 GET over TCP, enough for the services' own `/healthz` and `/readyz`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// How long each step of a probe may take (connect, send, read the status line).
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Why a probe failed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not `http://host[:port][/path]`.
    #[error("not an http:// URL: {0}")]
    Url(String),
    /// The host name did not resolve.
    #[error("cannot resolve {host}")]
    Resolve {
        /// The host and port asked for.
        host: String,
        /// The resolver's failure.
        #[source]
        source: std::io::Error,
    },
    /// No connection, or the exchange failed or timed out.
    #[error("request failed")]
    Io(#[from] std::io::Error),
    /// The answer is not an HTTP status line.
    #[error("not an HTTP answer")]
    Malformed,
    /// The server answered with a status other than 2xx.
    #[error("answered {0}")]
    Status(u16),
}

/// GETs `url` (`http://host[:port][/path]`) and returns the status code when it is 2xx.
///
/// # Errors
/// [`ProbeError`] for a bad URL, a failed connection or exchange, or a non-2xx answer.
pub fn probe(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::Url(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(ProbeError::Url(url.to_owned()));
    }
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| !port.is_empty() && port.bytes().all(|byte| byte.is_ascii_digit()))
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .map_err(|source| ProbeError::Resolve {
            host: with_port.clone(),
            source,
        })?
        .collect();
    let mut last_error = std::io::Error::other("no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => return exchange(stream, authority, path, timeout),
            Err(error) => last_error = error,
        }
    }
    Err(ProbeError::Io(last_error))
}

fn exchange(
    mut stream: TcpStream,
    host: &str,
    path: &str,
    timeout: Duration,
) -> Result<u16, ProbeError> {
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // One write: `write!` on the socket would send each formatted piece as its own segment.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: switchboard-probe\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    // The status line fits in the first read of any real server; read until it is complete.
    let mut answer = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    while !answer.contains(&b'\n') && answer.len() < 4096 {
        let read = stream.read(&mut chunk)?;
        if read == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..read]);
    }
    let line = answer.split(|byte| *byte == b'\n').next().unwrap_or(&[]);
    let status = std::str::from_utf8(line)
        .ok()
        .filter(|line| line.starts_with("HTTP/1."))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or(ProbeError::Malformed)?;
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(ProbeError::Status(status))
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::thread;

    use super::*;

    /// A one-shot server that answers `reply` and returns the request it read.
    fn serve_once(reply: &'static str) -> (String, thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            // The whole request head, so closing never resets the connection over unread
            // bytes (the client would then see a reset instead of the reply).
            let mut request = Vec::new();
            let mut chunk = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                let read = stream.read(&mut chunk).unwrap();
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&chunk[..read]);
            }
            stream.write_all(reply.as_bytes()).unwrap();
            String::from_utf8_lossy(&request).into_owned()
        });
        (format!("http://{addr}"), handle)
    }

    #[test]
    fn a_2xx_answer_passes_and_the_request_names_path_and_host() {
        let (base, server) = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
        assert_eq!(
            probe(&format!("{base}/healthz"), PROBE_TIMEOUT).unwrap(),
            200
        );
        let request = server.join().unwrap();
        assert!(
            request.starts_with("GET /healthz HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(request.contains("Host: 127.0.0.1:"), "{request}");
    }

    #[test]
    fn other_statuses_and_garbage_fail() {
        let (base, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n");
        assert!(matches!(
            probe(&format!("{base}/readyz"), PROBE_TIMEOUT),
            Err(ProbeError::Status(503))
        ));
        server.join().unwrap();
        let (base, server) = serve_once("SSH-2.0-OpenSSH\r\n");
        assert!(matches!(
            probe(&base, PROBE_TIMEOUT),
            Err(ProbeError::Malformed)
        ));
        server.join().unwrap();
    }

    #[test]
    fn bad_urls_and_closed_ports_fail() {
        assert!(matches!(
            probe("https://example.org/", PROBE_TIMEOUT),
            Err(ProbeError::Url(_))
        ));
        assert!(matches!(
            probe("http:///x", PROBE_TIMEOUT),
            Err(ProbeError::Url(_))
        ));
        let closed = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(probe(&format!("http://{addr}/"), PROBE_TIMEOUT).is_err());
    }
}
