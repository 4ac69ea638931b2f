//! W3C Trace Context (`traceparent`, version 00): the span a component serves a request
//! in, continued from the caller's header or started afresh. The `telemetry` middleware
//! starts the request's span; every later stage that reports a span (`wasi:otel`, in
//! `chatgate-guest-io`) is a child of the `traceparent` it receives, and hands its own
//! on.
//!
//! Spec: <https://www.w3.org/TR/trace-context/>. Only version `00` is accepted; anything
//! else starts a new trace, which the spec allows a participant to do.

const VERSION: &str = "00";
/// `00-` + 32 hex + `-` + 16 hex + `-` + 2 hex.
const TRACEPARENT_LEN: usize = 55;
/// The only trace flag version 00 defines; other bits are not propagated.
pub const SAMPLED: u8 = 0x01;

/// Random bytes a [`Span`] may need: 16 for a new trace id, 8 for the span id.
pub const SPAN_ENTROPY_LEN: usize = 24;

/// A parsed, valid incoming `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    /// The trace, never all zeros.
    pub trace_id: [u8; 16],
    /// The caller's span, never all zeros.
    pub parent_id: [u8; 8],
    /// The trace flags as sent (only [`SAMPLED`] is defined by version 00).
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` header value; `None` for anything not strictly valid.
    pub fn parse(value: &str) -> Option<Self> {
        let value = value.trim_matches([' ', '\t']);
        if value.len() != TRACEPARENT_LEN {
            return None;
        }
        let mut fields = value.split('-');
        let (version, trace_id, parent_id, flags) = (
            fields.next()?,
            fields.next()?,
            fields.next()?,
            fields.next()?,
        );
        if fields.next().is_some() || version != VERSION {
            return None;
        }
        let trace_id: [u8; 16] = decode_lower_hex(trace_id)?;
        let parent_id: [u8; 8] = decode_lower_hex(parent_id)?;
        let [flags] = decode_lower_hex::<1>(flags)?;
        if is_all_zero(&trace_id) || is_all_zero(&parent_id) {
            return None;
        }
        Some(Self {
            trace_id,
            parent_id,
            flags,
        })
    }
}

/// The span this request is served in: either a child of the caller's span or the root of a new trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The trace it belongs to.
    pub trace_id: [u8; 16],
    /// Its own id, never all zeros.
    pub span_id: [u8; 8],
    /// The caller's span when the trace was continued.
    pub parent_span_id: Option<[u8; 8]>,
    /// Trace flags handed on: [`SAMPLED`] or nothing.
    pub flags: u8,
}

impl Span {
    /// Continues `incoming` with a fresh span id, or starts a new trace that is not
    /// sampled: with no caller's trace and no host span to continue (see
    /// `chatgate-guest-otel`), nothing upstream records this request, and the flag
    /// says so to whatever comes after (W3C: `sampled` means the caller may have
    /// recorded). Stages then report no spans, which costs nothing.
    pub fn start(incoming: Option<TraceParent>, entropy: &[u8; SPAN_ENTROPY_LEN]) -> Self {
        let mut new_trace_id = [0u8; 16];
        new_trace_id.copy_from_slice(&entropy[..16]);
        let mut span_id = [0u8; 8];
        span_id.copy_from_slice(&entropy[16..]);
        let span_id = non_zero(span_id);
        match incoming {
            Some(parent) => Self {
                trace_id: parent.trace_id,
                span_id,
                parent_span_id: Some(parent.parent_id),
                flags: parent.flags & SAMPLED,
            },
            None => Self {
                trace_id: non_zero(new_trace_id),
                span_id,
                parent_span_id: None,
                flags: 0,
            },
        }
    }

    /// A span of the same trace whose parent is this one (a stage inside this one).
    pub fn child(&self, span_entropy: &[u8; 8]) -> Self {
        Self {
            trace_id: self.trace_id,
            span_id: non_zero(*span_entropy),
            parent_span_id: Some(self.span_id),
            flags: self.flags,
        }
    }

    /// Whether the trace is recorded: the caller's decision, or ours for a new trace.
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The trace id as 32 lowercase hex digits.
    pub fn trace_id_hex(&self) -> String {
        encode_hex(&self.trace_id)
    }

    /// The span id as 16 lowercase hex digits.
    pub fn span_id_hex(&self) -> String {
        encode_hex(&self.span_id)
    }

    /// The parent's span id as 16 lowercase hex digits, if the span has a parent.
    pub fn parent_span_id_hex(&self) -> Option<String> {
        self.parent_span_id.map(|id| encode_hex(&id))
    }

    /// The `traceparent` naming this span as the parent of whatever comes next.
    pub fn traceparent(&self) -> String {
        // Written digit by digit into one buffer: no formatting machinery, one allocation.
        let mut out = [0u8; TRACEPARENT_LEN];
        out[..2].copy_from_slice(VERSION.as_bytes());
        out[2] = b'-';
        write_hex(&mut out[3..35], &self.trace_id);
        out[35] = b'-';
        write_hex(&mut out[36..52], &self.span_id);
        out[52] = b'-';
        write_hex(&mut out[53..], &[self.flags]);
        // Hex digits and dashes are ASCII: never the default.
        String::from_utf8(out.to_vec()).unwrap_or_default()
    }
}

fn is_all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

/// All-zero ids are invalid on the wire, so a (vanishingly unlikely) all-zero draw is nudged.
fn non_zero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if is_all_zero(&id) {
        id[N - 1] = 1;
    }
    id
}

/// The spec's grammar is lowercase hex only (`HEXDIGLC`).
fn decode_lower_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != N * 2 {
        return None;
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (lower_hex_value(pair[0])? << 4) | lower_hex_value(pair[1])?;
    }
    Some(out)
}

fn lower_hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        _ => None,
    }
}

/// `bytes` as lowercase hex, two digits each.
pub fn encode_hex(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    write_hex(&mut out, bytes);
    // Hex digits are ASCII: never the default.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends `bytes` to `out` as lowercase hex, two digits each.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    // Ids are 16 bytes at most; longer input goes in pieces.
    let mut digits = [0u8; 64];
    for chunk in bytes.chunks(digits.len() / 2) {
        let written = &mut digits[..chunk.len() * 2];
        write_hex(written, chunk);
        out.push_str(std::str::from_utf8(written).unwrap_or_default());
    }
}

/// Writes `bytes` as lowercase hex into `out`, which holds exactly two digits a byte.
fn write_hex(out: &mut [u8], bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn entropy(fill: u8) -> [u8; SPAN_ENTROPY_LEN] {
        [fill; SPAN_ENTROPY_LEN]
    }

    #[test]
    fn parses_the_spec_example() {
        let parsed = TraceParent::parse(VALID).expect("valid traceparent");
        assert_eq!(
            encode_hex(&parsed.trace_id),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(encode_hex(&parsed.parent_id), "00f067aa0ba902b7");
        assert_eq!(parsed.flags, 1);
    }

    #[test]
    fn tolerates_surrounding_optional_whitespace() {
        assert!(TraceParent::parse(&format!(" {VALID}\t")).is_some());
    }

    #[test]
    fn rejects_malformed_values() {
        let rejected = [
            "",
            "00",
            // other versions, including the forbidden ff
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // uppercase hex is not in the grammar
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            // wrong field lengths with the same total length
            "00-4bf92f3577b34da6a3ce929d0e0e47360-0f067aa0ba902b7-01",
            // non-hex
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
            // wrong separators
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            // extra data
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            // all-zero ids
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // a multi-byte character in place of a hex digit
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
        ];
        for value in rejected {
            assert_eq!(
                TraceParent::parse(value),
                None,
                "{value:?} must be rejected"
            );
        }
    }

    #[test]
    fn continuing_keeps_the_trace_and_makes_the_caller_the_parent() {
        let span = Span::start(TraceParent::parse(VALID), &entropy(0xab));
        assert_eq!(span.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            span.parent_span_id_hex().as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(span.span_id_hex(), "abababababababab");
        assert_eq!(
            span.traceparent(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01"
        );
    }

    #[test]
    fn continuing_propagates_an_unsampled_decision_and_drops_unknown_flags() {
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let span = Span::start(TraceParent::parse(unsampled), &entropy(1));
        assert!(span.traceparent().ends_with("-00"));
        let odd_flags = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff";
        let span = Span::start(TraceParent::parse(odd_flags), &entropy(1));
        assert!(span.traceparent().ends_with("-01"));
    }

    #[test]
    fn a_new_trace_is_not_sampled_and_uses_the_entropy() {
        let mut bytes = [0u8; SPAN_ENTROPY_LEN];
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = i as u8 + 1;
        }
        let span = Span::start(None, &bytes);
        assert_eq!(span.trace_id_hex(), "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(span.span_id_hex(), "1112131415161718");
        assert_eq!(span.parent_span_id, None);
        assert!(span.traceparent().ends_with("-00"));
        assert!(!span.sampled());
        assert!(TraceParent::parse(&span.traceparent()).is_some());
    }

    #[test]
    fn a_child_stays_in_the_trace_with_its_parents_sampling_and_its_own_id() {
        let parent = Span::start(TraceParent::parse(VALID), &entropy(0xab));
        let child = parent.child(&[0xcd; 8]);
        assert_eq!(child.trace_id, parent.trace_id);
        assert_eq!(child.parent_span_id, Some(parent.span_id));
        assert_eq!(child.span_id_hex(), "cdcdcdcdcdcdcdcd");
        assert!(child.sampled());
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        let parent = Span::start(TraceParent::parse(unsampled), &entropy(1));
        assert!(!parent.child(&[0; 8]).sampled());
        assert!(TraceParent::parse(&parent.child(&[0; 8]).traceparent()).is_some());
    }

    #[test]
    fn all_zero_entropy_still_yields_valid_ids() {
        let span = Span::start(None, &entropy(0));
        assert!(TraceParent::parse(&span.traceparent()).is_some());
    }

    #[test]
    fn hex_and_traceparent_are_what_fmt_writes() {
        let bytes: Vec<u8> = (0..=255).collect();
        let by_fmt: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(encode_hex(&bytes), by_fmt);
        let mut pushed = String::from("x");
        push_hex(&mut pushed, &bytes);
        assert_eq!(pushed, format!("x{by_fmt}"));
        assert_eq!(encode_hex(&[]), "");
        for flags in [0, 1] {
            for fill in [0u8, 0x0f, 0xab, 0xff] {
                let mut span = Span::start(TraceParent::parse(VALID), &entropy(fill));
                span.flags = flags;
                assert_eq!(
                    span.traceparent(),
                    format!(
                        "00-{}-{}-{:02x}",
                        span.trace_id_hex(),
                        span.span_id_hex(),
                        span.flags
                    )
                );
            }
        }
    }
}
