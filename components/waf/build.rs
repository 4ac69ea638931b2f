//! Embeds the project's default rule set: every file under `rules/` (but its README) as
//! `(path, text)` pairs named `rules/<relative path>`, for the component to compile when it
//! was not pre-initialised by `chatgate waf`. Listing the folder here means a rule or data
//! file added there is embedded without editing code.

use std::path::{Path, PathBuf};

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    // A folder is watched recursively; a missing one makes cargo re-run this script until
    // it exists.
    println!("cargo::rerun-if-changed={}", dir.display());
    let mut files = Vec::new();
    if dir.is_dir() {
        collect(&dir, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// The embedded rule files, by path (`rules/...`).\npub static FILES: &[(&str, &str)] = &[\n",
    );
    for file in &files {
        let relative = file.strip_prefix(&dir).expect("listed under rules/");
        let name = format!(
            "rules/{}",
            relative
                .components()
                .map(|c| c.as_os_str().to_str().expect("UTF-8 rule file names"))
                .collect::<Vec<_>>()
                .join("/")
        );
        out.push_str(&format!(
            "    ({name:?}, include_str!({:?})),\n",
            file.display().to_string()
        ));
    }
    out.push_str("];\n");
    let target = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("default_rules.rs");
    std::fs::write(target, out).expect("writing default_rules.rs");
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("reading rules/") {
        let path = entry.expect("reading rules/").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_none_or(|e| e != "md") {
            files.push(path);
        }
    }
}
