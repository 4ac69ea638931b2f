//! `Retry-After` (RFC 9110, section 10.2.3): how long a throttled or unavailable
//! service asked to be left alone, and how that is passed on to clients.

/// `text` as delta-seconds or an HTTP-date, in milliseconds from `now_unix_ms` (a
/// date in the past asks for no delay). `None` when it is neither.
pub fn delay_ms(text: &str, now_unix_ms: u64) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can fail, and that means "very long".
        return Some(text.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    let date_ms = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(
        u64::try_from(date_ms)
            .unwrap_or(u64::MAX)
            .saturating_sub(now_unix_ms),
    )
}

/// Whole seconds to tell a client (`Retry-After` of our answer) for a delay of
/// `delay_ms`: rounded up, and never 0, so that a client honouring it cannot spin.
pub fn client_seconds(delay_ms: u64) -> u32 {
    u32::try_from(delay_ms.div_ceil(1000))
        .unwrap_or(u32::MAX)
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2015-10-21T07:28:00Z, the date in the RFC 9110 example.
    const NOW_MS: u64 = 1_445_412_480_000;

    #[test]
    fn delta_seconds_and_dates_count_from_now() {
        assert_eq!(delay_ms(" 3 ", NOW_MS), Some(3000));
        assert_eq!(
            delay_ms("Wed, 21 Oct 2015 07:28:01 GMT", NOW_MS),
            Some(1000)
        );
        assert_eq!(delay_ms("Wed, 21 Oct 2015 07:27:00 GMT", NOW_MS), Some(0));
        assert_eq!(delay_ms("99999999999999999999999", NOW_MS), Some(u64::MAX));
    }

    #[test]
    fn anything_else_is_unusable() {
        for text in ["", "  ", "soon", "-1", "1.5", "Wed, 21 Oct 2015"] {
            assert_eq!(delay_ms(text, NOW_MS), None, "{text}");
        }
    }

    #[test]
    fn clients_are_told_whole_seconds_never_zero() {
        assert_eq!(client_seconds(0), 1);
        assert_eq!(client_seconds(1), 1);
        assert_eq!(client_seconds(1000), 1);
        assert_eq!(client_seconds(1001), 2);
        assert_eq!(client_seconds(u64::MAX), u32::MAX);
    }
}
