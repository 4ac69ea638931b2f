//! Running a compiled [`RuleSet`] over one request.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::time::Instant;

use crate::actions::{AllowScope, Ctl, Disruptive, Effect, EngineMode, IdRanges, SetOp, in_ranges};
use crate::collection::{AddressHasher, Bytes, Collection, Collections, NO_SLOT, Names};
use crate::compile::{Item, Link, Rule, RuleSet};
use crate::macros::Resolve;
use crate::memo::{EvalMemo, Slot};
use crate::operators::atoi;
use crate::outcome::Name;
pub use crate::outcome::{
    Intervention, InterventionKind, MATCHED_VALUE_LIMIT, Matches, Outcome, RuleMatch, Tx,
};
use crate::prefilter::{CASE_LOWER, CASE_UPPER, MaskWords, Prefilter, VarMask, var_bit};
use crate::prefix::{DecidedRun, Decision, Prefix};
use crate::request::{
    BodyProcessor, MultipartFlags, Pair, Request, Xml, parse_cookies, parse_json_reusing,
    parse_multipart, parse_urlencoded, parse_xml,
};
use crate::transform::{Features, Transform, apply_all, apply_all_from};
use crate::variables::{Exclusion, Selector, Target, Var};

/// The per-request variables derived from the request before rules run.
#[derive(Default)]
struct Data {
    method: Vec<u8>,
    uri: Vec<u8>,
    uri_raw: Vec<u8>,
    filename: Vec<u8>,
    basename: Vec<u8>,
    query: Vec<u8>,
    protocol: Vec<u8>,
    line: Vec<u8>,
    headers: Vec<Pair>,
    cookies: Vec<Pair>,
    args_get: Vec<Pair>,
    args_post: Vec<Pair>,
    body: Vec<u8>,
    body_processor: Option<BodyProcessor>,
    body_error: Option<String>,
    files: Vec<Pair>,
    file_sizes: Vec<(String, usize)>,
    part_headers: Vec<Pair>,
    multipart: MultipartFlags,
    multipart_strict: bool,
    xml: Xml,
    remote_addr: Vec<u8>,
    remote_port: Vec<u8>,
    server_name: Vec<u8>,
    unique_id: Vec<u8>,
    content_type: String,
    /// The body processor `content_type` names ([`BodyProcessor::for_content_type`]),
    /// read once: `REQBODY_PROCESSOR` is asked for about ten times per request.
    by_type: Option<BodyProcessor>,
    response: ResponseData,
    /// A previous transaction's `ARGS_POST`, kept for its strings' room (see
    /// [`crate::request::parse_json_reusing`]).
    spare_args: Vec<Pair>,
}

impl Data {
    /// What the next transaction's [`Data::new_in`] reuses of this one: the request's
    /// copies but the body, and `ARGS_POST` (as `spare_args`), when their room is small enough to keep
    /// between requests (a large request's would stay allocated); nothing else.
    fn kept(self) -> Data {
        let pairs = |p: &[Pair]| {
            p.iter()
                .map(|(n, v)| n.capacity() + v.capacity())
                .sum::<usize>()
        };
        let room = [
            &self.method,
            &self.uri,
            &self.uri_raw,
            &self.filename,
            &self.basename,
            &self.query,
            &self.protocol,
            &self.line,
            &self.remote_addr,
            &self.remote_port,
            &self.server_name,
            &self.unique_id,
        ]
        .iter()
        .map(|v| v.capacity())
        .sum::<usize>()
            + pairs(&self.headers)
            + pairs(&self.args_post)
            + pairs(&self.spare_args)
            + self.content_type.capacity();
        let entries = self.headers.len() + self.args_post.len() + self.args_get.capacity();
        if room > KEPT_DATA_ROOM || entries > SCRATCH_LIMIT {
            return Data::default();
        }
        Data {
            method: self.method,
            uri: self.uri,
            uri_raw: self.uri_raw,
            filename: self.filename,
            basename: self.basename,
            query: self.query,
            protocol: self.protocol,
            line: self.line,
            headers: self.headers,
            cookies: self.cookies,
            args_get: self.args_get,
            remote_addr: self.remote_addr,
            remote_port: self.remote_port,
            server_name: self.server_name,
            unique_id: self.unique_id,
            content_type: self.content_type,
            // A request without a body leaves the last body's pairs for the next one.
            spare_args: if self.args_post.is_empty() {
                self.spare_args
            } else {
                self.args_post
            },
            ..Data::default()
        }
    }
}

/// The most bytes of strings a kept [`Data`] may hold.
const KEPT_DATA_ROOM: usize = 64 * 1024;

/// The response variables, empty until the response is processed.
#[derive(Default)]
struct ResponseData {
    status: Vec<u8>,
    protocol: Vec<u8>,
    headers: Vec<Pair>,
    content_type: Vec<u8>,
    content_length: Vec<u8>,
    body: Vec<u8>,
    seen: bool,
}

impl Data {
    /// The URI variables as ModSecurity v3 derives them: `REQUEST_URI`, `REQUEST_FILENAME`
    /// and `REQUEST_BASENAME` from the percent-decoded target (an absolute form losing its
    /// scheme and authority), `QUERY_STRING`, `REQUEST_URI_RAW` and `REQUEST_LINE` as sent.
    ///
    /// Written into the buffers of `kept` (a previous transaction's [`Data::kept`], or
    /// `Data::default()`): the request's copies reuse their room instead of being
    /// allocated per request and freed at its end.
    fn new_in(r: &Request, kept: Data) -> Data {
        fn refill(mut v: Vec<u8>, bytes: &[u8]) -> Vec<u8> {
            v.clear();
            v.extend_from_slice(bytes);
            v
        }
        let raw = r.uri.split('#').next().unwrap_or("");
        let query = raw.split_once('?').map_or("", |(_, q)| q);
        let decoded = percent_decode(raw.as_bytes());
        let uri = match find_bytes(&decoded, b"://") {
            Some(p) if !decoded[..p].contains(&b'/') => {
                let after = &decoded[p + 3..];
                after
                    .iter()
                    .position(|&b| b == b'/')
                    .map_or(&b"/"[..], |s| &after[s..])
            }
            _ => &decoded[..],
        };
        let path = match uri.iter().position(|&b| b == b'?') {
            Some(q) => &uri[..q],
            None => uri,
        };
        let basename = match path.iter().rposition(|&b| b == b'/' || b == b'\\') {
            Some(p) => &path[p + 1..],
            None => path,
        };
        let host = r.header("host").unwrap_or("");
        // Spelled by hand: `format!` costs about a thousand instructions more.
        let mut line = refill(kept.line, r.method.as_bytes());
        line.push(b' ');
        line.extend_from_slice(r.uri.as_bytes());
        line.push(b' ');
        line.extend_from_slice(r.protocol.as_bytes());
        let mut headers = kept.headers;
        headers.truncate(r.headers.len());
        for (i, (name, value)) in r.headers.iter().enumerate() {
            match headers.get_mut(i) {
                Some((n, v)) => {
                    n.clear();
                    n.push_str(name);
                    v.clear();
                    v.extend_from_slice(value.as_bytes());
                }
                None => headers.push((name.clone(), value.as_bytes().to_vec())),
            }
        }
        let mut content_type = kept.content_type;
        content_type.clear();
        content_type.push_str(r.header("content-type").unwrap_or(""));
        let by_type = BodyProcessor::for_content_type(&content_type);
        let mut args_get = kept.args_get;
        args_get.clear();
        let mut cookies = kept.cookies;
        cookies.clear();
        let mut d = Data {
            method: refill(kept.method, r.method.as_bytes()),
            uri: refill(kept.uri, uri),
            uri_raw: refill(kept.uri_raw, r.uri.as_bytes()),
            filename: refill(kept.filename, path),
            basename: refill(kept.basename, basename),
            query: refill(kept.query, query.as_bytes()),
            protocol: refill(kept.protocol, r.protocol.as_bytes()),
            line,
            headers,
            remote_addr: refill(kept.remote_addr, r.remote_addr.as_bytes()),
            remote_port: refill(
                kept.remote_port,
                crate::numbers::decimal(r.remote_port.into(), &mut [0; 20]),
            ),
            server_name: refill(
                kept.server_name,
                host.split(':').next().unwrap_or("").as_bytes(),
            ),
            unique_id: refill(kept.unique_id, r.unique_id.as_bytes()),
            content_type,
            by_type,
            args_get,
            cookies,
            spare_args: kept.spare_args,
            ..Data::default()
        };
        parse_urlencoded(query.as_bytes(), &mut d.args_get);
        for (name, value) in &r.headers {
            if name.eq_ignore_ascii_case("cookie") {
                parse_cookies(value, &mut d.cookies);
            }
        }
        d
    }

    /// Runs the body processor, as ModSecurity does between phases 1 and 2.
    fn process_body(
        &mut self,
        body: Vec<u8>,
        processor: Option<BodyProcessor>,
        arguments_limit: usize,
    ) {
        self.body = body;
        let content_type = self.content_type.as_str();
        let processor = processor.or(self.by_type);
        self.body_processor = processor;
        if self.body.is_empty() {
            return;
        }
        let body = &self.body;
        let mut args = std::mem::take(&mut self.spare_args);
        if processor != Some(BodyProcessor::Json) {
            args.clear();
        }
        let result = match processor {
            Some(BodyProcessor::UrlEncoded) => {
                parse_urlencoded(body, &mut args);
                Ok(None)
            }
            Some(BodyProcessor::Json) => parse_json_reusing(body, &mut args).map(|()| None),
            Some(BodyProcessor::Multipart) => {
                parse_multipart(content_type, body).map(|m| Some(Ok(m)))
            }
            Some(BodyProcessor::Xml) => parse_xml(body).map(|x| Some(Err(x))),
            None => Ok(None),
        };
        self.args_post = args;
        let result = result.map(|parsed| match parsed {
            Some(Ok(m)) => {
                self.args_post = m.args;
                self.files = m.files;
                self.file_sizes = m.file_sizes;
                self.part_headers = m.part_headers;
                self.multipart_strict = m.flags.strict_error();
                self.multipart = m.flags;
            }
            Some(Err(x)) => self.xml = x,
            None => {}
        });
        if let Err(e) = result {
            if processor == Some(BodyProcessor::Multipart) {
                self.multipart_strict = true;
            }
            self.body_error = Some(e);
        }
        let count = self.args_post.len().max(self.xml.attributes.len());
        if count > arguments_limit {
            self.args_post.truncate(arguments_limit);
            self.xml.attributes.truncate(arguments_limit);
            self.body_error.get_or_insert_with(|| {
                format!("{count} arguments in the body, more than the limit of {arguments_limit}")
            });
        }
    }
}

/// `%XX` decoding of a URI (`+` stays: it is a space only in form data); invalid
/// sequences are kept.
fn percent_decode(input: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] == b'%'
            && let (Some(h), Some(l)) = (
                input.get(i + 1).and_then(|&b| hex(b)),
                input.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(input[i]);
            i += 1;
        }
    }
    out
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// `ctl` exclusions in force for the rest of the transaction. Tags are numbered as in
/// [`RuleSet::tag_ids`] (a tag no rule has is not kept: it applies to nothing), and
/// target exclusions point into the rule set, so that a selector has one address the
/// whole transaction ([`SelectorMemo`]).
#[derive(Default)]
struct Exceptions<'r> {
    ids: Vec<&'r IdRanges>,
    tags: Vec<u32>,
    targets_by_id: Vec<(&'r IdRanges, &'r Exclusion)>,
    targets_by_tag: Vec<(u32, &'r Exclusion)>,
    /// The tags of `targets_by_tag`, a bit per tag number: most rules have none of
    /// them, and are answered without going through every exclusion (the prompt-field
    /// policy adds thirty) for each of their tags.
    target_tags: Vec<u64>,
}

impl<'r> Exceptions<'r> {
    /// Whether no `ctl` removed a rule or a target.
    fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.tags.is_empty()
            && self.targets_by_id.is_empty()
            && self.targets_by_tag.is_empty()
    }

    fn removes(&self, rule: &Rule) -> bool {
        self.ids.iter().any(|r| in_ranges(r, rule.id))
            || self.tags.iter().any(|t| rule.tag_ids.contains(t))
    }

    /// The target exclusions that apply to `rule` (usually none).
    fn for_rule(&self, rule: &Rule, out: &mut Vec<&'r Exclusion>) {
        out.clear();
        out.extend(
            self.targets_by_id
                .iter()
                .filter(|(ids, _)| in_ranges(ids, rule.id))
                .map(|(_, e)| *e),
        );
        if self.any_target_tag(rule) {
            out.extend(
                self.targets_by_tag
                    .iter()
                    .filter(|(tag, _)| rule.tag_ids.contains(tag))
                    .map(|(_, e)| *e),
            );
        }
    }

    /// Whether a tag of `rule` has target exclusions.
    fn any_target_tag(&self, rule: &Rule) -> bool {
        !self.target_tags.is_empty()
            && rule.tag_ids.iter().any(|&t| {
                self.target_tags
                    .get(t as usize / 64)
                    .is_some_and(|w| w & (1 << (t % 64)) != 0)
            })
    }

    fn add_target_by_tag(&mut self, tag: u32, e: &'r Exclusion) {
        self.targets_by_tag.push((tag, e));
        let word = tag as usize / 64;
        if self.target_tags.len() <= word {
            self.target_tags.resize(word + 1, 0);
        }
        self.target_tags[word] |= 1 << (tag % 64);
    }
}

/// Regular-expression selectors (`ARGS:/^json\.messages\.\d+\.content$/`) matched
/// against request keys, remembered for the transaction: CRS rules and exclusions ask
/// the same selector about the same keys rule after rule. Keyed by the address of the
/// selector's pattern text, which selectors of one pattern share in a rule set
/// (`compile::share_selector_patterns`), and the key's address in the request data (which
/// does not move while its generation lasts); keys that are copies are not remembered.
#[derive(Default)]
struct SelectorMemo {
    generation: u32,
    map: HashMap<(usize, usize, usize), bool, BuildHasherDefault<AddressHasher>>,
}

impl SelectorMemo {
    // The `Cow` says whether the key is borrowed from the request (and can be remembered
    // by address) or a copy.
    #[allow(clippy::ptr_arg)]
    fn matches(&mut self, generation: u32, s: &Selector, key: &Cow<'_, str>) -> bool {
        self.matches_in(generation, s, key, None)
    }

    /// [`SelectorMemo::matches`], asking the memo across requests first when a key is new
    /// to the transaction: argument names repeat from one request to the next
    /// (`json.messages.3.content`), and matching each against the prompt-field policy's
    /// pattern again cost more than the rest of the exclusions.
    #[allow(clippy::ptr_arg)]
    fn matches_in(
        &mut self,
        generation: u32,
        s: &Selector,
        key: &Cow<'_, str>,
        across: Option<(&mut EvalMemo, &mut MemoSlots)>,
    ) -> bool {
        let (Selector::Regex(r), Cow::Borrowed(k)) = (s, key) else {
            return s.matches(key);
        };
        if self.generation != generation {
            self.map.clear();
            self.generation = generation;
        }
        let pattern = r.as_str().as_ptr() as usize;
        *self
            .map
            .entry((pattern, k.as_ptr() as usize, k.len()))
            .or_insert_with(|| {
                let Some((memo, slots)) = across else {
                    return s.matches(k);
                };
                let at = (k.as_ptr() as usize, k.len());
                let slot = match slots.get(&at) {
                    Some(&slot) => slot,
                    None => {
                        let slot = memo.find_or_add(k.as_bytes());
                        slots.insert(at, slot);
                        slot
                    }
                };
                let Some(slot) = slot else {
                    return s.matches(k);
                };
                memo.selects(slot, pattern).unwrap_or_else(|| {
                    let answer = s.matches(k);
                    memo.set_selects(slot, pattern, answer);
                    answer
                })
            })
    }

    fn excludes(
        &mut self,
        generation: u32,
        e: &Exclusion,
        var: Var,
        key: Option<&Cow<'_, str>>,
    ) -> bool {
        self.excludes_in(generation, e, var, key, None)
    }

    fn excludes_in(
        &mut self,
        generation: u32,
        e: &Exclusion,
        var: Var,
        key: Option<&Cow<'_, str>>,
        across: Option<(&mut EvalMemo, &mut MemoSlots)>,
    ) -> bool {
        e.var == var
            && match (&e.selector, key) {
                (None, _) => true,
                (Some(s), Some(k)) => self.matches_in(generation, s, k, across),
                (Some(_), None) => false,
            }
    }
}

struct State<'r> {
    /// `TX` and the other collections (`ip`, ...).
    collections: Collections,
    /// The member names the rules know, numbered.
    names: &'r Names,
    /// `MATCHED_VAR` when `matched_vars` is empty: the last match of an earlier rule
    /// ([`State::matched_var`]).
    earlier_match: Option<(Name, Bytes)>,
    /// `MATCHED_VARS`: the matches of the current link (or of the last link that matched),
    /// names borrowed from the rule set where they are known at load time.
    // Values inline when short (CRS's paranoia-level checks match a digit, rule after
    // rule): no allocation per match.
    matched_vars: Vec<(Name, Bytes)>,
    exceptions: Exceptions<'r>,
    mode: EngineMode,
    body_processor: Option<BodyProcessor>,
    body_access: bool,
    started: Instant,
}

impl<'r> State<'r> {
    /// `MATCHED_VAR`: the last value matched, in this rule or an earlier one. Kept as the
    /// last of `matched_vars` rather than as a copy of it, and moved aside when that list
    /// is emptied.
    fn matched_var(&self) -> Option<&(Name, Bytes)> {
        self.matched_vars.last().or(self.earlier_match.as_ref())
    }

    /// Empties `MATCHED_VARS` (a new rule, or the first match of a link), keeping
    /// `MATCHED_VAR`.
    fn clear_matched(&mut self) {
        if let Some(last) = self.matched_vars.pop() {
            self.earlier_match = Some(last);
        }
        self.matched_vars.clear();
    }

    /// The members of a collection, in insertion order.
    fn collection(&self, name: &str) -> impl Iterator<Item = (&str, &[u8])> {
        self.collections
            .get(name)
            .into_iter()
            .flat_map(|c| c.iter())
    }

    fn get(&self, collection: &str, key: &str) -> Option<&[u8]> {
        self.collections.get(collection)?.get(self.names, key)
    }

    /// The member numbered `slot` ([`Names`]).
    fn get_slot(&self, collection: &str, slot: u32) -> Option<&[u8]> {
        self.collections.get(collection)?.get_slot(slot)
    }

    fn set(&mut self, collection: &str, key: &str, value: Bytes) {
        self.collections
            .get_mut(collection)
            .set(self.names, key, value)
    }

    fn delete(&mut self, collection: &str, key: &str) {
        if let Some(c) = self.collections.other.get_mut(collection) {
            c.delete(self.names, key);
        } else if collection == "tx" {
            self.collections.tx.delete(self.names, key);
        }
    }
}

/// TX variables a transaction has room for from the start (CRS 3.3 sets about 100).
const TX_CAPACITY: usize = 128;

/// Match records a transaction has room for from the start, beyond the start snapshot's
/// (CRS 3.3 records about 76 for an ordinary request, 21 of them in the snapshot).
const MATCHES_CAPACITY: usize = 64;

fn collection_name(var: Var) -> Option<&'static str> {
    Some(match var {
        Var::Tx => "tx",
        Var::Ip => "ip",
        Var::Global => "global",
        Var::Session => "session",
        Var::User => "user",
        Var::Resource => "resource",
        Var::Geo => "geo",
        Var::Env => "env",
        _ => return None,
    })
}

/// A variable's value, borrowed from the request where possible.
struct Value<'a> {
    key: Option<Cow<'a, str>>,
    value: Cow<'a, [u8]>,
}

/// A prefiltered link's candidates (values by address and length), with a bit set per
/// candidate's address hashed to 0..64: most values that are not candidates are told
/// so by one bit test instead of a scan of the list (a link whose factor is common in
/// prose has many candidates, and rules list every argument of a chat).
#[derive(Clone, Copy)]
struct Only<'c> {
    values: &'c [(usize, usize)],
    mask: u64,
    /// Per candidate, where it is in the request collections ([`Source`], index), or
    /// `(NO_SOURCE, 0)`: a collection is listed by its candidates rather than by all
    /// its members. Only when `indexed`.
    origins: &'c [(u8, u32)],
    /// Whether every candidate is told apart by its address: an empty value is not
    /// (empty values share one dangling address), so then the members are scanned.
    indexed: bool,
}

impl Only<'_> {
    fn bit(address: usize) -> u64 {
        // Values are separate allocations (16-byte aligned) or slices of one.
        1 << (((address >> 4) ^ (address >> 10)) % 64)
    }

    fn contains(&self, value: &[u8]) -> bool {
        let address = value.as_ptr() as usize;
        self.mask & Only::bit(address) != 0 && self.values.contains(&(address, value.len()))
    }
}

/// A request collection kept as a list of pairs, and whether its names or its values are
/// listed: `list * 2 + names`, so that a prefilter candidate can say which member it is.
type Source = u8;

/// The source of a candidate that is no member of a request collection.
const NO_SOURCE: Source = 0;

const HEADERS: u8 = 1;
const COOKIES: u8 = 2;
const ARGS_GET: u8 = 3;
const ARGS_POST: u8 = 4;
const FILES: u8 = 5;
const PART_HEADERS: u8 = 6;
const RESPONSE_HEADERS: u8 = 7;

/// The request collections a variable lists, in order (none: not a list of pairs).
fn sources(var: Var) -> &'static [Source] {
    match var {
        Var::Args => &[ARGS_GET * 2, ARGS_POST * 2],
        Var::ArgsGet => &[ARGS_GET * 2],
        Var::ArgsPost => &[ARGS_POST * 2],
        Var::ArgsNames => &[ARGS_GET * 2 + 1, ARGS_POST * 2 + 1],
        Var::ArgsGetNames => &[ARGS_GET * 2 + 1],
        Var::ArgsPostNames => &[ARGS_POST * 2 + 1],
        Var::RequestHeaders => &[HEADERS * 2],
        Var::RequestHeadersNames => &[HEADERS * 2 + 1],
        Var::RequestCookies => &[COOKIES * 2],
        Var::RequestCookiesNames => &[COOKIES * 2 + 1],
        Var::Files => &[FILES * 2],
        Var::FilesNames => &[FILES * 2 + 1],
        Var::MultipartPartHeaders => &[PART_HEADERS * 2],
        Var::ResponseHeaders => &[RESPONSE_HEADERS * 2],
        Var::ResponseHeadersNames => &[RESPONSE_HEADERS * 2 + 1],
        _ => &[],
    }
}

impl Data {
    /// The pairs a [`Source`] lists.
    fn pairs_of(&self, source: Source) -> &[Pair] {
        match source / 2 {
            HEADERS => &self.headers,
            COOKIES => &self.cookies,
            ARGS_GET => &self.args_get,
            ARGS_POST => &self.args_post,
            FILES => &self.files,
            PART_HEADERS => &self.part_headers,
            RESPONSE_HEADERS => &self.response.headers,
            _ => &[],
        }
    }
}

/// The members of a request collection, only the one named `key` when given (a lookup
/// such as `REQUEST_HEADERS:User-Agent` need not list every header), and only the
/// prefilter's candidates when given (values by address and length): a prefiltered link
/// of CRS targets every argument, of which it usually inspects one or none, so its
/// candidates are listed by where they are rather than by a look at every member.
fn pairs<'a>(
    data: &'a Data,
    source: Source,
    key: Option<&str>,
    (only, known): (Option<Only<'_>>, Known<'_>),
    out: &mut Vec<Value<'a>>,
) {
    let list = data.pairs_of(source);
    let names = source % 2 == 1;
    let known = |value: &[u8]| known.is_some_and(|k| k(value));
    if key.is_none()
        && let Some(only) = only
        && only.indexed
    {
        // Candidates are grouped by link in the order they were listed, which is each
        // collection's order.
        for &(s, i) in only.origins {
            if s == source
                && let Some((k, v)) = list.get(i as usize)
            {
                let value: &[u8] = if names { k.as_bytes() } else { v };
                if !known(value) {
                    out.push(Value {
                        key: Some(Cow::Borrowed(k)),
                        value: Cow::Borrowed(value),
                    });
                }
            }
        }
        return;
    }
    if key.is_none() && only.is_none() {
        // Every member: room for them at once rather than growing step by step.
        out.reserve(list.len());
    }
    for (k, v) in list {
        if key.is_some_and(|key| !k.eq_ignore_ascii_case(key)) {
            continue;
        }
        let value: &[u8] = if names { k.as_bytes() } else { v };
        if only.is_some_and(|only| !only.contains(value)) || known(value) {
            continue;
        }
        out.push(Value {
            key: Some(Cow::Borrowed(k)),
            value: Cow::Borrowed(value),
        });
    }
}

/// Request values a link is known not to match (the memo across requests said so): a
/// collection leaves them out when it is listed for the link, which would skip them. An
/// ordinary request's arguments and headers are all known to the links that are not
/// prefiltered (`@validateByteRange`, `@detectSQLi`, ...), and listing them only to
/// skip them one by one cost as much as the rest of those links' work.
type Known<'k> = Option<&'k dyn Fn(&[u8]) -> bool>;

fn scalar<'a>(out: &mut Vec<Value<'a>>, value: Cow<'a, [u8]>) {
    out.push(Value { key: None, value });
}

fn flag(b: bool) -> Cow<'static, [u8]> {
    Cow::Borrowed(if b { b"1" } else { b"0" })
}

/// All values of `var`, before selection. `key` narrows a transaction collection (`TX`,
/// `IP`, ...) to one member up front: CRS reads single TX variables hundreds of times
/// per request, and copying the whole collection each time would dominate the cost.
/// `only` (the prefilter's candidates) may leave out request collection members that
/// are not among them; the caller still filters by it.
fn values<'a>(
    var: Var,
    key: Option<&str>,
    (only, known): (Option<Only<'_>>, Known<'_>),
    data: &'a Data,
    state: &State,
    out: &mut Vec<Value<'a>>,
) {
    let owned = |v: &[u8]| Cow::<'a, [u8]>::Owned(v.to_vec());
    match var {
        Var::Args
        | Var::ArgsGet
        | Var::ArgsPost
        | Var::ArgsNames
        | Var::ArgsGetNames
        | Var::ArgsPostNames
        | Var::RequestHeaders
        | Var::RequestHeadersNames
        | Var::RequestCookies
        | Var::RequestCookiesNames
        | Var::Files
        | Var::FilesNames
        | Var::MultipartPartHeaders
        | Var::ResponseHeaders
        | Var::ResponseHeadersNames => {
            for &s in sources(var) {
                pairs(data, s, key, (only, known), out);
            }
        }
        Var::ArgsCombinedSize => {
            let size: usize = data
                .args_get
                .iter()
                .chain(&data.args_post)
                .map(|(k, v)| k.len() + v.len())
                .sum();
            scalar(out, Cow::Owned(size.to_string().into_bytes()));
        }
        Var::RequestUri => scalar(out, Cow::Borrowed(&data.uri)),
        Var::RequestUriRaw => scalar(out, Cow::Borrowed(&data.uri_raw)),
        Var::RequestFilename => scalar(out, Cow::Borrowed(&data.filename)),
        Var::RequestBasename => scalar(out, Cow::Borrowed(&data.basename)),
        Var::RequestLine => scalar(out, Cow::Borrowed(&data.line)),
        Var::RequestMethod => scalar(out, Cow::Borrowed(&data.method)),
        Var::RequestProtocol => scalar(out, Cow::Borrowed(&data.protocol)),
        Var::QueryString => scalar(out, Cow::Borrowed(&data.query)),
        Var::RequestBody => {
            if state.body_access {
                scalar(out, Cow::Borrowed(&data.body))
            }
        }
        Var::RequestBodyLength => scalar(out, Cow::Owned(data.body.len().to_string().into_bytes())),
        Var::ReqbodyError => scalar(out, flag(data.body_error.is_some())),
        Var::ReqbodyErrorMsg => {
            if let Some(e) = &data.body_error {
                scalar(out, Cow::Borrowed(e.as_bytes()))
            }
        }
        Var::ReqbodyProcessor => {
            // Known from phase 1 on, as in ModSecurity v3 (set with the Content-Type
            // header; JSON and XML as its recommended rules 200000/200001 set them in
            // phase 1): CRS's 901350 forces URLENCODED only where this is empty.
            // Empty when there is none, not absent (v3's anchored variables always have
            // a value): 901350's `!@rx` then matches a request without Content-Type.
            let p = data
                .body_processor
                .or(state.body_processor)
                .or(data.by_type);
            scalar(
                out,
                Cow::Borrowed(p.map_or(&b""[..], |p| p.name().as_bytes())),
            )
        }
        Var::FilesSizes => {
            for (k, size) in &data.file_sizes {
                out.push(Value {
                    key: Some(Cow::Borrowed(k)),
                    value: Cow::Owned(size.to_string().into_bytes()),
                });
            }
        }
        Var::FilesCombinedSize => {
            let size: usize = data.file_sizes.iter().map(|(_, s)| s).sum();
            scalar(out, Cow::Owned(size.to_string().into_bytes()));
        }
        Var::MultipartStrictError => scalar(out, flag(data.multipart_strict)),
        Var::MultipartUnmatchedBoundary => scalar(out, flag(data.multipart.unmatched_boundary)),
        Var::MultipartBoundaryQuoted => scalar(out, flag(data.multipart.boundary_quoted)),
        Var::MultipartBoundaryWhitespace => scalar(out, flag(data.multipart.boundary_whitespace)),
        Var::MultipartDataBefore => scalar(out, flag(data.multipart.data_before)),
        Var::MultipartDataAfter => scalar(out, flag(data.multipart.data_after)),
        Var::MultipartHeaderFolding => scalar(out, flag(data.multipart.header_folding)),
        Var::MultipartLfLine => scalar(out, flag(data.multipart.lf_line)),
        Var::MultipartMissingSemicolon => scalar(out, flag(data.multipart.missing_semicolon)),
        Var::MultipartInvalidQuoting => scalar(out, flag(data.multipart.invalid_quoting)),
        Var::MultipartInvalidPart => scalar(out, flag(data.multipart.invalid_part)),
        Var::MultipartInvalidHeaderFolding => scalar(out, flag(false)),
        Var::MultipartFileLimitExceeded => scalar(out, flag(false)),
        Var::MultipartCrlfLfLines => scalar(out, flag(data.multipart.crlf_lf_lines)),
        // The two XPath expressions rule sets use (the compiler refuses others).
        Var::Xml => {
            if data.body_processor == Some(BodyProcessor::Xml) && data.body_error.is_none() {
                out.push(Value {
                    key: Some(Cow::Borrowed("/*")),
                    value: Cow::Borrowed(&data.xml.text),
                });
                for a in &data.xml.attributes {
                    out.push(Value {
                        key: Some(Cow::Borrowed("//@*")),
                        value: Cow::Borrowed(a),
                    });
                }
            }
        }
        Var::Tx
        | Var::Ip
        | Var::Global
        | Var::Session
        | Var::User
        | Var::Resource
        | Var::Geo
        | Var::Env => {
            let name = collection_name(var).unwrap_or_default();
            match key {
                Some(key) => {
                    if let Some(c) = state.collections.get(name)
                        && let Some((k, v)) = c.entry(state.names, key)
                    {
                        out.push(Value {
                            key: Some(Cow::Owned(k.to_owned())),
                            value: owned(v),
                        });
                    }
                }
                None => {
                    for (k, v) in state.collection(name) {
                        out.push(Value {
                            key: Some(Cow::Owned(k.to_owned())),
                            value: owned(v),
                        });
                    }
                }
            }
        }
        Var::MatchedVar => {
            if let Some((_, v)) = state.matched_var() {
                scalar(out, owned(v.as_slice()))
            }
        }
        Var::MatchedVarName => {
            if let Some((n, _)) = state.matched_var() {
                scalar(out, owned(n.as_bytes()))
            }
        }
        Var::MatchedVars | Var::MatchedVarsNames => {
            for (n, v) in &state.matched_vars {
                out.push(Value {
                    key: Some(Cow::Owned(n.to_string())),
                    value: if var == Var::MatchedVars {
                        owned(v.as_slice())
                    } else {
                        owned(n.as_bytes())
                    },
                });
            }
        }
        Var::UniqueId => scalar(out, Cow::Borrowed(&data.unique_id)),
        Var::RemoteAddr => scalar(out, Cow::Borrowed(&data.remote_addr)),
        Var::RemotePort => scalar(out, Cow::Borrowed(&data.remote_port)),
        Var::ServerName => scalar(out, Cow::Borrowed(&data.server_name)),
        Var::ServerPort => {}
        Var::Duration => scalar(
            out,
            Cow::Owned(state.started.elapsed().as_micros().to_string().into_bytes()),
        ),
        Var::FullRequest => {
            let mut full = data.line.clone();
            for (k, v) in &data.headers {
                full.extend_from_slice(b"\n");
                full.extend_from_slice(k.as_bytes());
                full.extend_from_slice(b": ");
                full.extend_from_slice(v);
            }
            full.extend_from_slice(b"\n\n");
            full.extend_from_slice(&data.body);
            scalar(out, Cow::Owned(full));
        }
        Var::FullRequestLength => {
            let len = data.line.len()
                + data
                    .headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len() + 3)
                    .sum::<usize>()
                + 2
                + data.body.len();
            scalar(out, Cow::Owned(len.to_string().into_bytes()));
        }
        // Empty until the response is processed (phases 3 and 4).
        Var::ResponseStatus
        | Var::ResponseProtocol
        | Var::ResponseContentType
        | Var::ResponseContentLength
            if data.response.seen =>
        {
            let value = match var {
                Var::ResponseStatus => &data.response.status,
                Var::ResponseProtocol => &data.response.protocol,
                Var::ResponseContentType => &data.response.content_type,
                _ => &data.response.content_length,
            };
            scalar(out, Cow::Borrowed(value))
        }
        Var::ResponseBody if data.response.seen => scalar(out, Cow::Borrowed(&data.response.body)),
        Var::ResponseBody
        | Var::ResponseStatus
        | Var::ResponseProtocol
        | Var::ResponseContentType
        | Var::ResponseContentLength => {}
    }
}

/// Macro expansion against the running transaction.
struct Ctx<'a> {
    data: &'a Data,
    state: &'a State<'a>,
    rule: Option<&'a Rule>,
}

impl Resolve for Ctx<'_> {
    fn first(&self, var: Var, key: Option<&str>) -> Option<Vec<u8>> {
        // `%{tx.critical_anomaly_score}` and the like, in CRS's setvars: the member
        // itself, copied once, rather than a listing of copies.
        if let (Some(collection), Some(key)) = (collection_name(var), key) {
            return self.state.get(collection, key).map(<[u8]>::to_vec);
        }
        let mut out = Vec::new();
        values(var, key, (None, None), self.data, self.state, &mut out);
        out.into_iter()
            .find(|v| match (key, &v.key) {
                (None, _) => true,
                (Some(k), Some(name)) => name.eq_ignore_ascii_case(k),
                (Some(_), None) => false,
            })
            .map(|v| v.value.into_owned())
    }

    fn member(&self, var: Var, slot: u32) -> Option<&[u8]> {
        self.state.get_slot(collection_name(var)?, slot)
    }

    fn append(&self, var: Var, key: Option<&str>, slot: Option<u32>, out: &mut Vec<u8>) {
        match (collection_name(var), slot) {
            // A member the rules know: by index, copied once.
            (Some(collection), Some(slot)) => {
                out.extend_from_slice(self.state.get_slot(collection, slot).unwrap_or_default())
            }
            _ => out.extend(self.first(var, key).unwrap_or_default()),
        }
    }

    fn rule_property(&self, name: &str) -> Option<Vec<u8>> {
        let rule = self.rule?;
        let a = rule.actions();
        match name {
            "id" => Some(rule.id.to_string().into_bytes()),
            "phase" => Some(rule.phase.to_string().into_bytes()),
            "msg" => a.msg.as_ref().map(|m| m.expand(self)),
            "logdata" => a.logdata.as_ref().map(|m| m.expand(self)),
            "severity" => a.severity.map(|s| s.to_string().into_bytes()),
            "ver" => a.ver.clone().map(String::into_bytes),
            "rev" => a.rev.clone().map(String::into_bytes),
            "maturity" => a.maturity.map(|s| s.to_string().into_bytes()),
            "accuracy" => a.accuracy.map(|s| s.to_string().into_bytes()),
            _ => None,
        }
    }
}

/// A value a link inspects; its name (`MATCHED_VAR_NAME`) is only spelled out if it matches.
struct Inspected<'a> {
    var: Var,
    key: Option<Cow<'a, str>>,
    count: bool,
    value: Cow<'a, [u8]>,
}

impl Inspected<'_> {
    fn name(&self) -> String {
        // Spelled by hand: `format!` costs several times more, once per matching value.
        let var = self.var.name();
        match (&self.key, self.count) {
            (_, true) => {
                let mut name = String::with_capacity(var.len() + 1);
                name.push('&');
                name.push_str(var);
                name
            }
            (Some(k), false) => {
                let mut name = String::with_capacity(var.len() + 1 + k.len());
                name.push_str(var);
                name.push(':');
                name.push_str(k);
                name
            }
            (None, false) => var.to_owned(),
        }
    }
}

/// The values a link inspects: its targets, selected, minus its own exclusions and the
/// transaction's `ctl` exclusions for the rule.
fn resolve_targets<'a, 's>(
    rule: &Rule,
    link: &Link,
    data: &'a Data,
    state: &State<'s>,
    // The selectors' answers, for the data generation.
    (memo, generation): (&mut SelectorMemo, u32),
    // The prefilter's candidates, and the values known not to match.
    (only, known): (Option<Only<'_>>, Known<'_>),
    lists: &mut Lists<'a, 's>,
) {
    let Lists { out, all, ctl } = lists;
    // A prefiltered link inspects about as many values as it has candidates: room for
    // them up front rather than growing from empty.
    let room = only.map_or(0, |o| o.values.len());
    out.clear();
    out.reserve(room);
    all.reserve(room);
    state.exceptions.for_rule(rule, ctl);
    for (
        t,
        Target {
            var,
            selector,
            count,
        },
    ) in link.targets.include.iter().enumerate()
    {
        all.clear();
        // Whether `all` holds only members the selector selects.
        let mut selected_already = false;
        let key = match selector {
            Some(Selector::Key(k)) => Some(k.as_str()),
            _ => None,
        };
        match (collection_name(*var), selector) {
            // A transaction collection read through a regular expression
            // (`TX:/^header_name_/`): only the members it selects are copied, those
            // with numbered names by the answers computed at load time.
            (Some(name), Some(s @ Selector::Regex(_))) => {
                let known = link.selected_names.get(t).and_then(Option::as_deref);
                // The names the rules do not know (`tx.header_name_<name>`, set per
                // request header) compared with the literal of `^LITERAL` rather than
                // matched with the expression: CRS's 920450 lists them once per request.
                let literal = s.anchored_literal().map(str::as_bytes);
                selected_already = true;
                for (slot, k, v) in state
                    .collections
                    .get(name)
                    .into_iter()
                    .flat_map(|c| c.iter_numbered())
                {
                    let selected = match (known, literal) {
                        (Some(bits), _) if slot != NO_SLOT => {
                            bits[slot as usize / 64] & (1 << (slot % 64)) != 0
                        }
                        (_, Some(l)) => k
                            .as_bytes()
                            .get(..l.len())
                            .is_some_and(|start| start.eq_ignore_ascii_case(l)),
                        _ => s.matches(k),
                    };
                    if selected {
                        all.push(Value {
                            key: Some(Cow::Owned(k.to_owned())),
                            value: Cow::Owned(v.to_vec()),
                        });
                    }
                }
            }
            // A member named by a key (`TX:anomaly_score`): by its number when it has one.
            (Some(name), Some(Selector::Key(k))) => {
                if let Some(c) = state.collections.get(name) {
                    let member = match link.target_slots.get(t).copied().flatten() {
                        Some(slot) => c.entry_by_slot(slot),
                        None => c.entry(state.names, k),
                    };
                    if let Some((k, v)) = member {
                        all.push(Value {
                            key: Some(Cow::Owned(k.to_owned())),
                            value: Cow::Owned(v.to_vec()),
                        });
                    }
                }
            }
            // A count counts the values known not to match too.
            _ => values(
                *var,
                key,
                (only, known.filter(|_| !*count)),
                data,
                state,
                all,
            ),
        }
        let selected = all.drain(..).filter(|v| {
            // The prefilter's candidates first: a cheap test that drops most values.
            if let (Some(only), Cow::Borrowed(b)) = (only, &v.value)
                && !only.contains(b)
            {
                return false;
            }
            let key = v.key.as_ref();
            if let Some(s) = selector
                && !selected_already
                && !key.is_some_and(|k| memo.matches(generation, s, k))
            {
                return false;
            }
            !link
                .targets
                .exclude
                .iter()
                .chain(ctl.iter().copied())
                .any(|e| memo.excludes(generation, e, *var, key))
        });
        if *count {
            let n = selected.count();
            out.push(Inspected {
                var: *var,
                key: None,
                count: true,
                value: Cow::Owned(n.to_string().into_bytes()),
            });
        } else {
            out.reserve(selected.size_hint().1.unwrap_or(0));
            out.extend(selected.map(|v| Inspected {
                var: *var,
                key: v.key,
                count: false,
                value: v.value,
            }));
        }
    }
}

/// The lists [`resolve_targets`] fills: the values a link inspects, each target's values
/// before selection, and the `ctl` exclusions for the rule. They borrow the request data
/// and the rule set, so they are made per link, but from the allocations of the last
/// link's ([`SpareLists`]): a transaction resolves targets hundreds of times, and
/// allocating and freeing these vectors each time was a noticeable part of the cost of
/// an empty request.
struct Lists<'a, 's> {
    out: Vec<Inspected<'a>>,
    all: Vec<Value<'a>>,
    ctl: Vec<&'s Exclusion>,
}

/// The allocations of [`Lists`] between links, and between transactions in the memo's
/// scratch.
#[derive(Default)]
struct SpareLists {
    out: Vec<Inspected<'static>>,
    all: Vec<Value<'static>>,
    ctl: Vec<&'static Exclusion>,
}

impl SpareLists {
    fn take<'a, 's>(&mut self) -> Lists<'a, 's> {
        Lists {
            out: recycle(std::mem::take(&mut self.out)),
            all: recycle(std::mem::take(&mut self.all)),
            ctl: recycle(std::mem::take(&mut self.ctl)),
        }
    }

    fn keep(&mut self, lists: Lists<'_, '_>) {
        self.out = recycle(lists.out);
        self.all = recycle(lists.all);
        self.ctl = recycle(lists.ctl);
    }

    fn capacity(&self) -> usize {
        self.out.capacity().max(self.all.capacity())
    }
}

/// `v`'s allocation, emptied, as a vector of elements of another lifetime (same layout):
/// collecting a vector's own `into_iter` reuses its buffer in place, so nothing is
/// allocated or freed (and nothing is mapped: it is empty).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("emptied")).collect()
}

/// Transformed values already computed in this transaction. CRS applies the same few
/// transformation lists to the same arguments in rule after rule. A value borrowed from
/// the request data is known by its address and length: the data does not change while a
/// phase runs, and the cache is emptied when the body processor adds to it.
#[derive(Default)]
struct TransformCache {
    /// The index of the transformed value in `outputs`, or [`UNCHANGED`]: the list
    /// leaves the value as it is.
    entries: HashMap<CacheKey, u32, BuildHasherDefault<AddressHasher>>,
    outputs: Vec<Vec<u8>>,
    /// The features of values (by address and length) some list was applied to: CRS
    /// applies several lists to each argument, and each needs them.
    features: HashMap<(usize, usize), Features, BuildHasherDefault<AddressHasher>>,
    /// Counts the times the request data changed (and the cache was emptied), so that what
    /// is derived from the data (the prefilter's candidates) knows when to recompute.
    generation: u32,
}

/// A transaction's caches and scratch tables, all keyed by addresses of its own request
/// data: an [`EvalMemo`] keeps them for the next transaction, emptied ([`Scratch::reset`])
/// but with their room, so that a transaction with a memo allocates none of them again.
/// Tables a large request grew past [`SCRATCH_LIMIT`] entries are not kept.
#[derive(Default)]
pub(crate) struct Scratch {
    cache: TransformCache,
    selectors: SelectorMemo,
    candidates: Candidates,
    slots: MemoSlots,
    detect: crate::operators::DetectMemo,
    spare: SpareLists,
    /// The match records' room, handed back by [`EvalMemo::reuse`] (empty).
    matches: Option<Matches>,
    /// The `TX` collection's room, handed back by [`EvalMemo::reuse`] (empty): the start
    /// snapshot's members are copied into it.
    tx: Option<Collection>,
    /// The last transaction's request copies ([`Data::kept`]), their room reused by the
    /// next request's.
    data: Data,
}

/// The memo's record of request values by address and length (`None`: none yet), for the
/// whole transaction: looked up once for the prefilter and the rules alike, and in phase
/// 1 and 2 alike (the memo's keyed hash of the bytes costs more than this table's hash
/// of the address). An address keeps its bytes while the transaction runs: the request
/// data never frees a value (the body processor and the response fill fields that were
/// empty), so no later value can take the address of one looked up before.
type MemoSlots = HashMap<(usize, usize), Option<Slot>, BuildHasherDefault<AddressHasher>>;

/// The most entries a kept scratch table may have room for.
const SCRATCH_LIMIT: usize = 4096;

impl Scratch {
    fn fresh() -> Scratch {
        Scratch {
            cache: TransformCache {
                entries: HashMap::with_capacity_and_hasher(
                    TRANSFORM_CACHE_CAPACITY,
                    Default::default(),
                ),
                ..TransformCache::default()
            },
            ..Scratch::default()
        }
    }

    /// Empties every table (their keys are addresses of the last request's data, which
    /// the next request's data may reuse), keeping their room; `None` when one grew too
    /// large to keep.
    fn reset(mut self) -> Option<Scratch> {
        let c = &self.cache;
        if [
            c.entries.capacity(),
            c.outputs.capacity(),
            c.features.capacity(),
            self.selectors.map.capacity(),
            self.candidates.values.capacity(),
            self.candidates.ranges.capacity() / 8,
            self.candidates.work.capacity(),
            self.slots.capacity(),
            self.detect.capacity(),
            self.spare.capacity(),
        ]
        .into_iter()
        .any(|n| n > SCRATCH_LIMIT)
        {
            return None;
        }
        self.cache.entries.clear();
        self.cache.outputs.clear();
        self.cache.features.clear();
        // A new generation: what was derived from the last data is stale.
        self.cache.generation = self.cache.generation.wrapping_add(1);
        self.selectors.map.clear();
        self.candidates.generation = None;
        self.slots.clear();
        self.detect.clear();
        Some(self)
    }
}

/// Transformation list, address and length of the input.
type CacheKey = (u32, usize, usize);

const UNCHANGED: u32 = u32::MAX;

/// Distinct (transformation list, value) pairs a CRS request applies transformations to
/// (most are found unchanged by their features and never enter the cache); sized up
/// front so the table is rarely rehashed, not so large that allocating it costs.
const TRANSFORM_CACHE_CAPACITY: usize = 256;

impl TransformCache {
    fn apply<'s>(&'s mut self, link: &Link, input: &'s [u8]) -> Cow<'s, [u8]> {
        match self.index(link.chain, &link.transforms, input, None) {
            UNCHANGED => Cow::Borrowed(input),
            i => Cow::Borrowed(self.outputs[i as usize].as_slice()),
        }
    }

    /// `input` after the transformation list `chain` (`transforms`), as an index into
    /// `outputs` or [`UNCHANGED`].
    fn index(
        &mut self,
        chain: u32,
        transforms: &[Transform],
        input: &[u8],
        features: Option<Features>,
    ) -> u32 {
        if chain == 0 {
            return UNCHANGED;
        }
        let key = (chain, input.as_ptr() as usize, input.len());
        let outputs = &mut self.outputs;
        let known = &mut self.features;
        *self.entries.entry(key).or_insert_with(|| {
            // Kept for the other lists applied to the same value, unless the first
            // transformation does not look at them (`t:length`).
            let features = features.or_else(|| match transforms.first() {
                Some(t) if t.rewrites_all() => None,
                _ => Some(
                    *known
                        .entry((key.1, key.2))
                        .or_insert_with(|| Features::of(input)),
                ),
            });
            match apply_all_from(transforms, input, features) {
                Cow::Borrowed(_) => UNCHANGED,
                Cow::Owned(v) => {
                    outputs.push(v);
                    outputs.len() as u32 - 1
                }
            }
        })
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.outputs.clear();
        self.features.clear();
        self.generation += 1;
    }
}

/// The prefilter's verdict for one data generation: for each prefiltered link, the values
/// (by address and length) that contain one of its factors after its transformations.
/// A link without candidates cannot match and is skipped.
#[derive(Default)]
struct Candidates {
    /// The cache generation these were computed for (`None`: never).
    generation: Option<u32>,
    /// `values[ranges[id].0..ranges[id].1]` are the candidates of link `id`, and
    /// `masks[id]` their [`Only::bit`]s.
    masks: Vec<u64>,
    ranges: Vec<(u32, u32)>,
    /// The links with candidates: the only entries of `ranges`, `masks` and `indexed`
    /// the next computation has to reset (CRS has hundreds of prefiltered links, and an
    /// ordinary request gives a few dozen of them a candidate).
    with_candidates: Vec<u32>,
    values: Vec<(usize, usize)>,
    /// Per value in `values`: where it is in the request collections ([`Only::origins`]).
    origins: Vec<(u8, u32)>,
    /// Per link: whether none of its candidates is empty ([`Only::indexed`]).
    indexed: Vec<bool>,
    work: Work,
}

/// The working tables of [`Candidates::compute`], kept with their room from one
/// computation to the next (and, in the memo's scratch, from one transaction to the
/// next): a computation made a dozen of them, several of a few kilobytes, and allocating
/// and freeing them cost more than the rest of a computation for a request whose values
/// the memo already knows. Those that borrow the request data are kept empty
/// ([`recycle`]).
#[derive(Default)]
struct Work {
    list: Vec<(&'static [u8], VarMask)>,
    keys: Vec<Option<Cow<'static, str>>>,
    all: Vec<Value<'static>>,
    origins: Vec<(u8, u32)>,
    index: HashMap<(usize, usize), usize, BuildHasherDefault<AddressHasher>>,
    scans: Scans,
    raw_scan: Vec<Option<usize>>,
    done: Vec<(u8, u32, usize)>,
    walk: Walk,
    out_scan: HashMap<usize, usize, BuildHasherDefault<AddressHasher>>,
    pairs: Vec<(u32, u32)>,
    live_links: Vec<u64>,
    excluded: Vec<u64>,
    found: Vec<u64>,
    covered: Vec<u64>,
    /// Per set of variables, the prefiltered links that target one of them, for the
    /// rule set [`RuleSet::id`] `var_links_for` (kept while it is the same).
    var_links_of: Vec<(VarMask, Vec<u64>)>,
    var_links_for: u64,
}

impl Work {
    /// The room of its largest table.
    fn capacity(&self) -> usize {
        [
            self.list.capacity(),
            self.index.capacity(),
            self.scans.by_hash.capacity(),
            self.out_scan.capacity(),
            self.pairs.capacity() / 8,
        ]
        .into_iter()
        .max()
        .unwrap_or(0)
    }
}

impl Candidates {
    /// Whether link `id` has no candidate (it cannot match).
    fn none(&self, id: u32) -> bool {
        let (start, end) = self.ranges[id as usize];
        start == end
    }

    fn of(&self, id: u32) -> Only<'_> {
        let id = id as usize;
        let (start, end) = self.ranges[id];
        let range = start as usize..end as usize;
        Only {
            values: &self.values[range.clone()],
            mask: self.masks[id],
            origins: &self.origins[range],
            indexed: self.indexed[id],
        }
    }

    /// Lists the static values, scans each distinct transformed value once with the
    /// prefilter's automaton, and records which links each value is a candidate for.
    fn compute<'a>(
        &mut self,
        rules: &RuleSet,
        data: &'a Data,
        state: &State<'_>,
        cache: &mut TransformCache,
        memo: &mut SelectorMemo,
        // The memo across requests, with its records by address for this generation.
        mut values_memo: Option<(&mut EvalMemo, &mut MemoSlots)>,
    ) {
        let pf = &rules.prefilter;
        let links = pf.link_vars.len();
        self.generation = Some(cache.generation);
        if self.ranges.len() == links {
            for &link in &self.with_candidates {
                let link = link as usize;
                self.ranges[link] = (0, 0);
                self.masks[link] = 0;
                self.indexed[link] = true;
            }
        } else {
            // Another rule set's tables (or none yet).
            self.ranges.clear();
            self.ranges.resize(links, (0, 0));
            self.masks.clear();
            self.masks.resize(links, 0);
            self.indexed.clear();
            self.indexed.resize(links, true);
        }
        self.with_candidates.clear();
        self.values.clear();
        self.origins.clear();
        let Some(ac) = &pf.ac else { return };
        let words = pf.words();
        let Work {
            list: spare_list,
            keys: spare_keys,
            all: spare_all,
            origins,
            index,
            scans,
            raw_scan,
            done,
            walk,
            out_scan,
            pairs,
            live_links,
            excluded,
            found,
            covered,
            var_links_of,
            var_links_for,
        } = &mut self.work;
        if *var_links_for != rules.id {
            var_links_of.clear();
            *var_links_for = rules.id;
        }
        // The distinct values, each with the variables it belongs to (an argument is in
        // ARGS and ARGS_POST).
        let mut list: Vec<(&[u8], VarMask)> = recycle(std::mem::take(spare_list));
        let mut keys: Vec<Option<Cow<'_, str>>> = recycle(std::mem::take(spare_keys));
        let mut all: Vec<Value<'_>> = recycle(std::mem::take(spare_all));
        // Where each is in the request collections (the first place listed: a value's
        // address is its member's, but for empty values).
        origins.clear();
        index.clear();
        // Where each request collection's members were listed: a collection listed again
        // for another variable (`ARGS_POST` after `ARGS`) adds that variable to the same
        // entries, found by place rather than by address (its members are allocations of
        // their own; empty ones, which share an address, get an entry each).
        let mut listed_at = [None; 2 * RESPONSE_HEADERS as usize + 2];
        for &(var, _) in &pf.vars {
            let bit = var_bit(var);
            let from = sources(var);
            if !from.is_empty() {
                for &s in from {
                    let members = data.pairs_of(s);
                    match listed_at[usize::from(s)] {
                        Some(at) => {
                            for (_, vars) in &mut list[at..at + members.len()] {
                                *vars |= bit;
                            }
                        }
                        None => {
                            listed_at[usize::from(s)] = Some(list.len());
                            for (i, (k, v)) in members.iter().enumerate() {
                                let bytes = if s % 2 == 1 { k.as_bytes() } else { v };
                                list.push((bytes, bit));
                                keys.push(Some(Cow::Borrowed(k)));
                                origins.push((s, i as u32));
                            }
                        }
                    }
                }
                continue;
            }
            let mut add =
                |key: Option<Cow<'a, str>>, bytes: &'a [u8], origin: (u8, u32)| match index
                    .entry((bytes.as_ptr() as usize, bytes.len()))
                {
                    std::collections::hash_map::Entry::Occupied(e) => list[*e.get()].1 |= bit,
                    std::collections::hash_map::Entry::Vacant(e) => {
                        e.insert(list.len());
                        list.push((bytes, bit));
                        keys.push(key);
                        origins.push(origin);
                    }
                };
            if var == Var::RequestBody {
                // Listed whatever `ctl:requestBodyAccess` says now: it may change later.
                all.push(Value {
                    key: None,
                    value: Cow::Borrowed(&data.body[..]),
                });
            } else {
                values(var, None, (None, None), data, state, &mut all);
            }
            for v in all.drain(..) {
                if let Cow::Borrowed(bytes) = v.value {
                    add(v.key, bytes, (NO_SOURCE, 0));
                }
            }
        }
        // Scans by content, case folded: a lowercased value finds what the value finds.
        scans.start(words, pf.pattern_links.len().div_ceil(64));
        raw_scan.clear();
        raw_scan.resize(list.len(), None);
        // The transformed values of the current value, by (case, suffix): `done`.
        out_scan.clear();
        pairs.clear();
        pairs.reserve(4 * list.len());
        // `ctl:ruleRemoveTargetByTag` exclusions in force, alike ones merged (a policy
        // names the same selector for many tags): the links each takes a value from.
        // Exclusions are only ever added, so candidates that respect the ones in force now
        // stay right for the rest of the transaction.
        let mut groups: Vec<(&Exclusion, Vec<u64>)> = Vec::new();
        for &(tag, e) in &state.exceptions.targets_by_tag {
            let links = &pf.tag_links[tag as usize];
            match groups.iter_mut().find(|(g, _)| g.same(e)) {
                Some((_, bits)) => bits.iter_mut().zip(links).for_each(|(b, l)| *b |= l),
                None => groups.push((e, links.clone())),
            }
        }
        for bits in [&mut *live_links, &mut *excluded, &mut *found, &mut *covered] {
            bits.clear();
            bits.resize(words, 0);
        }
        // `found`: the links one of whose factors occurs in the current value (before
        // the exclusions), as the memo keeps them.
        let mut last_var_links: Option<usize> = None;
        for (vi, &(bytes, mask)) in list.iter().enumerate() {
            // The links that inspect this value: those targeting one of its variables
            // from which no exclusion takes it. (`None`: all links of its variables.)
            let live: &[u64] = if groups.is_empty() {
                // All links of its variables, the union made once per set of variables.
                // Values come variable by variable: most have the last one's variables.
                let known = match last_var_links {
                    Some(i) if var_links_of[i].0 == mask => Some(i),
                    _ => var_links_of.iter().position(|(m, _)| *m == mask),
                };
                last_var_links = known.or(Some(var_links_of.len()));
                match known {
                    Some(i) => &var_links_of[i].1,
                    None => {
                        let mut union = vec![0u64; words];
                        let held = MaskWords::of(mask);
                        for (_, var_links) in pf.vars.iter().filter(|(v, _)| held.holds(*v)) {
                            union.iter_mut().zip(var_links).for_each(|(u, v)| *u |= v);
                        }
                        var_links_of.push((mask, union));
                        &var_links_of[var_links_of.len() - 1].1
                    }
                }
            } else {
                live_links.iter_mut().for_each(|w| *w = 0);
                let held = MaskWords::of(mask);
                for (var, var_links) in pf.vars.iter().filter(|(v, _)| held.holds(*v)) {
                    excluded.iter_mut().for_each(|w| *w = 0);
                    for (e, bits) in &groups {
                        let across = values_memo.as_mut().map(|(m, s)| (&mut **m, &mut **s));
                        if memo.excludes_in(cache.generation, e, *var, keys[vi].as_ref(), across) {
                            excluded.iter_mut().zip(bits).for_each(|(x, b)| *x |= b);
                        }
                    }
                    for ((l, v), x) in live_links.iter_mut().zip(var_links).zip(excluded.iter()) {
                        *l |= v & !x;
                    }
                }
                &live_links[..]
            };
            let at = (bytes.as_ptr() as usize, bytes.len());
            let slot = values_memo
                .as_mut()
                .and_then(|(m, slots)| *slots.entry(at).or_insert_with(|| m.find(bytes)));
            // A link the memo knows does not match the value would list it only to skip
            // it: without the pair, a link left with no candidate is skipped whole. (A
            // prefiltered link's memo bit is its prefilter id: the record's first words
            // are a bit set of prefiltered links.)
            let no_match = slot
                .zip(values_memo.as_ref())
                .map(|(slot, (m, _))| m.no_match_words(slot, words));
            if let Some(known) = slot
                .zip(values_memo.as_ref())
                .and_then(|(slot, (m, _))| m.prefilter(slot, mask, live))
            {
                pair_links(known, live, no_match, vi as u32, pairs);
                continue;
            }
            found.iter_mut().for_each(|w| *w = 0);
            // Whether a list was left out because no link using it inspects the value:
            // then `found` answers only for the links of the lists applied (`covered`).
            let mut partial = false;
            covered.iter_mut().for_each(|w| *w = 0);
            // The automaton ignores case: transformations that change no more than case
            // need not be applied, and those that leave the value as it is not at all. A
            // list is applied from its first transformation that may change the value,
            // and lists with the same rest (after the same change of case) share it.
            // Kept for the rules' transformations of the same value.
            let features = *cache
                .features
                .entry((bytes.as_ptr() as usize, bytes.len()))
                .or_insert_with(|| Features::of(bytes));
            let changing = features.changing(true);
            let automaton = pf.automaton_for(mask);
            done.clear();
            walk.start(features);
            for chain in pf.chains.iter().filter(|c| c.vars & mask != 0) {
                if !groups.is_empty() {
                    if !chain.links.iter().zip(live.iter()).any(|(c, l)| c & l != 0) {
                        partial = true;
                        continue;
                    }
                    covered
                        .iter_mut()
                        .zip(&chain.links)
                        .for_each(|(c, l)| *c |= l);
                }
                let scan = match chain
                    .transforms
                    .iter()
                    .position(|t| t.bit() & changing != 0)
                {
                    None => match raw_scan[vi] {
                        Some(s) => s,
                        None => {
                            let s = scans.scan(ac, pf, automaton, Src::Value(vi), &list);
                            raw_scan[vi] = Some(s);
                            s
                        }
                    },
                    Some(k) => {
                        let (suffix, case) = chain.starts[k];
                        match done.iter().find(|(c, x, _)| (*c, *x) == (case, suffix)) {
                            Some(&(_, _, s)) => s,
                            None => {
                                let out = walk.apply(
                                    bytes,
                                    case,
                                    &chain.transforms[k..],
                                    &mut scans.outputs,
                                );
                                let s = match out {
                                    None => match raw_scan[vi] {
                                        Some(s) => s,
                                        None => {
                                            let s = scans.scan(
                                                ac,
                                                pf,
                                                automaton,
                                                Src::Value(vi),
                                                &list,
                                            );
                                            raw_scan[vi] = Some(s);
                                            s
                                        }
                                    },
                                    Some(i) => match out_scan.get(&i) {
                                        Some(&s) => s,
                                        None => {
                                            let s = scans.scan(
                                                ac,
                                                pf,
                                                automaton,
                                                Src::Output(i),
                                                &list,
                                            );
                                            out_scan.insert(i, s);
                                            s
                                        }
                                    },
                                };
                                done.push((case, suffix, s));
                                s
                            }
                        }
                    }
                };
                let hits = &scans.hits[scan * words..(scan + 1) * words];
                for ((f, &h), &l) in found.iter_mut().zip(hits).zip(&chain.links) {
                    *f |= h & l;
                }
            }
            pair_links(found, live, no_match, vi as u32, pairs);
            if let Some((m, slots)) = values_memo.as_mut()
                && let Some(slot) = slot.or_else(|| {
                    let added = m.find_or_add(bytes);
                    slots.insert(at, added);
                    added
                })
            {
                m.set_prefilter(slot, mask, found, partial.then_some(&covered[..]));
            }
        }
        // Grouped by link (a counting sort over the links with candidates only, not
        // over every prefiltered link): first each link's count, in `ranges[link].1`...
        for &(link, _) in pairs.iter() {
            let count = &mut self.ranges[link as usize].1;
            if *count == 0 {
                self.with_candidates.push(link);
            }
            *count += 1;
        }
        // ... then where each link's values start (`ranges[link].1` then moves to where
        // the next one goes) ...
        let mut total = 0;
        for &link in &self.with_candidates {
            let range = &mut self.ranges[link as usize];
            let count = range.1;
            *range = (total, total);
            total += count;
        }
        // ... and the values in place, each link's in the order they were listed.
        self.values.resize(pairs.len(), (0, 0));
        self.origins.resize(pairs.len(), (NO_SOURCE, 0));
        for &(link, vi) in pairs.iter() {
            let (bytes, _) = list[vi as usize];
            let value = (bytes.as_ptr() as usize, bytes.len());
            let l = link as usize;
            let slot = self.ranges[l].1 as usize;
            self.values[slot] = value;
            self.origins[slot] = origins[vi as usize];
            self.ranges[l].1 += 1;
            self.masks[l] |= Only::bit(value.0);
            if bytes.is_empty() {
                self.indexed[l] = false;
            }
        }
        // The transformed copies of request data are not kept.
        scans.outputs.clear();
        *spare_list = recycle(list);
        *spare_keys = recycle(keys);
        *spare_all = recycle(all);
    }
}

/// Adds `(link, value)` to `pairs` for each link set in `links` that inspects the value
/// (set in `live`) and is not known not to match it (set in `no_match`).
#[inline(always)]
fn pair_links(
    links: &[u64],
    live: &[u64],
    no_match: Option<&[u64]>,
    value: u32,
    pairs: &mut Vec<(u32, u32)>,
) {
    for (w, (&bits, &l)) in links.iter().zip(live).enumerate() {
        let mut m = bits & l & !no_match.map_or(0, |n| n[w]);
        while m != 0 {
            let link = w * 64 + m.trailing_zeros() as usize;
            m &= m - 1;
            pairs.push((link as u32, value));
        }
    }
}

/// The transformations applied to one value within [`Candidates::compute`], step by
/// step: lists that begin alike (`t:urlDecodeUni,t:htmlEntityDecode,...`) share their
/// first steps, and a step that leaves its input as it is costs a bit test.
#[derive(Default)]
struct Walk {
    /// The features of the value (`None`) and of outputs (by index).
    features: Vec<(Option<usize>, Features)>,
    /// Steps taken: input, transformation, output (`None`: the value itself).
    steps: Vec<(Option<usize>, Transform, Option<usize>)>,
    /// The value lowercased or uppercased, once needed.
    cased: [Option<usize>; 2],
}

impl Walk {
    fn start(&mut self, features: Features) {
        self.features.clear();
        self.features.push((None, features));
        self.steps.clear();
        self.cased = [None; 2];
    }

    fn features_of(&mut self, id: Option<usize>, bytes: &[u8], outputs: &[Vec<u8>]) -> Features {
        if let Some(&(_, f)) = self.features.iter().find(|(i, _)| *i == id) {
            return f;
        }
        let f = Features::of(id.map_or(bytes, |i| &outputs[i]));
        self.features.push((id, f));
        f
    }

    /// `value` after the change of `case` and `transforms`: `None` for the value itself,
    /// or an index into `outputs`.
    fn apply(
        &mut self,
        value: &[u8],
        case: u8,
        transforms: &[Transform],
        outputs: &mut Vec<Vec<u8>>,
    ) -> Option<usize> {
        let mut id = match case {
            CASE_LOWER | CASE_UPPER => {
                let slot = usize::from(case - 1);
                Some(*self.cased[slot].get_or_insert_with(|| {
                    outputs.push(if case == CASE_LOWER {
                        value.to_ascii_lowercase()
                    } else {
                        value.to_ascii_uppercase()
                    });
                    outputs.len() - 1
                }))
            }
            _ => None,
        };
        for &t in transforms {
            if self.features_of(id, value, outputs).leaves_unchanged(t) {
                continue;
            }
            if let Some(&(_, _, next)) = self.steps.iter().find(|(i, s, _)| (*i, *s) == (id, t)) {
                id = next;
                continue;
            }
            let input = id.map_or(value, |i| outputs[i].as_slice());
            let out = t.apply(input);
            let next = if out == input {
                id
            } else {
                outputs.push(out);
                Some(outputs.len() - 1)
            };
            self.steps.push((id, t, next));
            id = next;
        }
        id
    }
}

/// Where a scanned content is: a listed value, or a transformed value in `Scans::outputs`.
#[derive(Clone, Copy)]
enum Src {
    Value(usize),
    Output(usize),
}

/// Automaton scans of distinct contents within one [`Candidates::compute`].
#[derive(Default)]
struct Scans {
    words: usize,
    /// `words` words per scan: the prefiltered links one of whose factors occurs.
    hits: Vec<u64>,
    /// Scans by case-folded content hash (and automaton, [`Prefilter::automaton_for`]):
    /// the first with each hash, and the others in `more` (rare: one small vector rather
    /// than one per hash).
    by_hash: HashMap<u64, (Src, usize, usize), BuildHasherDefault<AddressHasher>>,
    more: Vec<(u64, Src, usize, usize)>,
    /// Factors already seen in the current scan.
    seen: Vec<u64>,
    count: usize,
    /// Transformed values scanned.
    outputs: Vec<Vec<u8>>,
}

impl Scans {
    /// Empties it for a computation with `words` words of links and `factor_words` of
    /// factors.
    fn start(&mut self, words: usize, factor_words: usize) {
        self.words = words;
        self.hits.clear();
        self.by_hash.clear();
        self.more.clear();
        self.seen.clear();
        self.seen.resize(factor_words, 0);
        self.count = 0;
        self.outputs.clear();
    }

    /// The scan of the content at `src`: an earlier one of the same content (ASCII case
    /// aside), or a new one.
    fn scan(
        &mut self,
        ac: &aho_corasick::nfa::contiguous::NFA,
        pf: &Prefilter,
        automaton: usize,
        src: Src,
        list: &[(&[u8], VarMask)],
    ) -> usize {
        let outputs = &self.outputs;
        let bytes_of = |src: Src| match src {
            Src::Value(i) => list[i].0,
            Src::Output(i) => outputs[i].as_slice(),
        };
        let bytes = bytes_of(src);
        // A scan with another automaton finds other factors: never shared.
        let hash = folded_hash(bytes) ^ (automaton as u64);
        let same =
            |other: Src, a: usize| a == automaton && bytes_of(other).eq_ignore_ascii_case(bytes);
        let taken = self.by_hash.get(&hash).copied();
        if let Some((other, scan, a)) = taken {
            if same(other, a) {
                return scan;
            }
            if let Some(&(_, _, scan, _)) = self
                .more
                .iter()
                .find(|(h, other, _, a)| *h == hash && same(*other, *a))
            {
                return scan;
            }
        }
        let scan = self.count;
        self.count += 1;
        self.hits.resize(self.count * self.words, 0);
        self.seen.iter_mut().for_each(|w| *w = 0);
        let hits = &mut self.hits[scan * self.words..];
        let seen = &mut self.seen;
        let mut found = |pattern: usize| {
            let (word, bit) = (pattern / 64, 1u64 << (pattern % 64));
            if seen[word] & bit != 0 {
                return;
            }
            seen[word] |= bit;
            for &link in &pf.pattern_links[pattern] {
                hits[link as usize / 64] |= 1 << (link % 64);
            }
        };
        match automaton {
            0 => Prefilter::scan(ac, bytes, found),
            k => {
                let (_, own, ids) = &pf.var_acs[k - 1];
                own.scan(bytes, |pattern| found(ids[pattern] as usize));
            }
        }
        if taken.is_some() {
            self.more.push((hash, src, scan, automaton));
        } else {
            self.by_hash.insert(hash, (src, scan, automaton));
        }
        scan
    }
}

/// A hash of `bytes` that ignores ASCII case (and, harmlessly, bit 5 of every byte):
/// contents equal but for case share it.
fn folded_hash(bytes: &[u8]) -> u64 {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut h = AddressHasher::default();
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut word = [0; 8];
        word.copy_from_slice(c);
        h.write_u64(u64::from_le_bytes(word) | FOLD);
    }
    for &b in chunks.remainder() {
        h.write_u64(u64::from(b | 0x20));
    }
    h.write_usize(bytes.len());
    h.finish()
}

/// A response, for phases 3 and 4.
#[derive(Debug, Clone, Default)]
pub struct Response {
    /// `RESPONSE_STATUS`.
    pub status: u16,
    /// `HTTP/1.1`, `HTTP/2.0`, ...
    pub protocol: String,
    /// `RESPONSE_HEADERS`, in order, names as sent; `Content-Type` and `Content-Length`
    /// are looked up without regard to case.
    pub headers: Vec<(String, String)>,
    /// `RESPONSE_BODY`, as much of it as the caller chooses to inspect (phase 4).
    pub body: Vec<u8>,
}

/// One request (and its response) going through the rules phase by phase, for callers
/// that act between phases: refuse on the headers before reading a body, inspect a
/// response. [`RuleSet::evaluate`] runs a whole request at once.
pub struct Transaction<'r> {
    cache: TransformCache,
    detect: crate::operators::DetectMemo,
    spare: SpareLists,
    selectors: SelectorMemo,
    candidates: Candidates,
    /// The caller's memo across requests, if it gave one.
    memo: Option<EvalMemo>,
    /// The memo's record of request values by address and length (`None`: none yet).
    slots: MemoSlots,
    rules: &'r RuleSet,
    data: Data,
    state: State<'r>,
    intervention: Option<Intervention>,
    matches: Matches,
    /// Set by `allow`: which phases are done.
    allowed: Option<AllowScope>,
    /// The highest phase run so far (0: none).
    done: u8,
    /// The body given with the request, processed by `process_request_body(None)`.
    pending_body: Vec<u8>,
    /// The rules decided once per rule set, when the transaction started from the start
    /// snapshot ([`Prefix::decided`]); empty otherwise.
    decided: &'r [Decision],
    /// Their runs ([`Prefix::runs`]), per phase; empty with `decided`.
    runs: &'r [Vec<Option<DecidedRun>>],
}

impl RuleSet {
    /// Starts a transaction for `request`; its body may be empty now and given to
    /// [`Transaction::process_request_body`] later.
    pub fn transaction(&self, request: &Request) -> Transaction<'_> {
        self.transaction_memo(request, None)
    }

    /// [`RuleSet::transaction`] with the caller's memo across requests ([`EvalMemo`]),
    /// which [`Transaction::finish_with_memo`] gives back. The verdicts are those
    /// without it; only the work done differs.
    pub fn transaction_with(&self, request: &Request, memo: EvalMemo) -> Transaction<'_> {
        self.transaction_memo(request, Some(memo))
    }

    fn transaction_memo(&self, request: &Request, mut memo: Option<EvalMemo>) -> Transaction<'_> {
        if let Some(m) = &mut memo {
            m.begin(self);
        }
        let scratch = memo
            .as_mut()
            .and_then(|m| m.scratch.take())
            .and_then(|kept| kept.downcast::<Scratch>().ok())
            .and_then(|kept| Scratch::reset(*kept))
            .unwrap_or_else(Scratch::fresh);
        Transaction {
            memo,
            slots: scratch.slots,
            rules: self,
            data: Data::new_in(request, scratch.data),
            state: State {
                collections: Collections {
                    tx: scratch.tx.unwrap_or_default(),
                    other: Default::default(),
                },
                names: &self.names,
                earlier_match: None,
                matched_vars: Vec::new(),
                exceptions: Exceptions::default(),
                mode: self.engine,
                body_processor: None,
                body_access: self.request_body_access,
                started: Instant::now(),
            },
            intervention: None,
            matches: match scratch.matches {
                Some(room) => room.reuse(self.infos.clone()),
                None => Matches::new(self.infos.clone(), MATCHES_CAPACITY),
            },
            allowed: None,
            cache: scratch.cache,
            candidates: scratch.candidates,
            selectors: scratch.selectors,
            detect: scratch.detect,
            spare: scratch.spare,
            done: 0,
            pending_body: request.body.clone(),
            decided: &[],
            runs: &[],
        }
    }

    /// Runs the request phases (1, then the body processor, then 2) and the logging phase
    /// (5) over `request`.
    pub fn evaluate(&self, request: &Request) -> Outcome {
        let mut t = self.transaction(request);
        t.process_request_body(None);
        t.finish()
    }

    /// [`RuleSet::evaluate`] with the caller's memo across requests ([`EvalMemo`]): the
    /// same [`Outcome`], with less work for values seen before.
    pub fn evaluate_with(&self, request: &Request, memo: &mut EvalMemo) -> Outcome {
        let mut t = self.transaction_with(request, std::mem::take(memo));
        t.process_request_body(None);
        let (outcome, m) = t.finish_with_memo();
        *memo = m;
        outcome
    }
}

impl EvalMemo {
    /// Takes back an [`Outcome`] the caller is done with, so that the next transaction
    /// with this memo writes its match records into the outcome's buffers instead of
    /// allocating its own (three of about 4 KB per request otherwise). Optional: an
    /// outcome simply dropped costs only those allocations.
    pub fn reuse(&mut self, outcome: Outcome) {
        if let Some(scratch) = self
            .scratch
            .as_mut()
            .and_then(|s| s.downcast_mut::<Scratch>())
        {
            scratch.matches = outcome.matches.into_room();
            scratch.tx = outcome.tx.into_members().emptied(SCRATCH_LIMIT);
        }
    }
}

impl RuleSet {
    /// The state after the request-independent start of phase 1, computed on first use.
    fn start_snapshot(&self) -> Option<&Prefix> {
        if !self.use_prefix {
            return None;
        }
        self.prefix.get_or_init(|| Prefix::compute(self)).as_ref()
    }

    /// How many items (rules and markers) of phase 1 the start snapshot stands for (0:
    /// none), computing it if no transaction has yet; for tests.
    #[doc(hidden)]
    pub fn start_snapshot_items(&self) -> usize {
        self.start_snapshot().map_or(0, |p| p.next)
    }

    /// How many rules the start snapshot decides ([`Decision`]), computing it if no
    /// transaction has yet; for tests.
    #[doc(hidden)]
    pub fn decided_rules(&self) -> usize {
        self.start_snapshot().map_or(0, |p| {
            p.decided
                .iter()
                .filter(|d| !matches!(d, Decision::Undecided))
                .count()
        })
    }
}

impl Prefix {
    /// Runs phase 1 of an empty request up to the first rule whose run could differ from
    /// one request to another, or whose effects go beyond the collections, `MATCHED_VAR`,
    /// match records and `ctl`s (replayed by each transaction): one that reads request
    /// data ([`reads_transaction_only`]), one that matches with a disruptive action or
    /// changes the engine mode (the rest of such a rule's run is undone: it runs in every
    /// transaction). `None` when it stops at the first rule.
    fn compute(rules: &RuleSet) -> Option<Prefix> {
        let mut t = rules.transaction(&Request::default());
        if t.stopped(1) {
            return None;
        }
        let list = &rules.phases[0];
        let mut i = 0;
        let mut ctl_rules = Vec::new();
        let mut checks = Vec::new();
        while i < list.len() {
            let (index, rule) = match list[i] {
                Item::Rule(index) => (index, &rules.rules[index]),
                Item::Marker(_) => {
                    i += 1;
                    continue;
                }
            };
            // A guard that reads the request (a rule that denies, drops or redirects:
            // ordinary requests do not match it) may stay in the snapshot as a check when
            // it reads nothing else, no `ctl` ran before it, and it matches no value
            // here: a transaction runs it first and uses the snapshot only if it matches
            // no value there either (then its run changed nothing but `MATCHED_VAR`'s
            // move, as here).
            let check = !reads_transaction_only(rule);
            if check
                && !(ctl_rules.is_empty()
                    && reads_request_only(rule)
                    && matches!(
                        rule.disruptive,
                        Disruptive::Deny | Disruptive::Drop | Disruptive::Redirect(_)
                    ))
            {
                break;
            }
            let collections = t.state.collections.clone();
            let earlier = t.state.earlier_match.clone();
            let vars = t.state.matched_vars.clone();
            let matches = t.matches.count();
            let next = t.step(list, i);
            let matched = t.matches.count() > matches;
            if t.intervention.is_some()
                || t.allowed.is_some()
                || t.state.mode != rules.engine
                || (matched && !matches!(rule.disruptive, Disruptive::Pass | Disruptive::Block))
                || (check && (matched || !t.state.matched_vars.is_empty()))
            {
                t.state.collections = collections;
                t.state.earlier_match = earlier;
                t.state.matched_vars = vars;
                t.matches.truncate(matches);
                break;
            }
            if matched
                && rule.links.iter().any(|l| {
                    l.actions
                        .effects
                        .iter()
                        .any(|e| matches!(e, Effect::Ctl(_)))
                })
            {
                ctl_rules.push(index);
            }
            if check {
                checks.push(index);
            }
            i = next;
        }
        if i == 0 {
            return None;
        }
        let collections = std::mem::take(&mut t.state.collections);
        let matches = t.matches.as_slice().into();
        let earlier_match = t.state.earlier_match.take();
        let matched_vars = std::mem::take(&mut t.state.matched_vars);
        drop(t);
        let decided = decide(rules, &list[..i], &collections);
        let runs = std::array::from_fn(|phase| decided_runs(rules, &rules.phases[phase], &decided));
        Some(Prefix {
            next: i,
            ctl_rules,
            checks,
            collections,
            matches,
            earlier_match,
            matched_vars,
            decided,
            runs,
        })
    }
}

/// The rules whose match [`Decision`] the snapshot's `collections` settle: every rule
/// after `prefix` (the rules the snapshot stands for) whose links each read only
/// `TX` members by key or their counts (or whose chain fails among its first links that
/// do), through an operator that reads nothing else
/// (a constant, or macros of such members), without captures or `setvar`s, where no
/// `setvar` of a rule outside `prefix` can write any member it reads (a key with macros
/// counts as writing every member whose name starts with its literal start; captures
/// write `TX:0` to `TX:9`). Such a member holds in every transaction what the snapshot
/// holds, so the link decides as it does here. What the transaction changes at run
/// time is checked there: a `ctl` removing the rule (as for any rule) or one of its
/// targets (it then runs its link).
fn decide(rules: &RuleSet, prefix: &[Item], collections: &Collections) -> Vec<Decision> {
    let mut in_prefix = vec![false; rules.rules.len()];
    for item in prefix {
        if let Item::Rule(index) = item {
            in_prefix[*index] = true;
        }
    }
    // What rules outside the snapshot may write: constant keys, and the literal starts
    // of keys with macros.
    let mut written: HashSet<String> = HashSet::new();
    let mut starts: Vec<String> = Vec::new();
    for (index, rule) in rules.rules.iter().enumerate() {
        if in_prefix[index] {
            continue;
        }
        for link in &rule.links {
            for effect in &link.actions.effects {
                let Effect::SetVar(s) = effect else { continue };
                if s.collection != "tx" {
                    continue;
                }
                match s.key.constant() {
                    Some(key) => {
                        written.insert(String::from_utf8_lossy(key).to_ascii_lowercase());
                    }
                    None => starts
                        .push(String::from_utf8_lossy(s.key.literal_prefix()).to_ascii_lowercase()),
                }
            }
        }
    }
    let stable = |key: &str| {
        let key = key.to_ascii_lowercase();
        let capture = key.len() == 1 && key.as_bytes()[0].is_ascii_digit();
        !(capture || written.contains(&key) || starts.iter().any(|s| key.starts_with(s.as_str())))
    };
    let eligible = |link: &Link| {
        let Some(operator) = &link.operator else {
            return false;
        };
        !link.capture
            && link.targets.exclude.is_empty()
            && !link.targets.include.is_empty()
            && link.targets.include.iter().all(|t| {
                t.var == Var::Tx && matches!(&t.selector, Some(Selector::Key(k)) if stable(k))
            })
            && !link
                .actions
                .effects
                .iter()
                .any(|e| matches!(e, Effect::SetVar(_)))
            && (operator.value_only()
                || matches!(
                    operator.kind,
                    crate::operators::OpKind::UnconditionalMatch
                        | crate::operators::OpKind::NoMatch
                )
                || operator.macro_argument().is_some_and(|m| {
                    m.references()
                        .all(|r| matches!(r, Some((Var::Tx, Some(k))) if stable(k)) || r.is_none())
                }))
    };
    let mut decided = Vec::new();
    let mut t = rules.transaction(&Request::default());
    for (index, rule) in rules.rules.iter().enumerate() {
        // Links from the first that are eligible: a chain that fails among them fails
        // in every transaction, whatever its later links read (CRS's
        // `TX:max_num_args "@eq 1"` before `&ARGS "@gt %{tx.max_num_args}"`).
        let eligible_links = rule.links.iter().take_while(|l| eligible(l)).count();
        if in_prefix[index] || eligible_links == 0 {
            continue;
        }
        t.state.collections.clone_from(collections);
        t.state.earlier_match = None;
        t.state.matched_vars.clear();
        // As `matches_chain`, up to the first link that is not eligible.
        t.state.clear_matched();
        let failed = rule.links[..eligible_links]
            .iter()
            .any(|link| !t.matches_link(rule, link));
        if !failed && eligible_links < rule.links.len() {
            continue;
        }
        let matched = !failed;
        let decision = Decision::Decided {
            matched,
            earlier: t.state.earlier_match.take(),
            vars: std::mem::take(&mut t.state.matched_vars).into(),
        };
        if decided.is_empty() {
            decided.resize(rules.rules.len(), Decision::Undecided);
        }
        decided[index] = decision;
    }
    decided
}

/// The runs of decided rules of a phase's `list` ([`DecidedRun`]), per item: where a
/// decided rule starts one, what stepping from there through every decided rule and
/// marker would do (as [`Transaction::step`] and [`Transaction::after_match`] do, with no
/// `ctl` exclusion in force), up to the first item that is neither.
fn decided_runs(rules: &RuleSet, list: &[Item], decided: &[Decision]) -> Vec<Option<DecidedRun>> {
    let run_from = |start: usize| {
        let mut i = start;
        let mut all = Vec::new();
        let mut records = Vec::new();
        let mut last = None;
        // `MATCHED_VAR(S)` as the rules so far leave them: `earlier` once a rule set it,
        // `vars` of the last rule (`None` before the first: the transaction's).
        let mut earlier: Option<(Name, Bytes)> = None;
        let mut vars: Option<&[(Name, Bytes)]> = None;
        while i < list.len() {
            let index = match list[i] {
                Item::Marker(_) => {
                    i += 1;
                    continue;
                }
                Item::Rule(index) => index,
            };
            let Some(Decision::Decided {
                matched,
                earlier: rule_earlier,
                vars: rule_vars,
            }) = decided.get(index)
            else {
                break;
            };
            if *matched && !rules.record_only[index] {
                break;
            }
            // As `State::clear_matched`, then the decision's `MATCHED_VAR(S)`.
            if let Some(last_var) = vars.and_then(<[_]>::last) {
                earlier = Some(last_var.clone());
            }
            if let Some(e) = rule_earlier {
                earlier = Some(e.clone());
            }
            vars = Some(rule_vars);
            last = Some(index);
            all.push(index);
            i += 1;
            if *matched {
                records.push(index);
                // As `after_match`.
                if let Some(target) = rules.skip_after[index] {
                    i = target;
                } else if let Some(n) = rules.rules[index].skip {
                    let mut left = n;
                    while left > 0 && i < list.len() {
                        if matches!(list[i], Item::Rule(_)) {
                            left -= 1;
                        }
                        i += 1;
                    }
                }
            }
        }
        last.map(|last| DecidedRun {
            rules: all.into(),
            records: records.into(),
            next: i,
            last,
            earlier,
        })
    };
    if decided.is_empty() {
        return Vec::new();
    }
    (0..list.len())
        .map(|start| match list[start] {
            Item::Rule(index) if matches!(decided.get(index), Some(Decision::Decided { .. })) => {
                run_from(start)
            }
            _ => None,
        })
        .collect()
}

/// Whether a rule reads the request and nothing else: its targets are request data (no
/// collection such as `TX`, no `MATCHED_VAR`, no `DURATION`), its operator has no macros
/// and is not `@geoLookup` or `@rbl`. Whether it matches is then the same wherever in
/// phase 1 it runs (until a `ctl` changes what it sees).
fn reads_request_only(rule: &Rule) -> bool {
    rule.links.iter().all(|link| {
        link.targets.include.iter().all(|t| {
            collection_name(t.var).is_none()
                && !matches!(
                    t.var,
                    Var::MatchedVar
                        | Var::MatchedVarName
                        | Var::MatchedVars
                        | Var::MatchedVarsNames
                        | Var::Duration
                )
        }) && link.operator.as_ref().is_some_and(|op| {
            !matches!(
                op.kind,
                crate::operators::OpKind::GeoLookup | crate::operators::OpKind::Rbl(_)
            ) && op
                .macro_argument()
                .is_none_or(|m| m.variables().next().is_none() && m.constant().is_some())
        })
    })
}

/// Whether a rule reads nothing of the request: its targets and the macros of its
/// operator, `setvar`s, `msg`, `logdata` and `redirect` read only `TX` and what earlier
/// rules matched (`MATCHED_VAR` ...), and it has no `@geoLookup` or `@rbl`. Given the same
/// collections, such a rule runs the same way in every transaction (its `ctl`s too).
fn reads_transaction_only(rule: &Rule) -> bool {
    let state = |v: Var| {
        matches!(
            v,
            Var::Tx
                | Var::MatchedVar
                | Var::MatchedVarName
                | Var::MatchedVars
                | Var::MatchedVarsNames
        )
    };
    let text = |m: &crate::macros::MacroText| m.variables().all(state);
    let link = |link: &Link| {
        link.targets.include.iter().all(|t| state(t.var))
            && link.operator.as_ref().is_none_or(|op| {
                !matches!(
                    op.kind,
                    crate::operators::OpKind::GeoLookup | crate::operators::OpKind::Rbl(_)
                ) && op.macro_argument().is_none_or(text)
            })
            && link.actions.effects.iter().all(|e| match e {
                Effect::SetVar(s) => {
                    text(&s.key)
                        && match &s.op {
                            SetOp::Delete => true,
                            SetOp::Set(v) | SetOp::Add(v) | SetOp::Sub(v) => text(v),
                        }
                }
                Effect::Ctl(_) => true,
            })
            && link.actions.msg.as_ref().is_none_or(text)
            && link.actions.logdata.as_ref().is_none_or(text)
    };
    rule.links.iter().all(link)
        && match &rule.disruptive {
            Disruptive::Redirect(url) => text(url),
            _ => true,
        }
}

impl<'r> Transaction<'r> {
    /// Phase 1 (request headers). Returns the intervention to enforce, if any (none in
    /// `DetectionOnly` mode).
    pub fn process_request_headers(&mut self) -> Option<&Intervention> {
        if self.done < 1 {
            self.phase(1);
            self.done = 1;
        }
        self.enforced()
    }

    /// The body processor, then phase 2 (running phase 1 first if it has not run). `body`
    /// replaces the body the transaction was started with.
    pub fn process_request_body(&mut self, body: Option<Vec<u8>>) -> Option<&Intervention> {
        self.process_request_headers();
        if self.done < 2 {
            let body = body.unwrap_or_else(|| std::mem::take(&mut self.pending_body));
            if self.state.body_access {
                let processor = self.state.body_processor;
                let adds = !body.is_empty();
                self.data
                    .process_body(body, processor, self.rules.arguments_limit);
                // Cached values are known by address; the data just changed. An empty
                // body adds nothing (its processor does not run, `REQUEST_BODY` stays
                // empty), and the values phase 1 cached and scanned have not moved: their
                // transformations and the prefilter's candidates stay right for phase 2.
                if adds {
                    self.cache.clear();
                }
            }
            self.phase(2);
            self.done = 2;
        }
        self.enforced()
    }

    /// Phases 3 (response headers) and 4 (response body), after the request phases.
    pub fn process_response(&mut self, response: &Response) -> Option<&Intervention> {
        self.process_request_body(None);
        if self.done < 4 {
            let header = |name: &str| {
                response
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_bytes().to_vec())
                    .unwrap_or_default()
            };
            self.data.response = ResponseData {
                status: response.status.to_string().into_bytes(),
                protocol: response.protocol.as_bytes().to_vec(),
                headers: response
                    .headers
                    .iter()
                    .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
                    .collect(),
                content_type: header("content-type"),
                content_length: header("content-length"),
                body: Vec::new(),
                seen: true,
            };
            self.cache.clear();
            self.phase(3);
            self.data.response.body = response.body.clone();
            self.cache.clear();
            self.phase(4);
            self.done = 4;
        }
        self.enforced()
    }

    /// Runs the rest of the transaction as `SecRuleEngine DetectionOnly` when the rule set
    /// says `On`: every phase runs, and what a rule would have done is only recorded in
    /// the [`Outcome`]. For a caller whose own setting says detect only (the `waf`
    /// component's `waf_mode=detect`). A rule's `ctl:ruleEngine` can still change it.
    pub fn detect_only(&mut self) {
        if self.state.mode == EngineMode::On {
            self.state.mode = EngineMode::DetectionOnly;
        }
    }

    /// The logging phase (5), after whatever request phases have not run yet.
    pub fn finish(self) -> Outcome {
        self.finish_with_memo().0
    }

    /// [`Transaction::finish`], giving back the memo of [`RuleSet::transaction_with`]
    /// (an empty one if the transaction was started without).
    pub fn finish_with_memo(mut self) -> (Outcome, EvalMemo) {
        self.process_request_body(None);
        self.allowed = None;
        self.phase(5);
        // Moved out rather than copied: the transaction ends here.
        let outcome = Outcome {
            mode: self.state.mode,
            intervention: self.intervention,
            matches: self.matches,
            tx: Tx::new(std::mem::take(&mut self.state.collections.tx)),
            body_error: self.data.body_error.take(),
        };
        let mut memo = self.memo.unwrap_or_default();
        memo.scratch = Some(Box::new(Scratch {
            cache: self.cache,
            selectors: self.selectors,
            candidates: self.candidates,
            slots: self.slots,
            detect: self.detect,
            spare: self.spare,
            matches: None,
            tx: None,
            data: std::mem::take(&mut self.data).kept(),
        }));
        (outcome, memo)
    }

    fn enforced(&self) -> Option<&Intervention> {
        (self.state.mode == EngineMode::On)
            .then_some(self.intervention.as_ref())
            .flatten()
    }

    fn stopped(&self, phase: u8) -> bool {
        if self.state.mode == EngineMode::Off {
            return true;
        }
        if phase == 5 {
            return false;
        }
        // An enforced interruption ends everything but logging; `allow` ends the request
        // phases (`allow:request`) or all but logging.
        let interrupted = self.state.mode == EngineMode::On && self.intervention.is_some();
        interrupted
            || self.allowed == Some(AllowScope::Transaction)
            || (self.allowed == Some(AllowScope::Request) && phase <= 2)
    }

    fn phase(&mut self, phase: u8) {
        let rules = self.rules;
        let list = &rules.phases[usize::from(phase) - 1];
        let mut i = 0;
        if phase == 1
            && !self.stopped(1)
            && let Some(prefix) = rules.start_snapshot()
            && self.start_from(prefix)
        {
            i = prefix.next;
        }
        let runs = self
            .runs
            .get(usize::from(phase) - 1)
            .map_or(&[][..], Vec::as_slice);
        // What stops the phase (an intervention, `allow`, the engine mode) changes only
        // when a rule matches, which adds a record: checked again only then.
        let mut checked_at = None;
        while i < list.len() {
            let records = self.matches.count();
            if checked_at != Some(records) {
                if self.stopped(phase) || self.allowed == Some(AllowScope::Phase) {
                    break;
                }
                checked_at = Some(records);
            }
            // A run of decided rules at once, as stepping through them would leave the
            // transaction (unless a `ctl` exclusion in force removes one of them or one
            // of its targets: then rule by rule).
            if let Some(Some(run)) = runs.get(i)
                && (self.state.exceptions.is_empty() || self.untouched(run))
            {
                i = self.take_run(run);
                continue;
            }
            i = self.step(list, i);
        }
        if self.allowed == Some(AllowScope::Phase) {
            self.allowed = None;
        }
    }

    /// Runs item `i` of a phase's list (a rule, or a marker that does nothing) and
    /// returns the index of the next item to run.
    fn step(&mut self, list: &[Item], mut i: usize) -> usize {
        let Item::Rule(index) = list[i] else {
            return i + 1;
        };
        let rules = self.rules;
        let rule = &rules.rules[index];
        i += 1;
        if self.state.exceptions.removes(rule) {
            return i;
        }
        let decided: &'r [Decision] = self.decided;
        match decided.get(index) {
            None | Some(Decision::Undecided) => {}
            Some(_) if self.targets_excluded(rule) => {}
            Some(Decision::Decided {
                matched,
                earlier,
                vars,
            }) => {
                // As `matches_chain` leaves `MATCHED_VAR(S)`.
                self.state.clear_matched();
                if let Some(earlier) = earlier {
                    self.state.earlier_match = Some(earlier.clone());
                }
                self.state.matched_vars.extend(vars.iter().cloned());
                if !matched {
                    return i;
                }
                return self.after_match(list, index, rule, i);
            }
        }
        // Most of CRS's rules are prefiltered and, in an ordinary request, have no
        // candidate: decided here as `matches_chain` would (it empties `MATCHED_VARS`,
        // then the first link finds no candidate), without the calls.
        if let Some(id) = rule.links.first().and_then(|l| l.prefilter)
            && rules.use_prefilter
            && self.candidates.generation == Some(self.cache.generation)
            && self.candidates.none(id)
        {
            self.state.clear_matched();
            return i;
        }
        if !self.matches_chain(rule) {
            return i;
        }
        self.after_match(list, index, rule, i)
    }

    /// Whether no `ctl` exclusion in force removes a rule of `run` or one of its targets.
    // Out of line: only transactions with exclusions (the prompt-field policy's) ask.
    #[inline(never)]
    fn untouched(&self, run: &DecidedRun) -> bool {
        run.rules.iter().all(|&index| {
            let rule = &self.rules.rules[index];
            !self.state.exceptions.removes(rule) && !self.targets_excluded(rule)
        })
    }

    /// What stepping through the rules of `run` does ([`DecidedRun`]): their records,
    /// and the `MATCHED_VAR(S)` the last one leaves. Returns the item after the run.
    fn take_run(&mut self, run: &DecidedRun) -> usize {
        match &run.earlier {
            Some(earlier) => {
                self.state.matched_vars.clear();
                self.state.earlier_match = Some(earlier.clone());
            }
            None => self.state.clear_matched(),
        }
        let decided: &'r [Decision] = self.decided;
        let vars_of = |index: usize| match &decided[index] {
            Decision::Decided { vars, .. } => &vars[..],
            Decision::Undecided => &[],
        };
        for &index in &run.records {
            self.matches.push(
                index as u32,
                None,
                None,
                vars_of(index).iter().map(|(n, v)| (n, v.as_slice())),
            );
        }
        self.state
            .matched_vars
            .extend(vars_of(run.last).iter().cloned());
        run.next
    }

    /// Runs a matched rule's actions and returns the index of the next item to run
    /// (`i`, or past a `skip`/`skipAfter`).
    fn after_match(&mut self, list: &[Item], index: usize, rule: &'r Rule, mut i: usize) -> usize {
        self.matched(index, rule);
        if let Some(target) = self.rules.skip_after[index] {
            i = target;
        } else if let Some(n) = rule.skip {
            let mut left = n;
            while left > 0 && i < list.len() {
                if matches!(list[i], Item::Rule(_)) {
                    left -= 1;
                }
                i += 1;
            }
        }
        i
    }

    /// Puts the transaction, at the start of phase 1, in the state the rule set's
    /// request-independent start leaves ([`Prefix`]).
    fn start_from(&mut self, prefix: &'r Prefix) -> bool {
        // The checks first, on the untouched state: if one matches any value, its run is
        // undone and phase 1 runs from its start instead.
        for &index in &prefix.checks {
            self.matches_chain(&self.rules.rules[index]);
            if !self.state.matched_vars.is_empty() || !self.state.collections.untouched() {
                self.state.matched_vars.clear();
                self.state.earlier_match = None;
                self.state.collections.clear();
                return false;
            }
        }
        for &index in &prefix.ctl_rules {
            self.ctls(&self.rules.rules[index]);
        }
        self.state.collections.clone_from(&prefix.collections);
        // CRS sets about a hundred TX variables per request: room for them up front.
        self.state.collections.tx.reserve(TX_CAPACITY);
        self.matches.set_prefix(prefix.matches.clone());
        self.state.earlier_match.clone_from(&prefix.earlier_match);
        self.state.matched_vars.clone_from(&prefix.matched_vars);
        if self.rules.use_decisions {
            self.decided = &prefix.decided;
            self.runs = &prefix.runs;
        }
        true
    }

    /// Whether a `ctl` of this transaction removed any target of `rule`.
    fn targets_excluded(&self, rule: &Rule) -> bool {
        let exceptions = &self.state.exceptions;
        exceptions
            .targets_by_id
            .iter()
            .any(|(ids, _)| in_ranges(ids, rule.id))
            || exceptions.any_target_tag(rule)
    }

    fn matches_chain(&mut self, rule: &'r Rule) -> bool {
        self.state.clear_matched();
        for link in &rule.links {
            if !self.matches_link(rule, link) {
                return false;
            }
        }
        true
    }

    /// Whether any target value of the link matches. Each matching value updates
    /// `MATCHED_VAR(S)` and the captures, then runs the link's `setvar`s: ModSecurity v3
    /// runs them per matching value and whether or not the rest of the chain matches
    /// ("independent of the chained rule result"), so two matching arguments add a score
    /// twice.
    fn matches_link(&mut self, rule: &Rule, link: &'r Link) -> bool {
        let Some(operator) = &link.operator else {
            set_vars(&mut self.state, &self.data, rule, link);
            return true;
        };
        match self.single_variable(rule, link, operator) {
            None => {}
            Some(None) => return false,
            Some(Some((name, value))) => {
                // As the loop below does for one matching value.
                self.state.clear_matched();
                self.state.matched_vars.push((name, value));
                set_vars(&mut self.state, &self.data, rule, link);
                return true;
            }
        }
        if let Some(matched) = self.transaction_members(rule, link, operator) {
            return matched;
        }
        // The prefilter's candidates for this link: without one, no value can match.
        let mut candidates = None;
        if let Some(id) = link.prefilter
            && self.rules.use_prefilter
        {
            if self.candidates.generation != Some(self.cache.generation) {
                self.candidates.compute(
                    self.rules,
                    &self.data,
                    &self.state,
                    &mut self.cache,
                    &mut self.selectors,
                    self.memo.as_mut().map(|m| (m, &mut self.slots)),
                );
            }
            if self.candidates.none(id) {
                return false;
            }
            candidates = Some(id);
        }
        let memo_bit = link.memo.filter(|_| self.memo.is_some());
        let mut lists = self.spare.take();
        // Values whose record the prefilter or an earlier link looked up: as the loop
        // below would find them.
        let known = |bytes: &[u8]| {
            let (Some(bit), Some(memo)) = (memo_bit, &self.memo) else {
                return false;
            };
            self.slots
                .get(&(bytes.as_ptr() as usize, bytes.len()))
                .copied()
                .flatten()
                .is_some_and(|s| memo.no_match(s, bit))
        };
        resolve_targets(
            rule,
            link,
            &self.data,
            &self.state,
            (&mut self.selectors, self.cache.generation),
            (
                candidates.map(|id| self.candidates.of(id)),
                memo_bit.map(|_| &known as &dyn Fn(&[u8]) -> bool),
            ),
            &mut lists,
        );
        let mut values = std::mem::take(&mut lists.out);
        self.spare.keep(lists);
        let mut matched = false;
        for mut inspected in values.drain(..) {
            // A value of the request this link is known not to match (in an earlier
            // request or rule): skipped, as its operator would answer no again.
            let mut slot = None;
            if let (Some(bit), Some(memo), Cow::Borrowed(bytes)) =
                (memo_bit, &self.memo, &inspected.value)
            {
                let found = *self
                    .slots
                    .entry((bytes.as_ptr() as usize, bytes.len()))
                    .or_insert_with(|| memo.find(bytes));
                if found.is_some_and(|s| memo.no_match(s, bit)) {
                    continue;
                }
                slot = Some((found, *bytes));
            }
            // Moved, not copied, into the operator's input below (a `TX` value is owned).
            let raw = std::mem::take(&mut inspected.value);
            let mut groups = Vec::new();
            let (hit, value) = {
                let ctx = Ctx {
                    data: &self.data,
                    state: &self.state,
                    rule: Some(rule),
                };
                let want = link.capture.then_some(&mut groups);
                if link.multi_match {
                    // The features of a value of the request, as the prefilter and other
                    // rules' transformations found them.
                    let known = match &raw {
                        Cow::Borrowed(b) => self
                            .cache
                            .features
                            .get(&(b.as_ptr() as usize, b.len()))
                            .copied(),
                        Cow::Owned(_) => None,
                    };
                    multi_match(
                        link,
                        operator,
                        (raw, known),
                        &ctx,
                        want,
                        &mut self.detect,
                        self.rules.services(),
                    )
                } else {
                    let value = match raw {
                        raw if link.chain == 0 => raw,
                        Cow::Borrowed(data_value) => self.cache.apply(link, data_value),
                        Cow::Owned(own) => {
                            let changed = match apply_all(&link.transforms, &own) {
                                Cow::Owned(changed) => Some(changed),
                                Cow::Borrowed(_) => None,
                            };
                            Cow::Owned(changed.unwrap_or(own))
                        }
                    };
                    (
                        operator.matches_with(
                            &value,
                            &ctx,
                            want,
                            &mut self.detect,
                            self.rules.services(),
                        ),
                        value,
                    )
                }
            };
            if let Some(geo) = self.detect.geo.take() {
                for (key, value) in geo {
                    self.state.set("geo", key, Bytes::new(value.as_bytes()));
                }
            }
            if !hit {
                if let (Some(bit), Some((known, bytes)), Some(memo)) =
                    (memo_bit, slot, &mut self.memo)
                {
                    let s = match known {
                        Some(s) => Some(s),
                        None => {
                            let s = memo.find_or_add(bytes);
                            self.slots.insert((bytes.as_ptr() as usize, bytes.len()), s);
                            s
                        }
                    };
                    if let Some(s) = s {
                        memo.set_no_match(s, bit);
                    }
                }
                continue;
            }
            if !matched {
                // This link's matches replace those of the previous link of the chain.
                self.state.clear_matched();
                matched = true;
            }
            if !groups.is_empty() {
                // The capture names are the rule set's first names: numbered 0 to 9.
                let tx = &mut self.state.collections.tx;
                for n in 0..crate::operators::MAX_CAPTURES as u32 {
                    tx.delete_slot(n);
                }
                for (n, g) in (0..).zip(groups) {
                    tx.set_slot(self.state.names, n, Bytes::new(&g));
                }
            }
            let name = Name::Owned(inspected.name());
            self.state.matched_vars.push((name, Bytes::new(&value)));
            set_vars(&mut self.state, &self.data, rule, link);
        }
        self.spare.out = recycle(values);
        matched
    }

    /// A link that reads one transaction variable (`TX:executing_paranoia_level "@lt 2"`,
    /// as CRS does hundreds of times per request), without transformations, captures or
    /// exclusions, decided on the variable in place instead of listing copies of it:
    /// `Some(None)` if it does not match, `Some(Some((name, value)))` if it does, `None`
    /// if the link is not of that kind.
    fn single_variable(
        &self,
        rule: &Rule,
        link: &'r Link,
        operator: &crate::operators::Operator,
    ) -> Option<Option<(Name, Bytes)>> {
        let [
            Target {
                var,
                selector: Some(Selector::Key(key)),
                count: false,
            },
        ] = link.targets.include.as_slice()
        else {
            return None;
        };
        let collection = collection_name(*var)?;
        if !link.transforms.is_empty()
            || link.multi_match
            || link.capture
            || !link.targets.exclude.is_empty()
            || self.targets_excluded(rule)
        {
            return None;
        }
        let c = self.state.collections.get(collection);
        let member = match link.single_slot {
            Some(slot) => c.and_then(|c| c.entry_by_slot(slot)),
            None => c.and_then(|c| c.entry(self.state.names, key)),
        };
        let Some((stored, value)) = member else {
            // No value: nothing to match.
            return Some(None);
        };
        let ctx = Ctx {
            data: &self.data,
            state: &self.state,
            rule: Some(rule),
        };
        if !operator.matches(value, &ctx, None) {
            return Some(None);
        }
        // The name as `MATCHED_VAR_NAME` spells it: spelled at load time when the key as
        // written is the key stored (both lowercased: always, unless the key came from
        // elsewhere).
        let name = match &link.single_name {
            Some(name)
                if name.len() == var.name().len() + 1 + stored.len() && name.ends_with(stored) =>
            {
                Name::Shared(name.clone())
            }
            _ => Name::Owned(format!("{}:{stored}", var.name())),
        };
        Some(Some((name, Bytes::new(value))))
    }

    /// A link that reads only members of transaction collections by key, or their
    /// counts (`&TX:dos_burst_time_slice "@eq 0"`, `&TX:crs_exclusions_drupal|
    /// TX:crs_exclusions_drupal "@eq 0"`: CRS runs a dozen such links per phase, and most
    /// match), without transformations, captures or exclusions: decided on the members in
    /// place, as the listing below would decide on copies of them; `None` if the link is
    /// not of that kind. With several targets and `setvar`s, the listing reads every
    /// value before the first `setvar` runs, so such a link is left to it.
    fn transaction_members(
        &mut self,
        rule: &Rule,
        link: &'r Link,
        operator: &crate::operators::Operator,
    ) -> Option<bool> {
        let targets = &link.targets.include;
        if targets.is_empty()
            || !link.transforms.is_empty()
            || link.multi_match
            || link.capture
            || !link.targets.exclude.is_empty()
            || targets.iter().any(|t| {
                !matches!(t.selector, Some(Selector::Key(_))) || collection_name(t.var).is_none()
            })
            || (targets.len() > 1
                && link
                    .actions
                    .effects
                    .iter()
                    .any(|e| matches!(e, Effect::SetVar(_))))
            || self.targets_excluded(rule)
        {
            return None;
        }
        let mut matched = false;
        for (t, target) in targets.iter().enumerate() {
            let (Some(collection), Some(Selector::Key(key))) =
                (collection_name(target.var), &target.selector)
            else {
                return None;
            };
            let member = self.state.collections.get(collection).and_then(|c| {
                match link.target_slots.get(t).copied().flatten() {
                    Some(slot) => c.entry_by_slot(slot),
                    None => c.entry(self.state.names, key),
                }
            });
            // As the listing spells them: a count `&TX` ("0" or "1"), a member `TX:key`.
            let value: &[u8] = match (target.count, member) {
                (true, Some(_)) => b"1",
                (true, None) => b"0",
                (false, Some((_, v))) => v,
                (false, None) => continue,
            };
            let ctx = Ctx {
                data: &self.data,
                state: &self.state,
                rule: Some(rule),
            };
            let hit =
                operator.matches_with(value, &ctx, None, &mut self.detect, self.rules.services());
            // Spelled at load time (a count always, a member when the key as written is
            // the key stored): CRS's exclusion gates match about twenty times per request.
            let spelled = link.target_names.get(t).cloned().flatten();
            let name = hit.then(|| match (spelled, member) {
                (spelled, _) if target.count => spelled.map_or_else(
                    || Name::Owned(format!("&{}", target.var.name())),
                    Name::Shared,
                ),
                (_, None) => Name::Owned(String::new()),
                (Some(name), Some((stored, _)))
                    if name.len() == target.var.name().len() + 1 + stored.len()
                        && name.ends_with(stored) =>
                {
                    Name::Shared(name)
                }
                (_, Some((stored, _))) => Name::Owned(format!("{}:{stored}", target.var.name())),
            });
            let value = hit.then(|| Bytes::new(value));
            if let Some(geo) = self.detect.geo.take() {
                for (key, value) in geo {
                    self.state.set("geo", key, Bytes::new(value.as_bytes()));
                }
            }
            let Some(value) = value else { continue };
            if !matched {
                self.state.clear_matched();
                matched = true;
            }
            let Some(name) = name else { continue };
            self.state.matched_vars.push((name, value));
            set_vars(&mut self.state, &self.data, rule, link);
        }
        Some(matched)
    }

    /// Runs the actions of a matched chain: the `ctl`s of every link, the match record,
    /// then the disruptive action.
    fn matched(&mut self, index: usize, rule: &'r Rule) {
        if self.rules.record_only[index] {
            // As below, without the walk through the links' effects for `ctl`s.
            self.matches.push(
                index as u32,
                None,
                None,
                self.state
                    .matched_vars
                    .iter()
                    .map(|(n, v)| (n, v.as_slice())),
            );
            return;
        }
        self.ctls(rule);
        let ctx = Ctx {
            data: &self.data,
            state: &self.state,
            rule: Some(rule),
        };
        let a = rule.actions();
        let text = |m: &Option<crate::macros::MacroText>| {
            m.as_ref()
                .map(|m| String::from_utf8_lossy(&m.expand(&ctx)).into_owned())
        };
        let (msg, logdata) = (text(&a.msg), text(&a.logdata));
        let kind = match &rule.disruptive {
            Disruptive::Pass | Disruptive::Block => None,
            Disruptive::Deny => Some(InterventionKind::Deny),
            Disruptive::Drop => Some(InterventionKind::Drop),
            Disruptive::Redirect(url) => Some(InterventionKind::Redirect(
                String::from_utf8_lossy(&url.expand(&ctx)).into_owned(),
            )),
            Disruptive::Allow(scope) => {
                if self.state.mode == EngineMode::On {
                    self.allowed = Some(*scope);
                }
                None
            }
        };
        self.matches.push(
            index as u32,
            msg,
            logdata,
            self.state
                .matched_vars
                .iter()
                .map(|(n, v)| (n, v.as_slice())),
        );
        if let Some(kind) = kind
            && self.intervention.is_none()
            && rule.phase < 5
        {
            let status = match kind {
                InterventionKind::Redirect(_) => rule.status.unwrap_or(302),
                _ => rule.status.unwrap_or(403),
            };
            self.intervention = Some(Intervention {
                kind,
                status,
                rule_id: rule.id,
                phase: rule.phase,
            });
        }
    }

    /// Runs the `ctl`s of every link of a matched chain.
    fn ctls(&mut self, rule: &'r Rule) {
        for link in &rule.links {
            for effect in &link.actions.effects {
                if let Effect::Ctl(ctl) = effect {
                    self.ctl(ctl);
                }
            }
        }
    }

    fn ctl(&mut self, ctl: &'r Ctl) {
        match ctl {
            Ctl::RuleEngine(mode) => self.state.mode = *mode,
            Ctl::RuleRemoveById(ids) => self.state.exceptions.ids.push(ids),
            Ctl::RuleRemoveByTag(tag) => {
                if let Some(&id) = self.rules.tag_ids.get(tag) {
                    self.state.exceptions.tags.push(id);
                }
            }
            Ctl::RuleRemoveTargetById(ids, targets) => {
                for t in targets {
                    self.state.exceptions.targets_by_id.push((ids, t));
                }
            }
            Ctl::RuleRemoveTargetByTag(tag, targets) => {
                if let Some(&id) = self.rules.tag_ids.get(tag) {
                    for t in targets {
                        self.state.exceptions.add_target_by_tag(id, t);
                    }
                }
            }
            Ctl::RequestBodyProcessor(p) => self.state.body_processor = Some(*p),
            Ctl::RequestBodyAccess(on) => self.state.body_access = *on,
            Ctl::NoEffect => {}
        }
    }
}

/// Runs the `setvar`s of a link, expanding macros against the transaction as it is now.
/// A name the rules know at load time (`tx.anomaly_score_pl1`) and an operand that is
/// one such member (`=+%{tx.critical_anomaly_score}`) are reached by index.
fn set_vars(state: &mut State, data: &Data, rule: &Rule, link: &Link) {
    for effect in &link.actions.effects {
        let Effect::SetVar(s) = effect else { continue };
        let collection = s.collection.as_str();
        let (key, value) = {
            let ctx = Ctx {
                data,
                state,
                rule: Some(rule),
            };
            let key: Result<u32, Cow<'_, str>> = match s.slot {
                Some(slot) => Ok(slot),
                None => Err(match s.key.expand_cow(&ctx) {
                    Cow::Borrowed(b) => String::from_utf8_lossy(b),
                    Cow::Owned(v) => Cow::Owned(
                        String::from_utf8(v)
                            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
                    ),
                }),
            };
            let current = || {
                atoi(
                    match &key {
                        Ok(slot) => state.get_slot(collection, *slot),
                        Err(name) => state.get(collection, name),
                    }
                    .unwrap_or_default(),
                )
            };
            let operand = |v: &crate::macros::MacroText| match v.single_member() {
                Some((var, slot)) if collection_name(var).is_some() => atoi(
                    state
                        .get_slot(collection_name(var).unwrap_or_default(), slot)
                        .unwrap_or_default(),
                ),
                _ => atoi(&v.expand_cow(&ctx)),
            };
            let value = match &s.op {
                SetOp::Delete => None,
                SetOp::Set(v) => Some(Bytes::new(&v.expand_in(&ctx))),
                SetOp::Add(v) => Some(Bytes::number(current().saturating_add(operand(v)))),
                SetOp::Sub(v) => Some(Bytes::number(current().saturating_sub(operand(v)))),
            };
            (key, value)
        };
        let names = state.names;
        match (key, value) {
            (Ok(slot), Some(v)) => state
                .collections
                .get_mut(collection)
                .set_slot(names, slot, v),
            (Ok(slot), None) => {
                if let Some(c) = state.collections.get(collection)
                    && c.get_slot(slot).is_some()
                {
                    state.collections.get_mut(collection).delete_slot(slot)
                }
            }
            (Err(name), Some(v)) => state.set(collection, &name, v),
            (Err(name), None) => state.delete(collection, &name),
        }
    }
}

/// `multiMatch`: the operator runs on the value (with its features, if known) before any
/// transformation and again after every transformation that changed it.
fn multi_match<'v>(
    link: &Link,
    operator: &crate::operators::Operator,
    (raw, features): (Cow<'v, [u8]>, Option<Features>),
    ctx: &Ctx<'_>,
    mut captures: Option<&mut Vec<Vec<u8>>>,
    memo: &mut crate::operators::DetectMemo,
    services: crate::operators::Services<'_>,
) -> (bool, Cow<'v, [u8]>) {
    let mut value = raw;
    if operator.matches_with(&value, ctx, captures.as_deref_mut(), memo, services) {
        return (true, value);
    }
    // As `apply_all_with` does: a transformation the value's features say leaves it as
    // it is is not applied (CRS's 942100 runs three over every argument and name, which
    // hardly ever change one).
    let mut features = features.unwrap_or_else(|| Features::of(&value));
    for &t in &link.transforms {
        if features.leaves_unchanged(t) {
            continue;
        }
        let next = t.apply(&value);
        if next != *value {
            features = Features::of(&next);
            value = Cow::Owned(next);
            if operator.matches_with(&value, ctx, captures.as_deref_mut(), memo, services) {
                return (true, value);
            }
        }
    }
    (false, value)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decimal_spells_ports_as_to_string_does() {
        for n in [0u16, 7, 10, 443, 40000, 65535] {
            assert_eq!(
                crate::numbers::decimal(n.into(), &mut [0; 20]),
                n.to_string().as_bytes()
            );
        }
    }
}
