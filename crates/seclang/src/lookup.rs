//! What `@geoLookup` and `@rbl` consult outside the request: a MaxMind DB loaded by
//! `SecGeoLookupDb`, and a DNS resolver the embedder provides.
//!
//! Both follow libmodsecurity 3.0.9 (read in `src/utils/geo_lookup.cc`,
//! `src/operators/geo_lookup.cc` and `src/operators/rbl.{cc,h}`):
//!
//! - `@geoLookup` without a database does not match (ModSecurity logs "Database is not
//!   open. Use: SecGeoLookupDb directive." at debug level 4 and returns false). With one,
//!   it matches when the database has an entry for the address, and fills `GEO` with
//!   what the entry has: `COUNTRY_CODE` (`country.iso_code`), `COUNTRY_NAME` and
//!   `COUNTRY_CONTINENT` (`country.names.en`, `continent.names.en`: the continent's
//!   name, not its code), `CITY` (`city.names.en`), `POSTAL_CODE` (`postal.code`),
//!   `LATITUDE` and `LONGITUDE` (`location.*`, printed with six decimals as C++'s
//!   `std::to_string(double)` does). ModSecurity's MaxMind path sets no `COUNTRY_CODE3`,
//!   `REGION`, `DMA_CODE` or `AREA_CODE` (the code for them is commented out), so
//!   neither does this engine. The value must be a numeric address
//!   (libmaxminddb parses it with `AI_NUMERICHOST`); anything else does not match.
//! - `@rbl zone` builds a DNS name from the value and matches when it resolves to any
//!   address; a failed lookup (including "no resolver") does not match, as a
//!   `getaddrinfo` error does in ModSecurity. See [`rbl_name`] for the name.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// A MaxMind DB (GeoLite2 / GeoIP2 Country or City), held in memory.
pub struct GeoDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl fmt::Debug for GeoDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeoDb")
            .field("database_type", &self.reader.metadata().database_type)
            .finish()
    }
}

impl GeoDb {
    /// Reads a database from the bytes of a `.mmdb` file.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<GeoDb, String> {
        maxminddb::Reader::from_source(bytes)
            .map(|reader| GeoDb { reader })
            .map_err(|e| e.to_string())
    }

    /// The `GEO` variables for `address` (a numeric IPv4 or IPv6 address, surrounding
    /// whitespace ignored), or `None` when it is not an address or the database has no
    /// entry for it.
    pub fn lookup(&self, address: &[u8]) -> Option<Vec<(&'static str, String)>> {
        let ip: IpAddr = std::str::from_utf8(address).ok()?.trim().parse().ok()?;
        let found = self.reader.lookup(ip).ok()?;
        if !found.has_data() {
            return None;
        }
        use maxminddb::PathElement::Key;
        let text =
            |path: &[maxminddb::PathElement<'_>]| found.decode_path::<String>(path).ok().flatten();
        let number = |path: &[maxminddb::PathElement<'_>]| {
            found
                .decode_path::<f64>(path)
                .ok()
                .flatten()
                .map(|v| format!("{v:.6}"))
        };
        let fields = [
            ("COUNTRY_CODE", text(&[Key("country"), Key("iso_code")])),
            (
                "COUNTRY_NAME",
                text(&[Key("country"), Key("names"), Key("en")]),
            ),
            (
                "COUNTRY_CONTINENT",
                text(&[Key("continent"), Key("names"), Key("en")]),
            ),
            ("CITY", text(&[Key("city"), Key("names"), Key("en")])),
            ("POSTAL_CODE", text(&[Key("postal"), Key("code")])),
            ("LATITUDE", number(&[Key("location"), Key("latitude")])),
            ("LONGITUDE", number(&[Key("location"), Key("longitude")])),
        ];
        Some(
            fields
                .into_iter()
                .filter_map(|(name, value)| value.map(|v| (name, v)))
                .collect(),
        )
    }
}

/// Resolves DNS names for `@rbl`. The WebAssembly component has no network, so it has
/// none unless its host gives one; natively [`SystemResolver`] asks the operating system.
pub trait Resolver: Send + Sync {
    /// The addresses `name` resolves to; `None` when it does not resolve (NXDOMAIN, no
    /// network, timeout).
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>>;
}

/// The operating system's resolver (`getaddrinfo` through `ToSocketAddrs`), as
/// ModSecurity uses. Not in WebAssembly builds.
#[cfg(not(target_family = "wasm"))]
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

#[cfg(not(target_family = "wasm"))]
impl Resolver for SystemResolver {
    fn lookup(&self, name: &str) -> Option<Vec<IpAddr>> {
        use std::net::ToSocketAddrs;
        let found: Vec<IpAddr> = (name, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
        (!found.is_empty()).then_some(found)
    }
}

/// An `@rbl` operator's zone, and whether it is Project Honey Pot's http:BL (any zone
/// containing `httpbl.org`, as ModSecurity decides), whose names start with an access key.
#[derive(Debug, Clone)]
pub struct Rbl {
    /// The zone as written after `@rbl` (`sbl-xbl.spamhaus.org`); macros are not
    /// expanded.
    pub zone: String,
    /// Whether the zone contains `httpbl.org`, so that names start with `SecHttpBlKey`.
    pub httpbl: bool,
}

impl Rbl {
    /// The operator for `zone`, deciding once whether it is http:BL.
    pub fn new(zone: &str) -> Rbl {
        Rbl {
            zone: zone.to_owned(),
            httpbl: zone.contains("httpbl.org"),
        }
    }
}

/// The DNS name `@rbl` looks up for `value`, as ModSecurity 3.0.9's
/// `Rbl::mapIpToAddress` builds it:
///
/// - a value that reads as four dot-separated decimal integers (C's
///   `sscanf("%d.%d.%d.%d")`: leading whitespace and a sign allowed, trailing text
///   ignored) is an IPv4 address, and the name is its numbers reversed, then the zone:
///   `192.0.2.10` with `zone` → `10.2.0.192.zone`; for http:BL the access key
///   (`SecHttpBlKey`) comes first: `key.10.2.0.192.dnsbl.httpbl.org`, and without a key
///   there is no name (`None`: the operator does not match);
/// - anything else, an IPv6 address included, is taken as a domain name and the zone is
///   appended unchanged (`2001:db8::1.zone`, `example.com.zone`): ModSecurity does not
///   reverse IPv6 nibbles, so neither does this engine.
pub fn rbl_name(rbl: &Rbl, value: &[u8], httpbl_key: Option<&str>) -> Option<String> {
    let text = String::from_utf8_lossy(value);
    let Some(octets) = scan_dotted_quad(&text) else {
        return Some(format!("{text}.{}", rbl.zone));
    };
    let reversed = format!(
        "{}.{}.{}.{}.{}",
        octets[3], octets[2], octets[1], octets[0], rbl.zone
    );
    if rbl.httpbl {
        match httpbl_key {
            Some(key) if !key.is_empty() => Some(format!("{key}.{reversed}")),
            _ => None,
        }
    } else {
        Some(reversed)
    }
}

/// `sscanf(text, "%d.%d.%d.%d", ...) == 4`: four integers, each after optional
/// whitespace and sign, separated by single dots.
fn scan_dotted_quad(text: &str) -> Option<[i64; 4]> {
    let b = text.as_bytes();
    let mut i = 0;
    let mut out = [0i64; 4];
    for (n, slot) in out.iter_mut().enumerate() {
        if n > 0 {
            if b.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        while b.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let negative = crate::numbers::skip_sign(b, &mut i);
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
        // `%d` into an int: keep 32 bits as C would on overflow-free input.
        let value: i64 = text[start..i].parse().unwrap_or(i64::MAX);
        let value = i64::from(value.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32);
        *slot = if negative { -value } else { value };
    }
    Some(out)
}

/// What an http:BL answer says (`127.days.score.type`), as ModSecurity's
/// `futherInfo_httpbl` reads it for its debug log. The answer does not change whether
/// `@rbl` matches: any address is a match there too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpBlAnswer {
    /// The second octet: days since http:BL last saw the address active.
    pub days_since_last_activity: u8,
    /// The third octet: http:BL's threat score, 0 to 255 (for a search engine, http:BL
    /// puts the engine's serial number there instead).
    pub threat_score: u8,
    /// The fourth octet, the visitor type, in ModSecurity's words (`Search Engine`,
    /// `Comment spammer IP`, ...; `" "` for a type it does not name).
    pub visitor: &'static str,
}

/// Decodes an http:BL answer; `None` for a "bad response" (first octet not 127).
pub fn decode_httpbl(answer: Ipv4Addr) -> Option<HttpBlAnswer> {
    let [first, days, score, kind] = answer.octets();
    if first != 127 {
        return None;
    }
    let visitor = match kind {
        0 => "Search Engine",
        1 => "Suspicious IP",
        2 => "Harvester IP",
        3 => "Suspicious harvester IP",
        4 => "Comment spammer IP",
        5 => "Suspicious comment spammer IP",
        6 => "Harvester and comment spammer IP",
        7 => "Suspicious harvester comment spammer IP",
        _ => " ",
    };
    Some(HttpBlAnswer {
        days_since_last_activity: days,
        threat_score: score,
        visitor,
    })
}

/// The rule set's resolver, if it has one.
#[derive(Clone, Default)]
pub(crate) struct ResolverSlot(pub(crate) Option<std::sync::Arc<dyn Resolver>>);

impl fmt::Debug for ResolverSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "Some(resolver)"
        } else {
            "None"
        })
    }
}
