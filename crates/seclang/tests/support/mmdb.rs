//! A minimal MaxMind DB writer for tests, written from the format specification
//! (<https://maxmind.github.io/MaxMind-DB/>, version 2.0): an IPv4 search tree of 24-bit
//! records, the 16-byte separator, the data section, then the metadata after the
//! `\xAB\xCD\xEFMaxMind.com` marker. Real databases are too large to commit and none may
//! be downloaded here; this writes just the networks a test names.

/// A value of the data section.
#[allow(dead_code)]
pub enum Value {
    Str(&'static str),
    Double(f64),
    U16(u16),
    U32(u32),
    U64(u64),
    Map(Vec<(&'static str, Value)>),
    Array(Vec<Value>),
}

fn control(out: &mut Vec<u8>, kind: u8, size: usize) {
    // Types above 7 are "extended": type 0 in the control byte, then `kind - 7`.
    let first = if kind > 7 { 0 } else { kind << 5 };
    let (bits, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    out.push(first | bits);
    if kind > 7 {
        out.push(kind - 7);
    }
    out.extend(extra);
}

fn unsigned(out: &mut Vec<u8>, kind: u8, value: u64, width: usize) {
    let bytes = value.to_be_bytes();
    let bytes = &bytes[8 - width..];
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    control(out, kind, bytes.len() - skip);
    out.extend(&bytes[skip..]);
}

pub fn encode(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => {
            control(out, 2, s.len());
            out.extend(s.as_bytes());
        }
        Value::Double(d) => {
            control(out, 3, 8);
            out.extend(d.to_be_bytes());
        }
        Value::U16(v) => unsigned(out, 5, u64::from(*v), 2),
        Value::U32(v) => unsigned(out, 6, u64::from(*v), 4),
        Value::U64(v) => unsigned(out, 9, *v, 8),
        Value::Map(pairs) => {
            control(out, 7, pairs.len());
            for (k, v) in pairs {
                encode(out, &Value::Str(k));
                encode(out, v);
            }
        }
        Value::Array(items) => {
            control(out, 11, items.len());
            for v in items {
                encode(out, v);
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Record {
    Empty,
    Node(usize),
    Data(usize),
}

/// An IPv4 database holding `networks` (address, prefix length, record).
pub fn ipv4_database(database_type: &'static str, networks: &[([u8; 4], u8, Value)]) -> Vec<u8> {
    let mut data = Vec::new();
    let mut nodes: Vec<[Record; 2]> = vec![[Record::Empty; 2]];
    for (address, prefix, value) in networks {
        let offset = data.len();
        encode(&mut data, value);
        let bits = u32::from_be_bytes(*address);
        let mut node = 0;
        for depth in 0..*prefix {
            let side = ((bits >> (31 - depth)) & 1) as usize;
            if depth + 1 == *prefix {
                nodes[node][side] = Record::Data(offset);
            } else {
                node = match nodes[node][side] {
                    Record::Node(next) => next,
                    _ => {
                        nodes.push([Record::Empty; 2]);
                        let next = nodes.len() - 1;
                        nodes[node][side] = Record::Node(next);
                        next
                    }
                };
            }
        }
    }
    let count = nodes.len();
    let mut out = Vec::new();
    for node in &nodes {
        for record in node {
            let value = match *record {
                Record::Empty => count,
                Record::Node(n) => n,
                // Data records point past the tree and the 16-byte separator.
                Record::Data(offset) => count + 16 + offset,
            };
            out.extend(&(value as u32).to_be_bytes()[1..]);
        }
    }
    out.extend([0u8; 16]);
    out.extend(&data);
    out.extend(b"\xAB\xCD\xEFMaxMind.com");
    encode(
        &mut out,
        &Value::Map(vec![
            ("node_count", Value::U32(count as u32)),
            ("record_size", Value::U16(24)),
            ("ip_version", Value::U16(4)),
            ("database_type", Value::Str(database_type)),
            ("languages", Value::Array(vec![Value::Str("en")])),
            ("binary_format_major_version", Value::U16(2)),
            ("binary_format_minor_version", Value::U16(0)),
            ("build_epoch", Value::U64(1_700_000_000)),
            (
                "description",
                Value::Map(vec![("en", Value::Str("chatgate test database"))]),
            ),
        ]),
    );
    out
}
