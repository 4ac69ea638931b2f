//! Finds the documents below a folder.

use std::fs;
use std::path::Path;

use super::{Discovered, IngestError, Skipped, source_kind};

/// The Markdown, text and HTML files below `root`, and everything else it skipped.
///
/// Hidden entries (names starting with `.`, such as `.git`) are not documents and are
/// left out silently, with everything below them. Every other file that is not ingested
/// is reported in [`Discovered::skipped`] with the reason: an unsupported extension, a
/// name that is not UTF-8, something that is not a regular file, a folder that cannot be
/// listed. Symbolic links to files are followed; symbolic links to folders are reported
/// and not followed, so links cannot make the walk loop.
///
/// Fails only when `root` itself cannot be listed.
pub fn discover(root: &Path) -> Result<Discovered, IngestError> {
    let metadata = fs::metadata(root).map_err(|source| IngestError::UnreadableRoot {
        root: root.to_path_buf(),
        source,
    })?;
    if !metadata.is_dir() {
        return Err(IngestError::RootNotDirectory {
            root: root.to_path_buf(),
        });
    }

    let mut found = Discovered::default();
    // Folders still to list: their path on disk and relative to `root` (empty for `root`
    // itself). A stack, not recursion, so deep trees cannot overflow the call stack.
    let mut pending = vec![(root.to_path_buf(), String::new())];
    while let Some((folder, relative)) = pending.pop() {
        let entries = match fs::read_dir(&folder) {
            Ok(entries) => entries,
            Err(source) if relative.is_empty() => {
                return Err(IngestError::UnreadableRoot {
                    root: root.to_path_buf(),
                    source,
                });
            }
            Err(error) => {
                found.skip(relative, format!("cannot list the folder: {error}"));
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(entry) => entry,
                Err(error) => {
                    let folder_name = if relative.is_empty() { "." } else { &relative };
                    found.skip(
                        folder_name.to_string(),
                        format!("cannot list an entry of the folder: {error}"),
                    );
                    continue;
                }
            };
            let file_name = entry.file_name();
            let name = file_name.to_string_lossy();
            if name.starts_with('.') {
                continue;
            }
            let path = if relative.is_empty() {
                name.to_string()
            } else {
                format!("{relative}/{name}")
            };
            if file_name.to_str().is_none() {
                found.skip(path, "the name is not valid UTF-8".to_string());
                continue;
            }
            let file_type = match entry.file_type() {
                Ok(file_type) => file_type,
                Err(error) => {
                    found.skip(path, format!("cannot read the file type: {error}"));
                    continue;
                }
            };
            if file_type.is_dir() {
                pending.push((entry.path(), path));
            } else if file_type.is_file() {
                found.classify(path);
            } else if file_type.is_symlink() {
                match fs::metadata(entry.path()) {
                    Ok(target) if target.is_dir() => {
                        found.skip(path, "symbolic link to a folder (not followed)".to_string())
                    }
                    Ok(target) if target.is_file() => found.classify(path),
                    Ok(_) => found.skip(
                        path,
                        "symbolic link to something that is not a regular file".to_string(),
                    ),
                    Err(error) => found.skip(path, format!("broken symbolic link: {error}")),
                }
            } else {
                found.skip(path, "not a regular file".to_string());
            }
        }
    }
    found.files.sort();
    found.skipped.sort();
    Ok(found)
}

impl Discovered {
    fn classify(&mut self, path: String) {
        let path_on_disk = Path::new(&path);
        if source_kind(path_on_disk).is_some() {
            self.files.push(path);
        } else {
            let reason = IngestError::UnsupportedType {
                extension: path_on_disk
                    .extension()
                    .map(|extension| extension.to_string_lossy().into_owned()),
            }
            .to_string();
            self.skip(path, reason);
        }
    }

    fn skip(&mut self, path: String, reason: String) {
        self.skipped.push(Skipped { path, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A fresh folder under the system's temporary folder, removed when dropped.
    struct TempFolder(PathBuf);

    impl TempFolder {
        fn new(test: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "chatgate-index-ingest-{}-{test}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&path);
            fs::create_dir_all(&path).unwrap();
            Self(path)
        }

        fn write(&self, relative: &str, contents: &str) {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(path, contents).unwrap();
        }
    }

    impl Drop for TempFolder {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn skipped(found: &Discovered) -> Vec<(&str, &str)> {
        found
            .skipped
            .iter()
            .map(|skip| (skip.path.as_str(), skip.reason.as_str()))
            .collect()
    }

    #[test]
    fn documents_are_listed_sorted_and_other_files_reported() {
        let folder = TempFolder::new("listing");
        for path in [
            "waf.md",
            "guides/setup.Markdown",
            "guides/deep/notes.TXT",
            "site/index.html",
            "site/old.htm",
            "a.text",
            "paper.pdf",
            "Makefile",
            "guides/diagram.PNG",
        ] {
            folder.write(path, "text");
        }
        let found = discover(&folder.0).unwrap();
        assert_eq!(
            found.files,
            vec![
                "a.text",
                "guides/deep/notes.TXT",
                "guides/setup.Markdown",
                "site/index.html",
                "site/old.htm",
                "waf.md"
            ]
        );
        assert_eq!(
            skipped(&found),
            vec![
                ("Makefile", "unsupported file type (no extension)"),
                ("guides/diagram.PNG", "unsupported file type `.PNG`"),
                ("paper.pdf", "unsupported file type `.pdf`"),
            ]
        );
    }

    #[test]
    fn hidden_files_and_folders_are_left_out_silently() {
        let folder = TempFolder::new("hidden");
        folder.write("visible.md", "text");
        folder.write(".hidden.md", "text");
        folder.write(".git/config", "text");
        folder.write(".git/notes.md", "text");
        folder.write("sub/.DS_Store", "binary");
        let found = discover(&folder.0).unwrap();
        assert_eq!(found.files, vec!["visible.md"]);
        assert!(found.skipped.is_empty(), "{:?}", found.skipped);
    }

    #[test]
    fn an_empty_folder_has_nothing_to_ingest() {
        let folder = TempFolder::new("empty");
        assert_eq!(discover(&folder.0).unwrap(), Discovered::default());
    }

    #[test]
    fn a_missing_root_or_a_file_root_is_an_error() {
        let folder = TempFolder::new("roots");
        let missing = discover(&folder.0.join("missing")).unwrap_err();
        assert!(
            matches!(missing, IngestError::UnreadableRoot { .. }),
            "{missing:?}"
        );
        assert!(missing.to_string().starts_with("cannot read the folder `"));

        folder.write("file.md", "text");
        let file = discover(&folder.0.join("file.md")).unwrap_err();
        assert!(
            matches!(file, IngestError::RootNotDirectory { .. }),
            "{file:?}"
        );
        assert!(file.to_string().ends_with("file.md` is not a folder"));
    }

    #[cfg(unix)]
    #[test]
    fn symbolic_links_to_files_are_followed_and_to_folders_reported() {
        use std::os::unix::fs::symlink;

        let folder = TempFolder::new("links");
        folder.write("docs/real.md", "text");
        symlink(
            folder.0.join("docs/real.md"),
            folder.0.join("docs/alias.md"),
        )
        .unwrap();
        // A link back up the tree would make a following walk loop forever.
        symlink(&folder.0, folder.0.join("docs/loop")).unwrap();
        symlink(folder.0.join("gone.md"), folder.0.join("docs/broken.md")).unwrap();
        let found = discover(&folder.0).unwrap();
        assert_eq!(found.files, vec!["docs/alias.md", "docs/real.md"]);
        let reasons = skipped(&found);
        assert_eq!(reasons.len(), 2, "{reasons:?}");
        assert!(
            reasons[0].0 == "docs/broken.md" && reasons[0].1.starts_with("broken symbolic link")
        );
        assert_eq!(
            reasons[1],
            ("docs/loop", "symbolic link to a folder (not followed)")
        );
    }
}
