//! Wildcard patterns over dot-separated names, with NATS semantics.
//!
//! One implementation serves three places that must agree: room permissions in tokens
//! (`rooms`, `publish` claims), the in-memory bus's subject matching, and subscription
//! filters. `*` matches exactly one segment, `>` matches one or more trailing segments and
//! may only stand last.

/// Reports whether `name` (a concrete dot-separated name) matches `pattern`.
///
/// A malformed pattern (empty segment, `>` not last) matches nothing, so a bad permission
/// grants nothing rather than everything.
pub fn matches(pattern: &str, name: &str) -> bool {
    let mut pattern_segments = pattern.split('.');
    let mut name_segments = name.split('.');
    loop {
        match (pattern_segments.next(), name_segments.next()) {
            (Some(">"), Some(segment)) => {
                // `>` must be the last pattern segment and needs at least one name segment.
                return pattern_segments.next().is_none() && !segment.is_empty();
            }
            (Some("*"), Some(segment)) if !segment.is_empty() => {}
            (Some(expected), Some(segment)) if !expected.is_empty() && expected == segment => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Reports whether `pattern` is well formed: non-empty segments, `>` only last.
pub fn is_valid_pattern(pattern: &str) -> bool {
    if pattern.is_empty() {
        return false;
    }
    let segments: Vec<&str> = pattern.split('.').collect();
    let last = segments.len() - 1;
    segments.iter().enumerate().all(|(index, segment)| {
        !segment.is_empty()
            && (*segment != ">" || index == last)
            && (segment.len() == 1 || !segment.contains(['*', '>']))
    })
}

/// Reports whether `pattern` contains a wildcard segment.
pub fn has_wildcard(pattern: &str) -> bool {
    pattern
        .split('.')
        .any(|segment| segment == "*" || segment == ">")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(matches("nodes", "nodes"));
        assert!(!matches("nodes", "nodes.a"));
        assert!(!matches("nodes.a", "nodes"));
        assert!(!matches("nodes", "tasks"));
    }

    #[test]
    fn star_matches_exactly_one_segment() {
        assert!(matches("node.*", "node.a"));
        assert!(!matches("node.*", "node"));
        assert!(!matches("node.*", "node.a.b"));
        assert!(matches("*.cmd", "x.cmd"));
        assert!(matches("*", "nodes"));
    }

    #[test]
    fn greater_than_matches_one_or_more_trailing_segments() {
        assert!(matches("node.>", "node.a"));
        assert!(matches("node.>", "node.a.b.c"));
        assert!(!matches("node.>", "node"));
        assert!(matches(">", "anything.at.all"));
    }

    #[test]
    fn malformed_patterns_match_nothing() {
        assert!(!matches("node.>.x", "node.a.x"));
        assert!(!matches("", ""));
        assert!(!matches("a..b", "a..b"));
        assert!(!is_valid_pattern("a.>.b"));
        assert!(!is_valid_pattern("a.b*"));
        assert!(!is_valid_pattern(""));
        assert!(is_valid_pattern("a.*.>"));
    }

    #[test]
    fn wildcard_detection() {
        assert!(has_wildcard("a.*"));
        assert!(has_wildcard(">"));
        assert!(!has_wildcard("a.b"));
    }
}
