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
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
        i += 1;
    }
    if negative { -value } else { value }
}
