//! Which handler a method and path go to: OpenAI's paths under `/v1`, and
//! Azure OpenAI's under `/openai`, where the deployment names the model.

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    ListModels,
    RetrieveModel(String),
    /// `deployment` is set on Azure's path and then names the model.
    ChatCompletions {
        deployment: Option<String>,
    },
}

impl Route {
    /// Azure OpenAI's paths, which require an `api-version` query parameter.
    pub fn is_azure(path: &str) -> bool {
        path.starts_with("/openai/")
    }
}

pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let (route, allowed) = match path {
        "/healthz" => (Route::Health, "GET"),
        "/v1/models" | "/openai/models" => (Route::ListModels, "GET"),
        "/v1/chat/completions" => (Route::ChatCompletions { deployment: None }, "POST"),
        _ => {
            if let Some(id) = path
                .strip_prefix("/v1/models/")
                .or_else(|| path.strip_prefix("/openai/models/"))
                .filter(|id| is_segment(id))
            {
                (Route::RetrieveModel(id.to_string()), "GET")
            } else if let Some(deployment) = path
                .strip_prefix("/openai/deployments/")
                .and_then(|rest| rest.strip_suffix("/chat/completions"))
                .filter(|deployment| is_segment(deployment))
            {
                let deployment = Some(deployment.to_string());
                (Route::ChatCompletions { deployment }, "POST")
            } else {
                return Err(ApiError::not_found(path));
            }
        }
    };
    if method == allowed {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(method, allowed))
    }
}

fn is_segment(text: &str) -> bool {
    !text.is_empty() && !text.contains('/')
}

/// Azure OpenAI refuses a call without `api-version`; so do we, rather than
/// guess which API contract the client expects.
pub fn require_api_version(query: Option<&str>) -> Result<(), ApiError> {
    let present = query
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .any(|(name, value)| name == "api-version" && !value.is_empty());
    if present {
        Ok(())
    } else {
        Err(ApiError::invalid(
            "api-version",
            "missing_required_parameter",
            "Missing required query parameter 'api-version', e.g. ?api-version=2024-10-21.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_routes() {
        assert_eq!(route("GET", "/healthz").unwrap(), Route::Health);
        assert_eq!(route("GET", "/v1/models").unwrap(), Route::ListModels);
        assert_eq!(
            route("GET", "/v1/models/chatgate-rag").unwrap(),
            Route::RetrieveModel("chatgate-rag".into())
        );
        assert_eq!(
            route("POST", "/v1/chat/completions").unwrap(),
            Route::ChatCompletions { deployment: None }
        );
    }

    #[test]
    fn azure_routes_name_the_deployment() {
        assert_eq!(
            route("POST", "/openai/deployments/gpt-4o/chat/completions").unwrap(),
            Route::ChatCompletions {
                deployment: Some("gpt-4o".into())
            }
        );
        assert_eq!(route("GET", "/openai/models").unwrap(), Route::ListModels);
        assert_eq!(
            route("GET", "/openai/models/gpt-4o").unwrap(),
            Route::RetrieveModel("gpt-4o".into())
        );
        for path in [
            "/openai/deployments//chat/completions",
            "/openai/deployments/a/b/chat/completions",
            "/openai/deployments/gpt-4o/completions",
        ] {
            assert_eq!(route("POST", path).unwrap_err().status, 404, "{path}");
        }
        assert!(Route::is_azure("/openai/models"));
        assert!(!Route::is_azure("/v1/models"));
    }

    #[test]
    fn azure_calls_need_an_api_version() {
        require_api_version(Some("api-version=2024-10-21")).unwrap();
        require_api_version(Some("x=1&api-version=2025-01-01-preview")).unwrap();
        for query in [None, Some(""), Some("api-version="), Some("apiversion=1")] {
            let error = require_api_version(query).unwrap_err();
            assert_eq!(error.param.as_deref(), Some("api-version"), "{query:?}");
        }
    }

    #[test]
    fn wrong_method_is_405() {
        for (method, path) in [
            ("GET", "/v1/chat/completions"),
            ("POST", "/v1/models"),
            ("DELETE", "/healthz"),
        ] {
            assert_eq!(
                route(method, path).unwrap_err().status,
                405,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn unknown_path_is_404() {
        for path in [
            "/",
            "/v1/chat",
            "/v1/chat/completions/",
            "/v1/models/",
            "/v1/models/a/b",
            "/healthz/x",
        ] {
            let error = route("GET", path).unwrap_err();
            assert_eq!((error.status, error.code), (404, "not_found"), "{path}");
        }
    }
}
