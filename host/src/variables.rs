//! Spin variables: application variables resolved once at start-up (environment
//! `SPIN_VARIABLE_<NAME>` first, then the manifest default), and component
//! variables expanded from `{{ template }}` strings over them.

use crate::manifest::{Manifest, check_variable_name};
use std::collections::{BTreeMap, BTreeSet};

/// Why variables could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum VariableError {
    #[error("variable `{0}` is required: set SPIN_VARIABLE_{upper}", upper = .0.to_ascii_uppercase())]
    Missing(String),
    #[error("template `{template}` refers to undeclared variable `{name}`")]
    Undeclared { template: String, name: String },
    #[error("template `{0}` is malformed: expected `{{{{ name }}}}`")]
    Malformed(String),
}

/// Resolved application variables. Values of `secret` variables never appear in
/// `Debug` output or errors.
#[derive(Clone, Default)]
pub struct AppVariables {
    values: BTreeMap<String, String>,
    secret: BTreeSet<String>,
}

impl std::fmt::Debug for AppVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut map = f.debug_map();
        for (name, value) in &self.values {
            if self.secret.contains(name) {
                map.entry(name, &"<secret>");
            } else {
                map.entry(name, value);
            }
        }
        map.finish()
    }
}

impl AppVariables {
    /// Resolves every application variable; `env` is consulted as `SPIN_VARIABLE_<NAME>`.
    pub fn resolve(
        manifest: &Manifest,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, VariableError> {
        let mut values = BTreeMap::new();
        let mut secret = BTreeSet::new();
        for (name, decl) in &manifest.variables {
            let from_env = env(&format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()));
            let value = match (from_env, &decl.default) {
                (Some(v), _) => v,
                (None, Some(default)) => default.clone(),
                (None, None) => return Err(VariableError::Missing(name.clone())),
            };
            if decl.secret {
                secret.insert(name.clone());
            }
            values.insert(name.clone(), value);
        }
        Ok(AppVariables { values, secret })
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Expands `{{ name }}` references in `template`.
    pub fn expand(&self, template: &str) -> Result<String, VariableError> {
        let mut out = String::with_capacity(template.len());
        let mut rest = template;
        while let Some(start) = rest.find("{{") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| VariableError::Malformed(template.to_string()))?;
            let name = after[..end].trim();
            if check_variable_name(name).is_err() {
                return Err(VariableError::Malformed(template.to_string()));
            }
            let value = self.get(name).ok_or_else(|| VariableError::Undeclared {
                template: template.to_string(),
                name: name.to_string(),
            })?;
            out.push_str(value);
            rest = &after[end + 2..];
        }
        if rest.contains("}}") {
            return Err(VariableError::Malformed(template.to_string()));
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The variables one component sees, expanded from its `[component.x.variables]`.
    pub fn component_view(
        &self,
        templates: &BTreeMap<String, String>,
    ) -> Result<ComponentVariables, VariableError> {
        let values = templates
            .iter()
            .map(|(name, template)| Ok((name.clone(), self.expand(template)?)))
            .collect::<Result<_, VariableError>>()?;
        Ok(ComponentVariables { values })
    }
}

/// What `spin:variables/get` answers for one component.
#[derive(Clone, Default)]
pub struct ComponentVariables {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for ComponentVariables {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Component variables may hold secrets; only their names are printable.
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl ComponentVariables {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Every variable the component sees, with its value.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn manifest() -> Manifest {
        Manifest::parse(
            r#"
spin_manifest_version = 2
[application]
name = "demo"
[variables]
origin = { default = "https://api.openai.com" }
api_key = { default = "", secret = true }
region = { required = true }
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "web.wasm"
"#,
            PathBuf::from("."),
        )
        .unwrap()
    }

    #[test]
    fn environment_overrides_default_and_required_must_be_set() {
        let m = manifest();
        let err = AppVariables::resolve(&m, |_| None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "variable `region` is required: set SPIN_VARIABLE_REGION"
        );
        let vars = AppVariables::resolve(&m, |k| match k {
            "SPIN_VARIABLE_REGION" => Some("westeurope".into()),
            "SPIN_VARIABLE_ORIGIN" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(vars.get("origin"), Some("http://127.0.0.1:9"));
        assert_eq!(vars.get("api_key"), Some(""));
    }

    #[test]
    fn templates_expand_and_reject_unknown_names() {
        let m = manifest();
        let vars =
            AppVariables::resolve(&m, |k| (k == "SPIN_VARIABLE_REGION").then(|| "eu".into()))
                .unwrap();
        assert_eq!(
            vars.expand("{{ origin }}/v1 in {{region}}").unwrap(),
            "https://api.openai.com/v1 in eu"
        );
        assert!(matches!(
            vars.expand("{{ nope }}"),
            Err(VariableError::Undeclared { .. })
        ));
        assert!(matches!(
            vars.expand("{{ origin"),
            Err(VariableError::Malformed(_))
        ));
    }

    #[test]
    fn secrets_never_print() {
        let m = manifest();
        let vars = AppVariables::resolve(&m, |k| match k {
            "SPIN_VARIABLE_API_KEY" => Some("sk-very-secret".into()),
            "SPIN_VARIABLE_REGION" => Some("eu".into()),
            _ => None,
        })
        .unwrap();
        let printed = format!("{vars:?}");
        assert!(!printed.contains("sk-very-secret"), "{printed}");
        let view = vars
            .component_view(&[("key".to_string(), "{{ api_key }}".to_string())].into())
            .unwrap();
        assert_eq!(view.get("key"), Some("sk-very-secret"));
        assert!(!format!("{view:?}").contains("sk-very-secret"));
    }
}
