//! Spin HTTP routes: an exact path (`/healthz`) or a prefix wildcard (`/v1/...`, `/...`).

/// A parsed `route` of an HTTP trigger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Exact(String),
    /// Matches the prefix itself and everything below it.
    Wildcard(String),
}

impl Route {
    pub fn parse(route: &str) -> Result<Self, String> {
        if !route.starts_with('/') {
            return Err(format!("route `{route}` must start with `/`"));
        }
        if let Some(prefix) = route.strip_suffix("/...") {
            if prefix.contains("...") {
                return Err(format!("route `{route}` may use `...` only at its end"));
            }
            return Ok(Route::Wildcard(prefix.to_string()));
        }
        if route.contains("...") || route.contains(':') {
            return Err(format!(
                "route `{route}`: only exact paths and trailing `/...` wildcards are supported"
            ));
        }
        Ok(Route::Exact(route.trim_end_matches('/').to_string()))
    }

    /// How specific a match is: longer wins, and an exact match beats a wildcard.
    fn specificity(&self) -> (usize, bool) {
        match self {
            Route::Exact(p) => (p.len(), true),
            Route::Wildcard(p) => (p.len(), false),
        }
    }

    pub fn matches(&self, path: &str) -> bool {
        let path = path.trim_end_matches('/');
        match self {
            Route::Exact(p) => path == p,
            Route::Wildcard(prefix) => {
                path == prefix
                    || path
                        .strip_prefix(prefix.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
                    || prefix.is_empty()
            }
        }
    }
}

/// Routes in the order they are tried: most specific first.
#[derive(Debug, Clone)]
pub struct Router<T> {
    routes: Vec<(Route, T)>,
}

impl<T> Router<T> {
    pub fn new(mut routes: Vec<(Route, T)>) -> Self {
        routes.sort_by_key(|(route, _)| std::cmp::Reverse(route.specificity()));
        Router { routes }
    }

    pub fn find(&self, path: &str) -> Option<&T> {
        self.routes
            .iter()
            .find(|(route, _)| route.matches(path))
            .map(|(_, target)| target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router<&'static str> {
        Router::new(vec![
            (Route::parse("/...").unwrap(), "catch-all"),
            (Route::parse("/v1/...").unwrap(), "api"),
            (Route::parse("/hello").unwrap(), "hello"),
        ])
    }

    #[test]
    fn most_specific_route_wins() {
        let r = router();
        assert_eq!(r.find("/hello"), Some(&"hello"));
        assert_eq!(r.find("/hello/"), Some(&"hello"));
        assert_eq!(r.find("/v1/chat/completions"), Some(&"api"));
        assert_eq!(r.find("/v1"), Some(&"api"));
        assert_eq!(r.find("/v10"), Some(&"catch-all"));
        assert_eq!(r.find("/"), Some(&"catch-all"));
    }

    #[test]
    fn no_catch_all_means_no_match() {
        let r = Router::new(vec![(Route::parse("/hello").unwrap(), 1)]);
        assert_eq!(r.find("/hello/x"), None);
    }

    #[test]
    fn rejects_unsupported_route_syntax() {
        assert!(Route::parse("hello").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/users/:id").is_err());
    }
}
