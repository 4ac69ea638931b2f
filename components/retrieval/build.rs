//! Embeds the Markdown corpus in `../../data` into the component, so that the index
//! needs no file system access at run time (a component gets none unless granted).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let data_dir = manifest_dir.join("../../data");
    println!("cargo:rerun-if-changed={}", data_dir.display());

    let mut documents = Vec::new();
    if data_dir.is_dir() {
        collect_markdown(&data_dir, &mut documents);
    } else {
        println!(
            "cargo:warning=no corpus at {}; the retriever will report index-unavailable",
            data_dir.display()
        );
    }
    documents.sort();

    let mut generated = String::from("pub static DOCUMENTS: &[(&str, &str)] = &[\n");
    for path in &documents {
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path
            .strip_prefix(&data_dir)
            .expect("collected under data_dir")
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let absolute = fs::canonicalize(path).expect("collected paths exist");
        writeln!(
            generated,
            "    ({:?}, include_str!({:?})),",
            format!("data/{relative}"),
            absolute.to_string_lossy()
        )
        .expect("writing to a String cannot fail");
    }
    generated.push_str("];\n");

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("corpus.rs");
    fs::write(out, generated).expect("OUT_DIR is writable");
}

fn collect_markdown(dir: &Path, documents: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_markdown(&path, documents);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
}
