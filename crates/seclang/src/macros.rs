//! Macro expansion: `%{tx.anomaly_score}`, `%{MATCHED_VAR}`, `%{rule.id}`,
//! `%{REQUEST_HEADERS.host}` in operator arguments, `setvar`, `msg` and `logdata`.

use crate::error::ErrorKind;
use crate::variables::Var;

/// One piece of a [`MacroText`]: literal bytes or a `%{...}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Text outside any `%{...}`, copied as it is.
    Literal(Vec<u8>),
    /// A variable, with the key of a collection member (lowercased).
    Var(Var, Option<String>),
    /// `%{rule.id}`, `%{rule.msg}`, ...: a property of the rule being run (lowercased).
    Rule(String),
}

/// A text with macros, parsed once at load time.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MacroText {
    parts: Vec<Part>,
    /// Per part: the number of a `Part::Var`'s member name in the rule set's names
    /// ([`MacroText::number_names`]), [`NO_SLOT`] for any other part.
    slots: Vec<u32>,
}

const NO_SLOT: u32 = u32::MAX;

/// Bytes an expansion has room for from the start: most are a number, a name or a short
/// message, and growing from empty costs several reallocations.
const EXPANSION_ROOM: usize = 64;

/// What expansion reads from the running transaction.
pub trait Resolve {
    /// The first value of the variable (or of the named member of a collection).
    fn first(&self, var: Var, key: Option<&str>) -> Option<Vec<u8>>;
    /// A property of the rule being run (`id`, `msg`, `severity`, ...; `name`
    /// lowercased), for `%{rule.name}`; `None` when the rule has none.
    fn rule_property(&self, name: &str) -> Option<Vec<u8>>;
    /// The value of the collection member numbered `slot`, in place, if the resolver
    /// keeps it (`None`: absent, or not kept in place).
    fn member(&self, var: Var, slot: u32) -> Option<&[u8]> {
        let _ = (var, slot);
        None
    }
    /// Appends the first value of the variable to `out`; `slot` is the number of `key`
    /// in the rule set's names, when it has one (a collection member reached by index).
    fn append(&self, var: Var, key: Option<&str>, slot: Option<u32>, out: &mut Vec<u8>) {
        let _ = slot;
        out.extend(self.first(var, key).unwrap_or_default());
    }
}

impl MacroText {
    /// Splits `text` into literals and `%{VAR}`, `%{VAR.key}` / `%{VAR:key}` and
    /// `%{rule.name}` references (variable names in any case). An unknown variable, or a
    /// key on one that is not a collection, is an error; a `%{` without `}` is literal.
    pub fn parse(text: &str) -> Result<MacroText, ErrorKind> {
        let mut parts = Vec::new();
        let mut literal = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            let Some(len) = rest[start + 2..].find('}') else {
                break;
            };
            let inner = &rest[start + 2..start + 2 + len];
            literal.extend_from_slice(&rest.as_bytes()[..start]);
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(parse_reference(inner)?);
            rest = &rest[start + 3 + len..];
        }
        literal.extend_from_slice(rest.as_bytes());
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        Ok(MacroText {
            slots: vec![NO_SLOT; parts.len()],
            parts,
        })
    }

    /// Numbers the member names of its collection references with `number` (the rule
    /// set's names), so that expansion reaches them by index.
    pub(crate) fn number_names(&mut self, mut number: impl FnMut(&str) -> u32) {
        for (part, slot) in self.parts.iter().zip(&mut self.slots) {
            if let Part::Var(var, Some(key)) = part
                && var.is_collection()
            {
                *slot = number(key);
            }
        }
    }

    /// The collection and member number when the text is exactly one numbered member
    /// reference (`%{tx.critical_anomaly_score}`): its value can be read in place.
    pub(crate) fn single_member(&self) -> Option<(Var, u32)> {
        match (self.parts.as_slice(), self.slots.as_slice()) {
            ([Part::Var(var, Some(_))], [slot]) if *slot != NO_SLOT => Some((*var, *slot)),
            _ => None,
        }
    }

    /// The text when it holds no macro.
    pub fn constant(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(b""),
            [Part::Literal(l)] => Some(l),
            _ => None,
        }
    }

    /// The literal text before the first reference: every expansion starts with it.
    pub(crate) fn literal_prefix(&self) -> &[u8] {
        match self.parts.first() {
            Some(Part::Literal(l)) => l,
            _ => b"",
        }
    }

    /// Its references: a variable with the member's key (lowercased), or `None` for a
    /// property of the rule (`%{rule.id}`).
    pub(crate) fn references(&self) -> impl Iterator<Item = Option<(Var, Option<&str>)>> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Literal(_) => None,
            Part::Var(var, key) => Some(Some((*var, key.as_deref()))),
            Part::Rule(_) => Some(None),
        })
    }

    /// The variables its references read (`%{rule.id}` and the like read none).
    pub fn variables(&self) -> impl Iterator<Item = Var> + '_ {
        self.parts.iter().filter_map(|p| match p {
            Part::Var(var, _) => Some(*var),
            _ => None,
        })
    }

    /// The text with every reference replaced by its value: a variable's first value,
    /// or nothing when it has none (as in ModSecurity).
    pub fn expand(&self, resolve: &dyn Resolve) -> Vec<u8> {
        self.expand_cow(resolve).into_owned()
    }

    /// [`MacroText::expand_cow`], and without a copy of a text that is one collection
    /// member the resolver keeps (`@within %{tx.allowed_methods}`).
    pub fn expand_in<'a>(&'a self, resolve: &'a dyn Resolve) -> std::borrow::Cow<'a, [u8]> {
        if let Some((var, slot)) = self.single_member()
            && let Some(v) = resolve.member(var, slot)
        {
            return std::borrow::Cow::Borrowed(v);
        }
        self.expand_cow(resolve)
    }

    /// [`MacroText::expand`] without a copy of a text that has no macro (most operator
    /// arguments: `@lt 2`, `@streq POST`).
    pub fn expand_cow(&self, resolve: &dyn Resolve) -> std::borrow::Cow<'_, [u8]> {
        if let Some(c) = self.constant() {
            return std::borrow::Cow::Borrowed(c);
        }
        let mut out = Vec::with_capacity(EXPANSION_ROOM);
        for (part, &slot) in self.parts.iter().zip(&self.slots) {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                // A missing variable expands to nothing, as in ModSecurity.
                Part::Var(var, key) => resolve.append(
                    *var,
                    key.as_deref(),
                    (slot != NO_SLOT).then_some(slot),
                    &mut out,
                ),
                Part::Rule(name) => out.extend(resolve.rule_property(name).unwrap_or_default()),
            }
        }
        std::borrow::Cow::Owned(out)
    }
}

fn parse_reference(inner: &str) -> Result<Part, ErrorKind> {
    let (name, key) = match inner.split_once(['.', ':']) {
        Some((n, k)) => (n, Some(k.to_ascii_lowercase())),
        None => (inner, None),
    };
    if name.eq_ignore_ascii_case("rule") {
        return Ok(Part::Rule(key.unwrap_or_default()));
    }
    let var = Var::parse(name).ok_or_else(|| ErrorKind::Variable {
        text: format!("%{{{inner}}}"),
        reason: "unknown variable in macro".into(),
    })?;
    if key.is_some() && !var.is_collection() {
        return Err(ErrorKind::Variable {
            text: format!("%{{{inner}}}"),
            reason: format!("{} takes no key", var.name()),
        });
    }
    Ok(Part::Var(var, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed;
    impl Resolve for Fixed {
        fn first(&self, var: Var, key: Option<&str>) -> Option<Vec<u8>> {
            match (var, key) {
                (Var::Tx, Some("critical_anomaly_score")) => Some(b"5".to_vec()),
                (Var::MatchedVar, None) => Some(b"<x>".to_vec()),
                _ => None,
            }
        }
        fn rule_property(&self, name: &str) -> Option<Vec<u8>> {
            (name == "id").then(|| b"941100".to_vec())
        }
    }

    #[test]
    fn expands_collections_scalars_rule_properties_and_missing_as_empty() {
        let m = MacroText::parse(
            "+%{TX.critical_anomaly_score} %{MATCHED_VAR} %{rule.id} [%{tx.nope}]",
        )
        .unwrap();
        assert_eq!(m.expand(&Fixed), b"+5 <x> 941100 []");
        assert_eq!(
            MacroText::parse("plain").unwrap().constant(),
            Some(&b"plain"[..])
        );
        assert_eq!(MacroText::parse("50%{").unwrap().expand(&Fixed), b"50%{");
    }

    #[test]
    fn unknown_macro_variable_is_a_load_error() {
        assert!(MacroText::parse("%{NOPE}").is_err());
        assert!(MacroText::parse("%{REQUEST_URI.x}").is_err());
    }
}
