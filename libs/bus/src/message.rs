//! Messages as they travel the bus, and their headers.

use bytes::Bytes;

use crate::SubscribeError;

/// A message received from the bus.
#[derive(Debug, Clone)]
pub struct Message {
    /// The concrete subject the message was published to (never a wildcard pattern).
    pub subject: String,
    /// Where a reply should go, set when the message is a request.
    pub reply: Option<String>,
    /// Headers published with the message; empty when there were none.
    pub headers: Headers,
    /// The message body.
    pub payload: Bytes,
}

/// A small ordered list of header name/value pairs.
///
/// Names are case-sensitive. Over NATS the order is not preserved (the client stores headers
/// in a hash map), so never rely on it; look headers up with [`Headers::get`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// Returns an empty header list; it does not allocate until the first insert.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    /// Sets `name` to `value`, replacing every earlier value of `name`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let name = name.into();
        let Some(first) = self.0.iter().position(|(current, _)| *current == name) else {
            self.0.push((name, value.into()));
            return;
        };
        self.0[first].1 = value.into();
        // Later values of the same name can only come from `append`; they are replaced too.
        let mut index = first + 1;
        while index < self.0.len() {
            if self.0[index].0 == name {
                self.0.remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// Adds a value for `name`, keeping earlier values (NATS allows repeated headers).
    pub fn append(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// Returns the first value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(current, _)| current == name)
            .map(|(_, value)| value.as_str())
    }

    /// Iterates over `(name, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// Reports whether there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Returns the number of `(name, value)` pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Returns the first name that NATS would refuse, so both backends reject the same headers.
    ///
    /// The rules are the NATS header rules: a name is non-empty printable ASCII without `:`,
    /// and a value contains no CR or LF (either would break the wire framing).
    pub(crate) fn first_invalid_name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, value)| !is_valid_header_name(name) || value.contains(['\r', '\n']))
            .map(|(name, _)| name.as_str())
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(name, value)| (name.into(), value.into()))
                .collect(),
        )
    }
}

fn is_valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_graphic() && c != ':')
}

/// Why a subject and headers cannot be published; shared by publish, respond and request.
pub(crate) enum Unpublishable {
    Subject,
    Header(String),
}

/// Applies the same subject and header rules on every backend, so code that passes its
/// tests on the memory bus is not rejected by NATS in production (and the reverse).
pub(crate) fn check_publishable(subject: &str, headers: &Headers) -> Result<(), Unpublishable> {
    if !is_valid_publish_subject(subject) {
        return Err(Unpublishable::Subject);
    }
    match headers.first_invalid_name() {
        Some(name) => Err(Unpublishable::Header(name.to_owned())),
        None => Ok(()),
    }
}

/// Reports whether `subject` can be published to: dot-separated non-empty tokens, no
/// whitespace and no wildcard tokens.
///
/// This is stricter than the NATS client (which only rejects whitespace) on purpose: a
/// malformed subject is a bug, and both backends should surface it the same way.
fn is_valid_publish_subject(subject: &str) -> bool {
    !subject.is_empty()
        && !subject.contains(char::is_whitespace)
        && subject
            .split('.')
            .all(|token| !token.is_empty() && token != "*" && token != ">")
}

/// Checks a subscription's subject pattern and queue group with the same rules everywhere.
pub(crate) fn check_subscribable(
    subject: &str,
    queue_group: Option<&str>,
) -> Result<(), SubscribeError> {
    if !is_valid_subscribe_subject(subject) {
        return Err(SubscribeError::InvalidSubject {
            subject: subject.to_owned(),
        });
    }
    match queue_group {
        Some(name) if !is_valid_queue_group(name) => Err(SubscribeError::InvalidQueueGroup {
            queue_group: name.to_owned(),
        }),
        _ => Ok(()),
    }
}

/// Reports whether `pattern` can be subscribed to: a well-formed `*`/`>` pattern without
/// whitespace.
fn is_valid_subscribe_subject(pattern: &str) -> bool {
    !pattern.contains(char::is_whitespace) && protocol::pattern::is_valid_pattern(pattern)
}

/// Reports whether `queue_group` is a valid queue group name: non-empty, no whitespace.
fn is_valid_queue_group(queue_group: &str) -> bool {
    !queue_group.is_empty() && !queue_group.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_replaces_every_earlier_value_and_keeps_position() {
        let mut headers = Headers::new();
        headers.insert("a", "1");
        headers.append("b", "2");
        headers.append("b", "3");
        headers.insert("c", "4");
        headers.insert("b", "5");

        let pairs: Vec<_> = headers.iter().collect();
        assert_eq!(pairs, vec![("a", "1"), ("b", "5"), ("c", "4")]);
    }

    #[test]
    fn get_returns_first_value_and_is_case_sensitive() {
        let headers: Headers = [("Trace", "x"), ("Trace", "y")].into_iter().collect();
        assert_eq!(headers.get("Trace"), Some("x"));
        assert_eq!(headers.get("trace"), None);
        assert_eq!(headers.len(), 2);
        assert!(!headers.is_empty());
        assert!(Headers::new().is_empty());
    }

    #[test]
    fn header_names_with_colons_spaces_or_newlines_are_invalid() {
        let valid: Headers = [("Nats-Msg-Id", "abc 123")].into_iter().collect();
        assert_eq!(valid.first_invalid_name(), None);
        for (name, value) in [("a:b", "v"), ("a b", "v"), ("", "v"), ("ok", "line\nbreak")] {
            let headers: Headers = [(name, value)].into_iter().collect();
            assert_eq!(headers.first_invalid_name(), Some(name));
        }
    }

    #[test]
    fn publish_subjects_must_be_concrete_and_well_formed() {
        assert!(is_valid_publish_subject("sb.room.lobby"));
        for subject in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b"] {
            assert!(!is_valid_publish_subject(subject), "{subject:?}");
        }
    }

    #[test]
    fn subscribe_subjects_may_hold_wildcards_but_no_whitespace() {
        assert!(is_valid_subscribe_subject("a.*.>"));
        assert!(!is_valid_subscribe_subject("a.>.b"));
        assert!(!is_valid_subscribe_subject("a. b"));
        assert!(is_valid_queue_group("workers"));
        assert!(!is_valid_queue_group(""));
        assert!(!is_valid_queue_group("two words"));
    }
}
