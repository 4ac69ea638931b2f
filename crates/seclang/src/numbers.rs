//! C's lenient number reading, as ModSecurity compares and adds numbers (`@gt`, `setvar:
//! tx.score=+5`) and parses the addresses the look-ups take.

/// `n`'s decimal digits, written at the end of `buf`: without `fmt`'s machinery and
/// without an allocation, for values every transaction spells (a port, an array index).
pub(crate) fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    let mut n = n;
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[at..]
}

/// Steps over a `+` or `-` at `text[*i]`, as C's number parsing does; whether it was `-`.
pub(crate) fn skip_sign(text: &[u8], i: &mut usize) -> bool {
    match text.get(*i) {
        Some(b'-') => {
            *i += 1;
            true
        }
        Some(b'+') => {
            *i += 1;
            false
        }
        _ => false,
    }
}

/// C `atoi`: optional whitespace and sign, then digits; anything else ends the number,
/// and no digits at all is 0. ModSecurity compares numbers this way, so `@gt 5` against
/// `10abc` compares 10.
pub fn atoi(text: &[u8]) -> i64 {
    let mut i = 0;
    while i < text.len() && text[i].is_ascii_whitespace() {
        i += 1;
    }
    let negative = skip_sign(text, &mut i);
    let mut value: i64 = 0;
    while let Some(d) = text.get(i).filter(|d| d.is_ascii_digit()) {
        value = accumulate(value, i64::from(d - b'0'));
        i += 1;
    }
    if negative { -value } else { value }
}

/// `value * 10 + digit`, saturating at `i64::MAX`. The saturating multiply is taken only
/// when the plain one could overflow: WebAssembly has no multiply with an overflow flag,
/// so LLVM makes `saturating_mul` a call to compiler-rt's 128-bit `__multi3`, which took
/// about 25 k instructions per 2 KB chat request in the `waf` component
/// (`bench/instructions/guest-path waf`, `CASE=chat`, 2026-12-07).
fn accumulate(value: i64, digit: i64) -> i64 {
    /// The largest value that ten times, plus nine, is still an `i64`.
    const NO_OVERFLOW: i64 = (i64::MAX - 9) / 10;
    if value <= NO_OVERFLOW {
        value * 10 + digit
    } else {
        value.saturating_mul(10).saturating_add(digit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// C `atoi` saturating at `i64::MAX`, by another road: the standard library's parse
    /// of the leading digits, which fails only on overflow (then the largest value).
    fn reference_atoi(text: &str) -> i64 {
        let text = text.trim_start_matches([' ', '\t']);
        let (negative, text) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let digits = &text[..text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len())];
        let value = match digits {
            "" => 0,
            digits => digits.parse::<i64>().unwrap_or(i64::MAX),
        };
        if negative { -value } else { value }
    }

    #[test]
    fn numbers_at_and_past_the_largest_saturate() {
        assert_eq!(atoi(b"9223372036854775807"), i64::MAX);
        assert_eq!(atoi(b"9223372036854775808"), i64::MAX);
        assert_eq!(atoi(b"922337203685477580"), 922_337_203_685_477_580);
        assert_eq!(atoi(b"99999999999999999999999999"), i64::MAX);
        assert_eq!(atoi(b"-99999999999999999999999999"), -i64::MAX);
        assert_eq!(atoi(b"  -42abc"), -42);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn atoi_is_the_saturating_parse(text in "[ \t]{0,2}[+-]?[0-9]{0,30}[a-z0-9]{0,3}") {
            prop_assert_eq!(atoi(text.as_bytes()), reference_atoi(&text));
        }

        #[test]
        fn every_step_is_the_saturating_one(value in 0..=i64::MAX, digit in 0i64..10) {
            prop_assert_eq!(accumulate(value, digit), value.saturating_mul(10).saturating_add(digit));
        }
    }
}
