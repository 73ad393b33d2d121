//! Strict parsing of SCPI replies: one decimal number (NR1, NR2 or NR3 form), nothing else.

/// SCPI's "not a number" (IEEE 488.2 9.91E37): the instrument had no valid measurement.
const SCPI_NAN: f64 = 9.91e37;
/// Longest reply accepted; a longer line is not a number reply.
pub const MAX_REPLY_BYTES: usize = 64;

/// Reads one reply as it came off the socket, at most `MAX_REPLY_BYTES + 2` bytes up to and
/// including the first `\n`, into a finite number.
///
/// # Errors
/// Why the reply is refused: cut off before its newline (too long, or the instrument stopped
/// mid-line), not UTF-8, or any reason of [`parse_number`].
pub fn parse_reply(reply: &[u8]) -> Result<f64, String> {
    if reply.last() != Some(&b'\n') {
        return Err("reply too long or unterminated".to_owned());
    }
    let text = std::str::from_utf8(reply).map_err(|_| "reply is not text".to_owned())?;
    parse_number(text)
}

/// Parses one reply line into a finite number.
///
/// # Errors
/// Why the reply is refused: empty, too long, not of the SCPI number form, or a
/// not-a-number/overflow value.
pub fn parse_number(reply: &str) -> Result<f64, String> {
    let text = reply.trim();
    if text.is_empty() {
        return Err("empty reply".to_owned());
    }
    if text.len() > MAX_REPLY_BYTES {
        return Err(format!("reply longer than {MAX_REPLY_BYTES} bytes"));
    }
    if !is_scpi_number(text) {
        return Err("not a number".to_owned());
    }
    let value: f64 = text.parse().map_err(|_| "not a number".to_owned())?;
    if !value.is_finite() || value.abs() >= SCPI_NAN {
        return Err("instrument reports no valid value".to_owned());
    }
    Ok(value)
}

/// `[+-]digits[.digits][(E|e)[+-]digits]` or `[+-].digits…`: Rust's `f64::from_str` also
/// takes `inf`, `NaN` and `1e` forms an instrument never sends, so the shape is checked first.
fn is_scpi_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    let mut at = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        at += 1;
    }
    let int_start = at;
    while bytes.get(at).is_some_and(u8::is_ascii_digit) {
        at += 1;
    }
    let mut digits = at - int_start;
    if bytes.get(at) == Some(&b'.') {
        at += 1;
        let frac_start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        digits += at - frac_start;
    }
    if digits == 0 {
        return false;
    }
    if matches!(bytes.get(at), Some(b'e' | b'E')) {
        at += 1;
        if matches!(bytes.get(at), Some(b'+' | b'-')) {
            at += 1;
        }
        let exp_start = at;
        while bytes.get(at).is_some_and(u8::is_ascii_digit) {
            at += 1;
        }
        if at == exp_start {
            return false;
        }
    }
    at == bytes.len()
}

/// Fills `{module}` and `{channel}` into a query template.
pub fn render_query(template: &str, module: u16, channel: u16) -> String {
    template
        .replace("{module}", &module.to_string())
        .replace("{channel}", &channel.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scpi_numbers_of_every_form_are_read() {
        assert_eq!(parse_number("-1.785000E+01\n"), Ok(-17.85));
        assert_eq!(parse_number("+1.310000E-06"), Ok(1.31e-6));
        assert_eq!(parse_number("42"), Ok(42.0));
        assert_eq!(parse_number(" -0.5 "), Ok(-0.5));
        assert_eq!(parse_number(".25"), Ok(0.25));
        assert_eq!(parse_number("3."), Ok(3.0));
    }

    #[test]
    fn garbage_is_an_error_never_a_value() {
        for reply in [
            "",
            " ",
            "#$%garbage!!",
            "NaN",
            "inf",
            "-infinity",
            "1e",
            "1.2.3",
            "--1",
            "1,2",
            "12 dBm",
            "0x10",
            "E5",
            ".",
            "+",
            "9.91E37",
            "-9.91E+37",
            "1e999",
        ] {
            assert!(parse_number(reply).is_err(), "{reply:?} was accepted");
        }
        assert!(parse_number(&"1".repeat(65)).is_err());
    }

    #[test]
    fn replies_must_be_whole_text_lines() {
        assert_eq!(parse_reply(b"-1.785000E+01\n"), Ok(-17.85));
        assert_eq!(parse_reply(b"42\r\n"), Ok(42.0));
        assert!(parse_reply(b"42").is_err());
        assert!(parse_reply(b"").is_err());
        assert!(parse_reply(b"4\xff2\n").is_err());
    }

    #[test]
    fn templates_are_filled() {
        assert_eq!(
            render_query("READ{module}:CHAN{channel}:POW?", 4, 2),
            "READ4:CHAN2:POW?"
        );
    }
}
