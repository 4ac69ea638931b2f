//! `spin:variables`: a component reads the variables its manifest entry declares, already
//! resolved at load ([`crate::variables`]), so a call never touches the environment.

use super::bindings::spin::variables::variables;
use super::state::{SpinInterfaces, SpinView};
use crate::variables::ComponentVariables;
use wasmtime::component::Accessor;

/// What `get` answers for `name`: Spin's `invalid-name` for a name no manifest could
/// declare, `undefined` for one this component did not declare.
fn lookup(declared: &ComponentVariables, name: String) -> Result<String, variables::Error> {
    if crate::manifest::check_variable_name(&name).is_err() {
        return Err(variables::Error::InvalidName(name));
    }
    match declared.get(&name) {
        Some(value) => Ok(value.to_string()),
        None => Err(variables::Error::Undefined(format!(
            "no variable `{name}` is declared for this component"
        ))),
    }
}

impl variables::Host for SpinView<'_> {}

impl<U> variables::HostWithStore<U> for SpinInterfaces {
    async fn get(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables::Error>> {
        Ok(accessor.with(|mut access| lookup(&access.get().grants.variables, name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variables::AppVariables;
    use std::collections::BTreeMap;

    fn declared() -> ComponentVariables {
        let templates = BTreeMap::from([("api_key".to_string(), "secret-value".to_string())]);
        AppVariables::default().component_view(&templates).unwrap()
    }

    #[test]
    fn a_declared_variable_has_its_value() {
        assert_eq!(
            lookup(&declared(), "api_key".into()).unwrap(),
            "secret-value"
        );
    }

    #[test]
    fn an_undeclared_variable_is_undefined() {
        match lookup(&declared(), "other".into()) {
            Err(variables::Error::Undefined(message)) => {
                assert!(message.contains("`other`"), "{message}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_name_no_manifest_could_declare_is_invalid() {
        for name in ["API_KEY", "1key", "", "api-key"] {
            assert!(
                matches!(lookup(&declared(), name.into()), Err(variables::Error::InvalidName(n)) if n == name),
                "{name:?}"
            );
        }
    }
}
