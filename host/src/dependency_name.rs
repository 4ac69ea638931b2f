//! A dependency's name in the manifest (`foo-bar`, `ns:pkg[/interface][@version]`) and
//! how it matches a component's imports, as Spin's `crates/serde/src/dependencies.rs` and
//! composer define them. Its own module because both the manifest (which checks the names)
//! and the composer (which matches them to imports) need it, and neither should depend on
//! the other for it.
//!
//! `compose:N` cites Spin's `crates/compose/src/lib.rs` at spin commit 94a8fc8a.

/// A dependency's name in the manifest, as Spin parses it
/// (`crates/serde/src/dependencies.rs`:51-79, 128-140).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyName {
    /// `foo-bar`: matches the plain import of that name.
    Plain(String),
    /// `ns:pkg`, `ns:pkg@1.2.3`, `ns:pkg/interface`, `ns:pkg/interface@1.2.3`.
    Package {
        package: String,
        interface: Option<String>,
        version: Option<semver::Version>,
    },
}

/// Lowercase kebab-case, as Spin's `KebabId` and package names (`wasm-pkg-common`) require.
fn is_kebab(word: &str) -> bool {
    !word.is_empty()
        && word.split('-').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

impl DependencyName {
    pub fn parse(name: &str) -> Result<Self, String> {
        if !name.contains([':', '/']) {
            return if is_kebab(name) {
                Ok(DependencyName::Plain(name.to_string()))
            } else {
                Err("a plain name must be kebab-case".into())
            };
        }
        let (unversioned, version) = match name.split_once('@') {
            Some((unversioned, version)) => (
                unversioned,
                Some(
                    semver::Version::parse(version)
                        .map_err(|e| format!("invalid version `{version}`: {e}"))?,
                ),
            ),
            None => (name, None),
        };
        let (package, interface) = match unversioned.split_once('/') {
            Some((package, interface)) => (package, Some(interface)),
            None => (unversioned, None),
        };
        let valid_package = package
            .split_once(':')
            .is_some_and(|(ns, pkg)| is_kebab(ns) && is_kebab(pkg));
        if !valid_package {
            return Err(format!(
                "`{package}` is not a package name (`namespace:name`)"
            ));
        }
        if let Some(interface) = interface
            && !is_kebab(interface)
        {
            return Err(format!("`{interface}` is not an interface name"));
        }
        Ok(DependencyName::Package {
            package: package.to_string(),
            interface: interface.map(str::to_string),
            version,
        })
    }

    /// The name Spin registers the dependency under in its composition graph: the
    /// package without version, or the plain name (compose:420-423).
    pub fn registered_name(&self) -> &str {
        match self {
            DependencyName::Plain(name) => name,
            DependencyName::Package { package, .. } => package,
        }
    }

    /// Whether this name satisfies the import `import`, as Spin's `matches_import`
    /// (compose:532-572).
    pub fn matches_import(&self, import: &str) -> bool {
        match self {
            DependencyName::Plain(name) => !import.contains([':', '/']) && name == import,
            DependencyName::Package {
                package,
                interface,
                version,
            } => {
                let Some((import_package, rest)) = import.split_once('/') else {
                    return false;
                };
                let (import_interface, import_version) = match rest.split_once('@') {
                    Some((interface, version)) => {
                        let Ok(version) = semver::Version::parse(version) else {
                            return false;
                        };
                        (interface, Some(version))
                    }
                    None => (rest, None),
                };
                import_package == package
                    && interface.as_deref().is_none_or(|i| i == import_interface)
                    && version
                        .as_ref()
                        .is_none_or(|v| Some(v) == import_version.as_ref())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dependency_names_match_imports_as_in_spin() {
        // The cases of Spin's `test_matches_import` (compose:578-605).
        for (name, imports) in [
            ("foo:bar/baz@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo:bar/baz", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo-bar", vec!["foo-bar"]),
        ] {
            let name = DependencyName::parse(name).unwrap();
            for import in imports {
                assert!(name.matches_import(import), "{name:?} {import}");
            }
        }
        for (name, imports) in [
            ("foo:bar/baz@0.1.0", vec!["foo:bar/baz"]),
            ("foo:bar/baz", vec!["foo:bar/bub", "foo:bar/bub@0.1.0"]),
            ("foo:bar", vec!["foo:bub/bib"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz"]),
            ("foo:bar/baz", vec!["foo:bar/baz-bub", "foo-bar"]),
        ] {
            let name = DependencyName::parse(name).unwrap();
            for import in imports {
                assert!(!name.matches_import(import), "{name:?} {import}");
            }
        }
    }

    #[test]
    fn dependencies_register_under_their_package_without_version() {
        let name = DependencyName::parse("chatgate:retriever/retriever@0.2.0").unwrap();
        assert_eq!(name.registered_name(), "chatgate:retriever");
        assert_eq!(
            DependencyName::parse("my-dep").unwrap().registered_name(),
            "my-dep"
        );
        for bad in ["Foo:bar", "foo:bar/Baz", "foo:bar@x", "foo/bar", "foo_bar"] {
            assert!(DependencyName::parse(bad).is_err(), "{bad}");
        }
    }
}
