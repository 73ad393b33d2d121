//! `proto/error-codes.md` against `protocol::ErrorCode` and `protocol::close_code`.

use std::collections::BTreeSet;

use switchboard_protocol::{ErrorCode, close_code};

use crate::support::read_proto_file;

/// Returns the body rows of the first Markdown table after the line `heading`, as trimmed
/// cells with backticks removed.
fn table_after(text: &str, heading: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|line| line.trim() != heading);
    assert!(lines.next().is_some(), "error-codes.md has no `{heading}`");
    lines
        .skip_while(|line| !line.starts_with('|'))
        .take_while(|line| line.starts_with('|'))
        .skip(2) // header and separator
        .map(|line| {
            let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
            inner
                .split('|')
                .map(|cell| cell.trim().replace('`', ""))
                .collect()
        })
        .collect()
}

fn number(cell: &str, what: &str) -> u16 {
    cell.parse()
        .unwrap_or_else(|e| panic!("{what} {cell:?} is not a number: {e}"))
}

#[test]
fn error_code_table_matches_the_rust_error_codes() {
    let rows = table_after(&read_proto_file("error-codes.md"), "## Error codes");
    let documented: BTreeSet<&str> = rows.iter().map(|row| row[0].as_str()).collect();
    let missing: Vec<&str> = ErrorCode::ALL
        .iter()
        .map(|code| code.as_str())
        .filter(|code| !documented.contains(code))
        .collect();
    assert!(missing.is_empty(), "error-codes.md lacks {missing:?}");
    assert_eq!(
        rows.len(),
        ErrorCode::ALL.len(),
        "error-codes.md has rows for codes the Rust code does not know"
    );
    for (row, code) in rows.iter().zip(ErrorCode::ALL) {
        assert_eq!(row.len(), 6, "row {row:?} has 6 columns");
        let recoverable = match row[3].as_str() {
            "yes" => true,
            "no" => false,
            other => panic!("recoverable of {code} is {other:?}, not yes/no"),
        };
        let documented = (
            row[0].as_str(),
            number(&row[1], "close code"),
            number(&row[2], "HTTP status"),
            recoverable,
            row[4].as_str(),
        );
        let in_rust = (
            code.as_str(),
            code.close_code(),
            code.http_status(),
            code.recoverable(),
            code.description(),
        );
        assert_eq!(
            documented, in_rust,
            "error-codes.md row (left) differs from ErrorCode::{code:?} (right), in ALL order"
        );
        assert!(!row[5].is_empty(), "{code}: say when the gateway sends it");
    }
}

/// Every `protocol::close_code` constant, by name.
const CLOSE_CODES: [(&str, u16); 13] = [
    ("NORMAL", close_code::NORMAL),
    ("GOING_AWAY", close_code::GOING_AWAY),
    ("INVALID_PAYLOAD", close_code::INVALID_PAYLOAD),
    ("MESSAGE_TOO_BIG", close_code::MESSAGE_TOO_BIG),
    ("INTERNAL", close_code::INTERNAL),
    ("TRY_AGAIN_LATER", close_code::TRY_AGAIN_LATER),
    ("BAD_REQUEST", close_code::BAD_REQUEST),
    ("UNAUTHENTICATED", close_code::UNAUTHENTICATED),
    ("TOKEN_EXPIRED", close_code::TOKEN_EXPIRED),
    ("FORBIDDEN", close_code::FORBIDDEN),
    ("HEARTBEAT_TIMEOUT", close_code::HEARTBEAT_TIMEOUT),
    ("RATE_LIMITED", close_code::RATE_LIMITED),
    ("SLOW_CONSUMER", close_code::SLOW_CONSUMER),
];

#[test]
fn close_code_table_matches_the_close_code_constants() {
    let rows = table_after(&read_proto_file("error-codes.md"), "## Close codes");
    let documented: Vec<(&str, u16)> = rows
        .iter()
        .map(|row| (row[0].as_str(), number(&row[1], "close code")))
        .collect();
    assert_eq!(documented, CLOSE_CODES);
}

#[test]
fn every_close_code_of_an_error_code_is_a_documented_constant() {
    let constants: BTreeSet<u16> = CLOSE_CODES.iter().map(|(_, code)| *code).collect();
    for code in ErrorCode::ALL {
        assert!(
            constants.contains(&code.close_code()),
            "{code} closes with {}, which is not in CLOSE_CODES",
            code.close_code()
        );
    }
}

/// Position of each code in `ErrorCode::ALL`. The match is exhaustive, so a new variant does
/// not compile here until it is placed in `ALL` and, through the table test, documented.
fn position_in_all(code: ErrorCode) -> usize {
    match code {
        ErrorCode::InvalidMessage => 0,
        ErrorCode::UnknownType => 1,
        ErrorCode::InvalidRoom => 2,
        ErrorCode::InvalidRule => 3,
        ErrorCode::MessageTooLarge => 4,
        ErrorCode::TokenMissing => 5,
        ErrorCode::TokenInvalid => 6,
        ErrorCode::TokenExpired => 7,
        ErrorCode::TokenSubjectMismatch => 8,
        ErrorCode::Forbidden => 9,
        ErrorCode::OriginNotAllowed => 10,
        ErrorCode::RateLimited => 11,
        ErrorCode::ConnectionRateLimited => 12,
        ErrorCode::TooManyConnections => 13,
        ErrorCode::SlowConsumer => 14,
        ErrorCode::HeartbeatTimeout => 15,
        ErrorCode::ShuttingDown => 16,
        ErrorCode::NodeNotConnected => 17,
        ErrorCode::DeviceNotFound => 18,
        ErrorCode::NodeNotFound => 19,
        ErrorCode::CommandTimeout => 20,
        ErrorCode::Unavailable => 21,
        ErrorCode::Internal => 22,
    }
}

#[test]
fn error_code_all_lists_every_variant_once() {
    const VARIANTS: usize = 23;
    assert_eq!(ErrorCode::ALL.len(), VARIANTS);
    for (index, code) in ErrorCode::ALL.into_iter().enumerate() {
        assert_eq!(
            position_in_all(code),
            index,
            "{code} is out of place in ALL"
        );
    }
}
