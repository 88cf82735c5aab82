//! Route tables that also feed the OpenAPI documents, so the two cannot drift: every route is
//! added through [`Routes`], which records its method and path, and a test checks that each
//! recorded route is in the utoipa-generated document served at `{base}/openapi.json`.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::handler::Handler;
use axum::routing::{delete, get, head, patch, post, put, MethodRouter};
use axum::Router;
use http::Method;

use crate::extract::BODY_LIMIT;
use crate::Portal;

/// A router under construction with its table of `(method, path)`.
pub struct Routes {
    router: Router<Portal>,
    table: Vec<(Method, &'static str)>,
    doc: utoipa::openapi::OpenApi,
}

impl std::fmt::Debug for Routes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Routes")
            .field("table", &self.table)
            .finish()
    }
}

impl Routes {
    /// An empty table documented by `doc`.
    pub(crate) fn new(doc: utoipa::openapi::OpenApi) -> Self {
        Routes {
            router: Router::new(),
            table: Vec::new(),
            doc,
        }
    }

    fn add(mut self, method: Method, path: &'static str, mr: MethodRouter<Portal>) -> Self {
        self.table.push((method, path));
        self.router = self.router.route(path, mr);
        self
    }

    pub(crate) fn get<H: Handler<T, Portal>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::GET, path, get(h))
    }

    pub(crate) fn post<H: Handler<T, Portal>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::POST, path, post(h))
    }

    pub(crate) fn head<H: Handler<T, Portal>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::HEAD, path, head(h))
    }

    pub(crate) fn put<H: Handler<T, Portal>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::PUT, path, put(h))
    }

    pub(crate) fn patch<H: Handler<T, Portal>, T: 'static>(self, path: &'static str, h: H) -> Self {
        self.add(Method::PATCH, path, patch(h))
    }

    pub(crate) fn delete<H: Handler<T, Portal>, T: 'static>(
        self,
        path: &'static str,
        h: H,
    ) -> Self {
        self.add(Method::DELETE, path, delete(h))
    }

    /// The recorded routes.
    pub fn table(&self) -> &[(Method, &'static str)] {
        &self.table
    }

    /// The OpenAPI document.
    pub fn doc(&self) -> &utoipa::openapi::OpenApi {
        &self.doc
    }
}

/// Nests `routes` under `base`, adds `{base}/openapi.json`, the body limit, the state and the
/// same-origin guard.
pub(crate) fn mount(base: &str, routes: Routes, portal: &Portal) -> Router {
    let mut doc = routes.doc;
    doc.servers = Some(vec![utoipa::openapi::Server::new(base)]);
    let doc = Arc::new(doc);
    let router = routes.router.route(
        "/openapi.json",
        get(move || {
            let doc = doc.clone();
            async move { axum::Json(doc.as_ref().clone()) }
        }),
    );
    let router = Router::new()
        .nest(base, router)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(portal.clone());
    portal.origin_guard().clone().apply(router)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(name: &str, routes: Routes) {
        let paths = &routes.doc.paths.paths;
        assert!(!routes.table.is_empty());
        for (method, path) in &routes.table {
            let item = paths
                .get(*path)
                .unwrap_or_else(|| panic!("{name}: {method} {path} is not documented"));
            let op = match *method {
                Method::GET => &item.get,
                Method::POST => &item.post,
                Method::PUT => &item.put,
                Method::DELETE => &item.delete,
                Method::PATCH => &item.patch,
                Method::HEAD => &item.head,
                _ => &None,
            };
            assert!(op.is_some(), "{name}: {method} {path} is not documented");
        }
        let documented: usize = paths
            .values()
            .map(|i| {
                [&i.get, &i.post, &i.put, &i.delete, &i.patch, &i.head]
                    .iter()
                    .filter(|o| o.is_some())
                    .count()
            })
            .sum();
        assert_eq!(
            documented,
            routes.table.len(),
            "{name}: the document lists operations that are not routed"
        );
    }

    #[test]
    fn documents_match_routes() {
        check("publisher", crate::publisher::routes());
        check("devportal", crate::devportal::routes());
        check("admin", crate::admin::routes());
        check("internal", crate::internal::routes());
    }
}
