//! The rule bundle: every file a rule-set load read, in one file, so that the component can
//! compile exactly what `chatgate waf` checked on the host without a file system.
//!
//! `chatgate waf --rules A --rules B` loads `A` and `B` natively through a [`Recorder`],
//! which keeps each file the engine reads: the entry files, the files they `Include`
//! (under the path the engine resolved, absolute when the rule set names them so, as
//! Debian's CRS does), and `@pmFromFile` / `@ipMatchFromFile` data files. The bundle is
//! written as JSON:
//!
//! ```json
//! {
//!   "format": "chatgate-waf-rules/1",
//!   "entries": ["components/waf/rules/default.conf"],
//!   "skip_unsupported": false,
//!   "files": {"components/waf/rules/default.conf": "Include ...", "...": "..."}
//! }
//! ```
//!
//! `entries` are the `--rules` paths in order; `files` maps each path the load read to its
//! text; `skip_unsupported` is `--allow-unsupported`. A binary file the load read (the
//! MaxMind DB `SecGeoLookupDb` names) is under `binary_files` instead, as base64
//! (standard alphabet, padded); the key is left out when there is none, so a bundle
//! without one is what it was before binary files existed. [`compile`] loads the entries in order
//! the same way on both sides (as `Include`s of a synthetic file named [`ENTRY_NAME`]), so
//! the component compiles the rule set the host accepted.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chatgate_seclang::{Files, LoadError, LoadOptions, MemoryFiles, RuleSet};
use std::collections::BTreeMap;

/// The bundle's `format` value; a bundle of another format is refused, not guessed at.
pub const FORMAT: &str = "chatgate-waf-rules/1";

/// The bundle's file name in the folder `chatgate waf` preloads the component with.
pub const BUNDLE_FILE: &str = "waf-rules.json";

/// The synthetic file that includes the entries; an error in it names this (for a
/// `--rules` path that matches no file, say).
pub const ENTRY_NAME: &str = "--rules";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub entries: Vec<String>,
    pub skip_unsupported: bool,
    pub files: BTreeMap<String, String>,
    /// Files read as bytes ([`Files::read_bytes`]): a `SecGeoLookupDb` database.
    pub binary_files: BTreeMap<String, Vec<u8>>,
}

impl Bundle {
    pub fn to_json(&self) -> String {
        let mut value = serde_json::json!({
            "format": FORMAT,
            "entries": self.entries,
            "skip_unsupported": self.skip_unsupported,
            "files": self.files,
        });
        if !self.binary_files.is_empty() {
            value["binary_files"] = self
                .binary_files
                .iter()
                .map(|(path, bytes)| (path.clone(), BASE64.encode(bytes).into()))
                .collect::<serde_json::Map<_, _>>()
                .into();
        }
        value.to_string()
    }

    pub fn from_json(text: &str) -> Result<Bundle, String> {
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| format!("the rule bundle is not JSON: {e}"))?;
        match value["format"].as_str() {
            Some(FORMAT) => {}
            other => {
                return Err(format!(
                    "the rule bundle's format is {other:?}, expected {FORMAT:?}"
                ));
            }
        }
        let entries = value["entries"]
            .as_array()
            .and_then(|list| {
                list.iter()
                    .map(|v| v.as_str().map(str::to_owned))
                    .collect::<Option<Vec<_>>>()
            })
            .ok_or("the rule bundle's `entries` is not a list of strings")?;
        let skip_unsupported = value["skip_unsupported"]
            .as_bool()
            .ok_or("the rule bundle's `skip_unsupported` is not a boolean")?;
        let files = value["files"]
            .as_object()
            .and_then(|map| {
                map.iter()
                    .map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect::<Option<BTreeMap<_, _>>>()
            })
            .ok_or("the rule bundle's `files` is not an object of strings")?;
        let binary_files = match &value["binary_files"] {
            serde_json::Value::Null => BTreeMap::new(),
            v => v
                .as_object()
                .and_then(|map| {
                    map.iter()
                        .map(|(k, v)| {
                            let bytes = BASE64.decode(v.as_str()?).ok()?;
                            Some((k.clone(), bytes))
                        })
                        .collect::<Option<BTreeMap<_, _>>>()
                })
                .ok_or("the rule bundle's `binary_files` is not an object of base64 strings")?,
        };
        Ok(Bundle {
            entries,
            skip_unsupported,
            files,
            binary_files,
        })
    }

    /// Compiles the bundle's rule set from its files alone.
    pub fn compile(&self) -> Result<RuleSet, LoadError> {
        compile(
            &BundleFiles {
                text: MemoryFiles(self.files.clone()),
                binary: &self.binary_files,
            },
            &self.entries,
            self.skip_unsupported,
        )
    }
}

/// A bundle's files: text, and the binary ones by themselves.
struct BundleFiles<'a> {
    text: MemoryFiles,
    binary: &'a BTreeMap<String, Vec<u8>>,
}

impl Files for BundleFiles<'_> {
    fn read(&self, path: &str) -> std::io::Result<String> {
        self.text.read(path)
    }

    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        match self.binary.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.text.read_bytes(path),
        }
    }

    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        let mut found = self.text.glob(pattern)?;
        found.extend(
            MemoryFiles(
                self.binary
                    .keys()
                    .map(|k| (k.clone(), String::new()))
                    .collect(),
            )
            .glob(pattern)?,
        );
        found.sort();
        found.dedup();
        Ok(found)
    }
}

/// Loads `entries` in order from `files`. Entry paths are taken as given (relative paths
/// against the current directory natively; they are only names in a bundle).
pub fn compile(
    files: &dyn Files,
    entries: &[String],
    skip_unsupported: bool,
) -> Result<RuleSet, LoadError> {
    RuleSet::from_text(
        files,
        ENTRY_NAME,
        &entry_text(entries),
        LoadOptions { skip_unsupported },
    )
}

/// `Include "<path>"` per entry. The caller refuses paths the quoting cannot carry
/// ([`valid_entry`]).
fn entry_text(entries: &[String]) -> String {
    entries
        .iter()
        .map(|path| format!("Include \"{path}\"\n"))
        .collect()
}

/// Whether `path` can be an entry: SecLang quoting has no escape for `"`, and a line break
/// would end the directive.
pub fn valid_entry(path: &str) -> bool {
    !path.is_empty() && !path.contains(['"', '\n', '\r', '\\'])
}

/// A [`Files`] that reads through another and keeps every file it read, for the bundle.
#[derive(Default)]
pub struct Recorder<F> {
    inner: F,
    read: std::cell::RefCell<BTreeMap<String, String>>,
    read_bytes: std::cell::RefCell<BTreeMap<String, Vec<u8>>>,
}

impl<F: Files> Recorder<F> {
    pub fn new(inner: F) -> Self {
        Self {
            inner,
            read: Default::default(),
            read_bytes: Default::default(),
        }
    }

    /// Every file read so far as text, by the path the engine asked for.
    pub fn into_files(self) -> BTreeMap<String, String> {
        self.read.into_inner()
    }

    /// Every file read so far: as text, and as bytes.
    #[allow(clippy::type_complexity)]
    pub fn into_all_files(self) -> (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>) {
        (self.read.into_inner(), self.read_bytes.into_inner())
    }
}

impl<F: Files> Files for Recorder<F> {
    fn read(&self, path: &str) -> std::io::Result<String> {
        let text = self.inner.read(path)?;
        self.read.borrow_mut().insert(path.to_owned(), text.clone());
        Ok(text)
    }

    fn read_bytes(&self, path: &str) -> std::io::Result<Vec<u8>> {
        let bytes = self.inner.read_bytes(path)?;
        self.read_bytes
            .borrow_mut()
            .insert(path.to_owned(), bytes.clone());
        Ok(bytes)
    }

    // A glob is answered from the real files; the bundle holds only what was then read,
    // and the same glob over the bundle finds exactly those (every match is read).
    fn glob(&self, pattern: &str) -> std::io::Result<Vec<String>> {
        self.inner.glob(pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(files: &[(&str, &str)]) -> MemoryFiles {
        MemoryFiles(
            files
                .iter()
                .map(|(p, t)| (p.to_string(), t.to_string()))
                .collect(),
        )
    }

    #[test]
    fn json_round_trip_keeps_everything() {
        let bundle = Bundle {
            entries: vec!["a.conf".into(), "/abs/b.conf".into()],
            skip_unsupported: true,
            files: [
                (
                    "a.conf".to_string(),
                    "SecRule ARGS \"@rx \\\"x\" \"id:1\"\n".to_string(),
                ),
                ("/abs/b.conf".to_string(), "ünïcode\r\n\ttabs".to_string()),
            ]
            .into_iter()
            .collect(),
            binary_files: [("/geo/db.mmdb".to_string(), vec![0, 0xff, 0xab, 0xcd, 0x80])]
                .into_iter()
                .collect(),
        };
        let text = bundle.to_json();
        assert_eq!(Bundle::from_json(&text).unwrap(), bundle);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["format"], FORMAT);
    }

    #[test]
    fn a_bundle_of_another_format_or_shape_is_refused() {
        for text in [
            "not json",
            r#"{"format":"chatgate-waf-rules/2","entries":[],"skip_unsupported":false,"files":{}}"#,
            r#"{"format":"chatgate-waf-rules/1","entries":[1],"skip_unsupported":false,"files":{}}"#,
            r#"{"format":"chatgate-waf-rules/1","entries":[],"skip_unsupported":"no","files":{}}"#,
            r#"{"format":"chatgate-waf-rules/1","entries":[],"skip_unsupported":false,"files":{"a":1}}"#,
            r#"{"format":"chatgate-waf-rules/1","entries":[],"skip_unsupported":false,"files":{},"binary_files":{"a":"!!"}}"#,
        ] {
            assert!(Bundle::from_json(text).is_err(), "{text}");
        }
    }

    /// What the recorder kept is enough to compile the same rule set with no other files:
    /// includes (relative, absolute, globbed) and data files.
    #[test]
    fn recorded_files_compile_the_same_rules_from_memory() {
        let disk = memory(&[
            (
                "rules/main.conf",
                "Include parts/*.conf\nInclude /etc/crs/setup.conf\n",
            ),
            (
                "rules/parts/10-a.conf",
                "SecRule ARGS \"@pmFromFile words.data\" \"id:10,phase:2,deny\"\n",
            ),
            (
                "rules/parts/20-b.conf",
                "SecRule ARGS \"@rx b\" \"id:20,phase:2,deny\"\n",
            ),
            ("rules/parts/words.data", "alpha\nbeta\n"),
            ("rules/parts/unused.data", "never read\n"),
            (
                "/etc/crs/setup.conf",
                "SecAction \"id:30,phase:1,pass,nolog\"\n",
            ),
            (
                "other.conf",
                "SecRule ARGS \"@rx c\" \"id:40,phase:2,deny\"\n",
            ),
        ]);
        let entries = vec!["rules/main.conf".to_string(), "other.conf".to_string()];
        let recorder = Recorder::new(disk);
        let native = compile(&recorder, &entries, false).unwrap();
        let (files, binary_files) = recorder.into_all_files();
        let bundle = Bundle {
            entries,
            skip_unsupported: false,
            files,
            binary_files,
        };
        assert!(bundle.files.contains_key("rules/parts/words.data"));
        assert!(bundle.files.contains_key("/etc/crs/setup.conf"));
        assert!(!bundle.files.contains_key("rules/parts/unused.data"));
        let again = Bundle::from_json(&bundle.to_json())
            .unwrap()
            .compile()
            .unwrap();
        assert_eq!(
            native.rule_ids().collect::<Vec<_>>(),
            again.rule_ids().collect::<Vec<_>>()
        );
        assert_eq!(again.rule_ids().collect::<Vec<_>>(), vec![10, 20, 30, 40]);
    }

    #[test]
    fn a_missing_entry_is_named() {
        let error = compile(&memory(&[]), &["nope.conf".to_string()], false).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("nope.conf"), "{text}");
        assert!(text.starts_with(ENTRY_NAME), "{text}");
    }

    #[test]
    fn an_error_names_the_file_and_line() {
        let files = memory(&[("r.conf", "\n\nSecRule ARGS \"@rx (\" \"id:1,deny\"\n")]);
        let error = compile(&files, &["r.conf".to_string()], false).unwrap_err();
        assert_eq!((error.at.file.as_str(), error.at.line), ("r.conf", 3));
    }

    #[test]
    fn entries_that_quoting_cannot_carry_are_refused() {
        assert!(valid_entry("/usr/share/modsecurity-crs/owasp-crs.load"));
        assert!(valid_entry("rules/*.conf"));
        for bad in ["", "a\"b", "a\nb", "a\\b"] {
            assert!(!valid_entry(bad), "{bad:?}");
        }
    }
}
