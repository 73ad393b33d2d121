//! CORS on the HTTP API (`gateway.cors_allowed_origins`): allowed origins get the headers,
//! preflight is answered, other origins and the default configuration get none.

use std::net::SocketAddr;

use gateway::test_util::{FRAME_TIMEOUT, TEST_API_KEY, TestGateway, within};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PANEL: &str = "https://panel.example.com";

/// Sends `method path` with `headers` and an empty body; returns the status and the
/// lower-cased response head.
async fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("tcp connects");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: 0\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("request is sent");
    let mut response = Vec::new();
    within(FRAME_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .expect("response is read");
    let text = String::from_utf8_lossy(&response).into_owned();
    let head = text.split_once("\r\n\r\n").map_or(&*text, |(head, _)| head);
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status code");
    (status, head.to_ascii_lowercase())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == name).then(|| value.trim())
    })
}

const BROWSER_PATHS: [(&str, &str); 7] = [
    ("GET", "/api/ws/stats"),
    ("GET", "/api/ws/streams"),
    ("GET", "/api/ws/metrics/summary"),
    ("GET", "/api/ws/metrics/history?metric=cpu&range=1h"),
    ("GET", "/api/ws/devices"),
    ("POST", "/api/ws/publish"),
    ("POST", "/api/ws/nodes/edge-1/commands"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_origin_gets_cors_headers_and_its_preflight_answered() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.cors_allowed_origins =
            vec![PANEL.to_owned(), "http://localhost:3000".into()];
    })
    .await;
    for (method, path) in BROWSER_PATHS {
        let (_, head) = exchange(gateway.addr, method, path, &[("Origin", PANEL)]).await;
        assert_eq!(
            header(&head, "access-control-allow-origin"),
            Some(PANEL),
            "{method} {path}: {head}"
        );

        let (status, head) = exchange(
            gateway.addr,
            "OPTIONS",
            path,
            &[
                ("Origin", PANEL),
                ("Access-Control-Request-Method", method),
                (
                    "Access-Control-Request-Headers",
                    "authorization,content-type",
                ),
            ],
        )
        .await;
        assert_eq!(status, 200, "preflight of {path}: {head}");
        assert_eq!(header(&head, "access-control-allow-origin"), Some(PANEL));
        let methods = header(&head, "access-control-allow-methods").unwrap_or_default();
        assert!(methods.contains(&method.to_ascii_lowercase()), "{head}");
        let allowed = header(&head, "access-control-allow-headers").unwrap_or_default();
        assert!(
            allowed.contains("authorization") && allowed.contains("content-type"),
            "{head}"
        );
    }
    // The second configured origin is allowed too; a request carrying the API key works.
    let key = format!("Bearer {TEST_API_KEY}");
    let (status, head) = exchange(
        gateway.addr,
        "POST",
        "/api/ws/nodes/nobody/commands",
        &[("Origin", "http://localhost:3000"), ("Authorization", &key)],
    )
    .await;
    assert_eq!(status, 400, "empty body: {head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("http://localhost:3000")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_star_allows_every_origin() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.cors_allowed_origins = vec!["*".into()];
    })
    .await;
    let (_, head) = exchange(
        gateway.addr,
        "GET",
        "/api/ws/stats",
        &[("Origin", "https://anywhere.example.org")],
    )
    .await;
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("*"),
        "{head}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disallowed_origin_gets_no_cors_headers() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.cors_allowed_origins = vec![PANEL.to_owned()];
    })
    .await;
    let (status, head) = exchange(
        gateway.addr,
        "GET",
        "/api/ws/stats",
        &[("Origin", "https://evil.example.com")],
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    let (_, head) = exchange(
        gateway.addr,
        "OPTIONS",
        "/api/ws/stats",
        &[
            ("Origin", "https://evil.example.com"),
            ("Access-Control-Request-Method", "GET"),
        ],
    )
    .await;
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_configuration_sends_no_cors_headers() {
    let gateway = TestGateway::start_memory(|_| {}).await;
    for (method, path) in BROWSER_PATHS {
        let (_, head) = exchange(gateway.addr, method, path, &[("Origin", PANEL)]).await;
        assert!(!head.contains("access-control-"), "{method} {path}: {head}");
    }
    let (status, head) = exchange(
        gateway.addr,
        "OPTIONS",
        "/api/ws/stats",
        &[("Origin", PANEL), ("Access-Control-Request-Method", "GET")],
    )
    .await;
    assert_eq!(status, 405, "no preflight handling: {head}");
    assert!(!head.contains("access-control-"), "{head}");
}

#[test]
fn origins_that_are_not_origins_fail_validation() {
    let mut config = gateway::test_util::test_config();
    config.gateway.cors_allowed_origins = vec![PANEL.to_owned(), "*".into()];
    let problems = config.validate().expect_err("* with others is refused");
    assert!(
        problems.iter().any(|p| p.contains("only entry")),
        "{problems:?}"
    );
    config.gateway.cors_allowed_origins = vec!["panel.example.com".into(), "https://a/b".into()];
    let problems = config.validate().expect_err("bad origins are refused");
    assert_eq!(
        problems
            .iter()
            .filter(|p| p.contains("cors_allowed_origins"))
            .count(),
        2,
        "{problems:?}"
    );
    config.gateway.cors_allowed_origins = vec!["*".into()];
    assert!(config.validate().is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_needs_no_credentials_when_operations_are_private() {
    let gateway = TestGateway::start_memory(|config| {
        config.gateway.private_operations = true;
        config.gateway.cors_allowed_origins = vec![PANEL.to_owned()];
    })
    .await;
    // Browsers send no Authorization on a preflight: it must not be refused.
    let (status, head) = exchange(
        gateway.addr,
        "OPTIONS",
        "/api/ws/stats",
        &[
            ("Origin", PANEL),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some(PANEL));
    // The refusal itself carries the CORS header, so the panel can read its error.
    let (status, head) = exchange(gateway.addr, "GET", "/api/ws/stats", &[("Origin", PANEL)]).await;
    assert_eq!(status, 401, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some(PANEL));
    let key = format!("Bearer {TEST_API_KEY}");
    let (status, head) = exchange(
        gateway.addr,
        "GET",
        "/api/ws/stats",
        &[("Origin", PANEL), ("Authorization", &key)],
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some(PANEL));
}
