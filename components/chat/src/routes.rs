//! Which handler a method and path go to.

use crate::error::ApiError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Health,
    ListModels,
    RetrieveModel(String),
    ChatCompletions,
}

pub fn route(method: &str, path: &str) -> Result<Route, ApiError> {
    let (route, allowed) = match path {
        "/healthz" => (Route::Health, "GET"),
        "/v1/models" => (Route::ListModels, "GET"),
        "/v1/chat/completions" => (Route::ChatCompletions, "POST"),
        _ => match path.strip_prefix("/v1/models/") {
            Some(id) if !id.is_empty() && !id.contains('/') => {
                (Route::RetrieveModel(id.to_string()), "GET")
            }
            _ => return Err(ApiError::not_found(path)),
        },
    };
    if method == allowed {
        Ok(route)
    } else {
        Err(ApiError::method_not_allowed(method, allowed))
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
            Route::ChatCompletions
        );
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
