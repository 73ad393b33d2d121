//! The Sentinel form of `store.redis_url`.
//!
//! ```text
//! redis+sentinel://[user:password@]host1[:port],host2[:port],.../<master_name>[?db=N&sentinel_username=U&sentinel_password=P]
//! ```
//!
//! The hosts are Redis Sentinels (port 26379 when omitted), `master_name` is the name the
//! sentinels monitor (`sentinel monitor <master_name> ...`). `user:password` authenticate to
//! the Redis primary (and replicas); the sentinels themselves are reached without
//! credentials unless `sentinel_username` / `sentinel_password` are given. `db` selects the
//! database on the primary (0 when omitted). User, password and query values are
//! percent-decoded (`%40` for `@`, `%2C` for `,`).
//!
//! It is parsed here, without any Redis dependency, so that `--check-config` reports a bad
//! URL with the same parser the store connects with.

use std::fmt;

/// The scheme that selects Sentinel discovery.
pub const SENTINEL_URL_SCHEME: &str = "redis+sentinel://";
/// The port of a sentinel whose host names none (Sentinel's default).
pub const DEFAULT_SENTINEL_PORT: u16 = 26379;

/// A parsed `redis+sentinel://` URL. `Debug` redacts both passwords.
#[derive(Clone, PartialEq, Eq)]
pub struct SentinelUrl {
    /// The sentinels to ask for the primary, as `(host, port)`, in the URL's order.
    pub sentinels: Vec<(String, u16)>,
    /// The name the sentinels monitor the primary under.
    pub master_name: String,
    /// Database on the primary.
    pub db: i64,
    /// ACL user for the primary.
    pub username: Option<String>,
    /// Password for the primary.
    pub password: Option<String>,
    /// ACL user for the sentinels.
    pub sentinel_username: Option<String>,
    /// Password for the sentinels.
    pub sentinel_password: Option<String>,
}

impl fmt::Debug for SentinelUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "[redacted]");
        f.debug_struct("SentinelUrl")
            .field("sentinels", &self.sentinels)
            .field("master_name", &self.master_name)
            .field("db", &self.db)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("sentinel_username", &self.sentinel_username)
            .field("sentinel_password", &redacted(&self.sentinel_password))
            .finish()
    }
}

/// Why a `redis+sentinel://` URL could not be read. Messages name the expected form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SentinelUrlError {
    /// The URL does not start with `redis+sentinel://`.
    #[error("a sentinel url starts with {SENTINEL_URL_SCHEME}")]
    Scheme,
    /// No sentinel host before the `/`.
    #[error(
        "no sentinel hosts: expected redis+sentinel://host1:26379,host2:26379,host3:26379/<master_name>"
    )]
    NoSentinels,
    /// A host entry is empty or malformed.
    #[error("sentinel host {0:?} is not host[:port]")]
    Host(String),
    /// A port is not a number in 1..=65535.
    #[error("sentinel port {0:?} is not a port number (1-65535)")]
    Port(String),
    /// The path does not name the monitored primary.
    #[error("no master name: expected redis+sentinel://hosts/<master_name>")]
    NoMasterName,
    /// The master name holds characters Sentinel does not use in names.
    #[error("master name {0:?} may only hold letters, digits, '-', '_' and '.'")]
    MasterName(String),
    /// `db` is not a non-negative integer.
    #[error("db {0:?} is not a database number (0, 1, ...)")]
    Db(String),
    /// An unknown query parameter.
    #[error("unknown parameter {0:?} (known: db, sentinel_username, sentinel_password)")]
    Parameter(String),
    /// A `%` escape is not two hex digits or does not decode to UTF-8.
    #[error("bad percent escape in {0}")]
    Escape(&'static str),
}

impl SentinelUrl {
    /// Tells whether `url` asks for Sentinel discovery (its scheme is `redis+sentinel`).
    pub fn is_sentinel_url(url: &str) -> bool {
        url.trim()
            .get(..SENTINEL_URL_SCHEME.len())
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SENTINEL_URL_SCHEME))
    }

    /// Parses a `redis+sentinel://` URL (the form is in the module docs).
    ///
    /// # Errors
    /// A [`SentinelUrlError`] naming the first problem found.
    pub fn parse(url: &str) -> Result<SentinelUrl, SentinelUrlError> {
        if !Self::is_sentinel_url(url) {
            return Err(SentinelUrlError::Scheme);
        }
        let rest = &url.trim()[SENTINEL_URL_SCHEME.len()..];
        let (authority, path_and_query) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hosts) = match authority.rsplit_once('@') {
            Some((userinfo, hosts)) => (Some(userinfo), hosts),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                (
                    non_empty(percent_decode(user, "user")?),
                    password
                        .map(|password| percent_decode(password, "password"))
                        .transpose()?
                        .and_then(non_empty),
                )
            }
        };
        let sentinels = parse_hosts(hosts)?;
        let (path, query) = path_and_query
            .split_once('?')
            .unwrap_or((path_and_query, ""));
        let master_name = path.trim_end_matches('/');
        if master_name.is_empty() {
            return Err(SentinelUrlError::NoMasterName);
        }
        let valid_name = master_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !valid_name {
            return Err(SentinelUrlError::MasterName(master_name.to_owned()));
        }
        let mut parsed = SentinelUrl {
            sentinels,
            master_name: master_name.to_owned(),
            db: 0,
            username,
            password,
            sentinel_username: None,
            sentinel_password: None,
        };
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value, "a query value")?;
            match key {
                "db" => {
                    parsed.db = value
                        .parse::<u32>()
                        .map(i64::from)
                        .map_err(|_| SentinelUrlError::Db(value))?;
                }
                "sentinel_username" => parsed.sentinel_username = non_empty(value),
                "sentinel_password" => parsed.sentinel_password = non_empty(value),
                _ => return Err(SentinelUrlError::Parameter(key.to_owned())),
            }
        }
        Ok(parsed)
    }
}

fn parse_hosts(hosts: &str) -> Result<Vec<(String, u16)>, SentinelUrlError> {
    if hosts.trim().is_empty() {
        return Err(SentinelUrlError::NoSentinels);
    }
    hosts
        .split(',')
        .map(|entry| {
            let entry = entry.trim();
            // `[::1]:26379` for IPv6; otherwise the last `:` separates the port.
            let (host, port) = if let Some(bracketed) = entry.strip_prefix('[') {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or_else(|| SentinelUrlError::Host(entry.to_owned()))?;
                match after {
                    "" => (host, None),
                    _ => (
                        host,
                        Some(
                            after
                                .strip_prefix(':')
                                .ok_or_else(|| SentinelUrlError::Host(entry.to_owned()))?,
                        ),
                    ),
                }
            } else {
                match entry.rsplit_once(':') {
                    Some((host, port)) => (host, Some(port)),
                    None => (entry, None),
                }
            };
            let host_is_valid = !host.is_empty()
                && !host
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '/' | '@' | '?' | '[' | ']'));
            if !host_is_valid {
                return Err(SentinelUrlError::Host(entry.to_owned()));
            }
            let port = match port {
                None => DEFAULT_SENTINEL_PORT,
                Some(port) => port
                    .parse::<u16>()
                    .ok()
                    .filter(|port| *port != 0)
                    .ok_or_else(|| SentinelUrlError::Port(port.to_owned()))?,
            };
            Ok((host.to_owned(), port))
        })
        .collect()
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn percent_decode(text: &str, what: &'static str) -> Result<String, SentinelUrlError> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = text
                .get(index + 1..index + 3)
                .ok_or(SentinelUrlError::Escape(what))?;
            let byte = u8::from_str_radix(hex, 16).map_err(|_| SentinelUrlError::Escape(what))?;
            decoded.push(byte);
            index += 3;
        } else {
            decoded.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(decoded).map_err(|_| SentinelUrlError::Escape(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_gives_hosts_master_credentials_and_db() {
        let url = SentinelUrl::parse(
            "redis+sentinel://app:p%40ss@s1:26379,s2,10.0.0.3:26380/mymaster?db=2&sentinel_password=sp",
        )
        .expect("valid url");
        assert_eq!(
            url.sentinels,
            vec![
                ("s1".to_owned(), 26379),
                ("s2".to_owned(), DEFAULT_SENTINEL_PORT),
                ("10.0.0.3".to_owned(), 26380)
            ]
        );
        assert_eq!(url.master_name, "mymaster");
        assert_eq!(url.db, 2);
        assert_eq!(url.username.as_deref(), Some("app"));
        assert_eq!(url.password.as_deref(), Some("p@ss"));
        assert_eq!(url.sentinel_username, None);
        assert_eq!(url.sentinel_password.as_deref(), Some("sp"));
        let debug = format!("{url:?}");
        assert!(
            !debug.contains("p@ss") && !debug.contains("\"sp\""),
            "{debug}"
        );
    }

    #[test]
    fn a_password_without_user_and_ipv6_hosts_are_read() {
        let url = SentinelUrl::parse("redis+sentinel://:secret@[::1]:26379,[::1]/m").expect("ok");
        assert_eq!(url.username, None);
        assert_eq!(url.password.as_deref(), Some("secret"));
        assert_eq!(
            url.sentinels,
            vec![("::1".to_owned(), 26379), ("::1".to_owned(), 26379)]
        );
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        let cases = [
            ("redis://h:6379", SentinelUrlError::Scheme),
            ("redis+sentinel:///m", SentinelUrlError::NoSentinels),
            ("redis+sentinel://h1:26379", SentinelUrlError::NoMasterName),
            ("redis+sentinel://h1:26379/", SentinelUrlError::NoMasterName),
            (
                "redis+sentinel://h1:0/m",
                SentinelUrlError::Port("0".to_owned()),
            ),
            (
                "redis+sentinel://h1:x/m",
                SentinelUrlError::Port("x".to_owned()),
            ),
            (
                "redis+sentinel://h1,,h2/m",
                SentinelUrlError::Host(String::new()),
            ),
            (
                "redis+sentinel://h1/m/x",
                SentinelUrlError::MasterName("m/x".to_owned()),
            ),
            (
                "redis+sentinel://h1/m?db=-1",
                SentinelUrlError::Db("-1".to_owned()),
            ),
            (
                "redis+sentinel://h1/m?timeout=3",
                SentinelUrlError::Parameter("timeout".to_owned()),
            ),
            (
                "redis+sentinel://u:%zz@h1/m",
                SentinelUrlError::Escape("password"),
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(SentinelUrl::parse(url), Err(expected), "{url}");
        }
    }

    #[test]
    fn the_scheme_is_recognised_case_insensitively_and_only_it() {
        assert!(SentinelUrl::is_sentinel_url("REDIS+SENTINEL://h/m"));
        assert!(!SentinelUrl::is_sentinel_url("redis://h:6379"));
        assert!(!SentinelUrl::is_sentinel_url("redis+sentinel:"));
    }
}
