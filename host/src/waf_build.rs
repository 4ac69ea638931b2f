//! `chatgate waf`: checks a SecLang rule set and writes the `waf` component with it
//! compiled in.
//!
//! The rule files are loaded natively first, through a recorder that keeps every file
//! the load read ([`waf::bundle`]), so that a bad rule file stops the build with its file,
//! line and reason, and rules the engine cannot honour are listed (an error unless
//! `--allow-unsupported`). The recorded files are written as one bundle into the output
//! folder, and [`preload`](crate::preload::preload) runs the component's
//! `wizer-initialize` with that folder at `/index`: the component compiles the same
//! bundle once, and the snapshot of its memory is the `waf.wasm` written. Every instance
//! then starts with the compiled rule set; none parses a rule.

use std::path::{Path, PathBuf};
use waf::bundle::{self, BUNDLE_FILE, Bundle, Recorder};

/// The preloaded component's file name in the output folder.
pub const COMPONENT_FILE: &str = "waf.wasm";

pub struct WafBuildOptions {
    /// Rule files, loaded in this order (each may `Include` others).
    pub rules: Vec<PathBuf>,
    /// Where the bundle and the preloaded component are written.
    pub out_dir: PathBuf,
    /// The `waf` component to preload.
    pub component: PathBuf,
    /// Leave out rules the engine cannot honour instead of failing.
    pub allow_unsupported: bool,
}

#[derive(Debug)]
pub struct WafBuildReport {
    /// Rules (chains count once) in the compiled set.
    pub rules: usize,
    /// Rules left out (`--allow-unsupported`), as `file:line rule id: reason`.
    pub unsupported: Vec<String>,
    /// Files the load read (entries, includes, data files).
    pub files: usize,
    pub bundle: (PathBuf, usize),
    pub component: (PathBuf, usize),
}

/// Why the rule set was refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum WafBuildError {
    #[error("{0}")]
    Rules(String),
    #[error(
        "{} rules cannot be honoured by this engine (pass --allow-unsupported to leave them out):\n{}",
        .0.len(),
        .0.join("\n")
    )]
    Unsupported(Vec<String>),
}

/// Loads the rule files natively and returns the bundle of what the load read, the
/// compiled rule count and the unsupported rules.
pub fn check(
    rules: &[PathBuf],
    allow_unsupported: bool,
) -> Result<(Bundle, usize, Vec<String>), WafBuildError> {
    if rules.is_empty() {
        return Err(WafBuildError::Rules(
            "no rule files: pass --rules FILE (for example components/waf/rules/default.conf)"
                .to_owned(),
        ));
    }
    let mut entries = Vec::with_capacity(rules.len());
    for path in rules {
        let text = path.to_str().filter(|p| bundle::valid_entry(p)).ok_or_else(|| {
            WafBuildError::Rules(format!(
                "{}: a rule file's path must be UTF-8 without quotes, backslashes or line breaks",
                path.display()
            ))
        })?;
        if !path.is_file() {
            return Err(WafBuildError::Rules(format!("{text}: no such rule file")));
        }
        entries.push(text.to_owned());
    }
    let recorder = Recorder::new(chatgate_seclang::FileSystem);
    // Always load leniently first, to list every unsupported rule rather than the first.
    let rule_set = bundle::compile(&recorder, &entries, true)
        .map_err(|error| WafBuildError::Rules(error.to_string()))?;
    let unsupported: Vec<String> = rule_set
        .unsupported()
        .iter()
        .map(ToString::to_string)
        .collect();
    if !unsupported.is_empty() && !allow_unsupported {
        return Err(WafBuildError::Unsupported(unsupported));
    }
    let (files, binary_files) = recorder.into_all_files();
    let bundle = Bundle {
        entries,
        skip_unsupported: allow_unsupported,
        files,
        binary_files,
    };
    Ok((bundle, rule_set.len(), unsupported))
}

/// Checks the rules, writes `<out>/waf-rules.json` and `<out>/waf.wasm`.
pub async fn run(options: &WafBuildOptions) -> wasmtime::Result<WafBuildReport> {
    let (bundle, rules, unsupported) = check(&options.rules, options.allow_unsupported)?;
    let wasm = std::fs::read(&options.component).map_err(|error| {
        wasmtime::format_err!(
            "cannot read the component {}: {error}",
            options.component.display()
        )
    })?;
    std::fs::create_dir_all(&options.out_dir).map_err(|error| {
        wasmtime::format_err!("cannot create {}: {error}", options.out_dir.display())
    })?;
    let json = bundle.to_json();
    let bundle_path = options.out_dir.join(BUNDLE_FILE);
    write_atomically(&bundle_path, json.as_bytes())?;
    let preloaded = crate::preload::preload(&wasm, &options.out_dir).await?;
    let component_path = options.out_dir.join(COMPONENT_FILE);
    write_atomically(&component_path, &preloaded)?;
    Ok(WafBuildReport {
        rules,
        unsupported,
        files: bundle.files.len(),
        bundle: (bundle_path, json.len()),
        component: (component_path, preloaded.len()),
    })
}

/// A reader of the output never sees half a file: a failed run leaves the previous one.
fn write_atomically(path: &Path, bytes: &[u8]) -> wasmtime::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(|error| wasmtime::format_err!("cannot write {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("chatgate-waf-build-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_bad_rule_file_is_named_with_its_line() {
        let dir = dir("bad");
        std::fs::write(dir.join("main.conf"), "Include extra.conf\n").unwrap();
        std::fs::write(
            dir.join("extra.conf"),
            "# comment\nSecRule ARGS \"@rx ok\" \"id:1,phase:2,pass\"\nSecRule ARGS \"@rx (\" \"id:2,phase:2,deny\"\n",
        )
        .unwrap();
        let error = check(&[dir.join("main.conf")], false)
            .unwrap_err()
            .to_string();
        let at = format!("{}:3:", dir.join("extra.conf").display());
        assert!(error.starts_with(&at), "{error}");
        assert!(error.contains("does not compile"), "{error}");
    }

    #[test]
    fn unsupported_rules_fail_unless_allowed_and_are_listed() {
        let dir = dir("unsupported");
        let rules = dir.join("r.conf");
        std::fs::write(
            &rules,
            // Look-around over a byte above 0x7f: still beyond the engine (the
            // backtracking fallback reads `\xff` as a code point).
            "SecRule ARGS \"@rx (?<=\\xff)b\" \"id:7,phase:2,deny\"\nSecRule ARGS \"@rx b\" \"id:8,phase:2,deny\"\n",
        )
        .unwrap();
        match check(std::slice::from_ref(&rules), false) {
            Err(WafBuildError::Unsupported(list)) => {
                assert_eq!(list.len(), 1);
                assert!(list[0].contains("rule 7"), "{list:?}");
            }
            other => panic!("expected unsupported rules, got {other:?}"),
        }
        let (bundle, count, unsupported) = check(&[rules], true).unwrap();
        assert_eq!((count, unsupported.len()), (1, 1));
        assert!(bundle.skip_unsupported);
        assert_eq!(bundle.compile().unwrap().len(), 1);
    }

    /// Issue 11: Debian's CRS 3.3 loads with nothing left out, so `chatgate waf` takes it
    /// without `--allow-unsupported`.
    #[test]
    fn crs_3_3_needs_no_allow_unsupported() {
        let crs = PathBuf::from("/usr/share/modsecurity-crs/owasp-crs.load");
        assert!(
            crs.exists(),
            "install Debian's modsecurity-crs (`make test` does, as root)"
        );
        let (bundle, count, unsupported) = check(&[crs], false).unwrap();
        assert!(unsupported.is_empty(), "{unsupported:?}");
        assert!(!bundle.skip_unsupported);
        assert!(count > 400, "{count} rules");
        assert_eq!(bundle.compile().unwrap().len(), count);
    }

    #[test]
    fn the_bundle_holds_every_file_read_and_compiles_alone() {
        let dir = dir("bundle");
        std::fs::create_dir_all(dir.join("rules")).unwrap();
        std::fs::write(dir.join("a.conf"), "Include rules/*.conf\n").unwrap();
        std::fs::write(
            dir.join("rules/1.conf"),
            "SecRule ARGS \"@pmFromFile words.data\" \"id:1,phase:2,deny\"\n",
        )
        .unwrap();
        std::fs::write(dir.join("rules/words.data"), "alpha\n").unwrap();
        let absolute = dir.join("b.conf");
        std::fs::write(&absolute, "SecRule ARGS \"@rx x\" \"id:2,phase:2,deny\"\n").unwrap();
        let (bundle, count, _) = check(&[dir.join("a.conf"), absolute.clone()], false).unwrap();
        assert_eq!(count, 2);
        assert_eq!(bundle.files.len(), 4, "{:?}", bundle.files.keys());
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(
            bundle.compile().unwrap().len(),
            2,
            "compiles with the files gone"
        );
    }

    #[test]
    fn missing_or_no_rule_files_are_refused() {
        assert!(check(&[], false).is_err());
        let error = check(&[PathBuf::from("/nonexistent/rules.conf")], false)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("/nonexistent/rules.conf: no such rule file"),
            "{error}"
        );
    }
}
