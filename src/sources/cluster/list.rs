//! One kind, all objects: a list call paged with `limit`/`continue` until the server has no more.

use super::client::ClusterClient;
use super::error::ClusterError;
use kube::api::ListParams;
use kube::core::ObjectList;
use serde::de::DeserializeOwned;

/// Objects per page, as kubectl's `--chunk-size` default.
pub const PAGE_SIZE: u32 = 500;

/// A bound on pages so a server that keeps handing out `continue` tokens cannot loop us forever
/// (at 500 a page this is five million objects).
const MAX_PAGES: usize = 10_000;
/// Tries of one page when the server answers 429 or a 5xx (busy, restarting), and the wait
/// before the second; it doubles after each.
const PAGE_TRIES: u32 = 4;
const FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_millis(250);

/// One page, asked again (with back-off) while the server says it is busy or failing.
async fn page_with_retries<T>(
    client: &ClusterClient,
    what: &str,
    request: http::Request<Vec<u8>>,
) -> Result<ObjectList<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    let mut wait = FIRST_BACKOFF;
    let mut attempt = 1;
    loop {
        let again = clone_request(&request);
        match client
            .call(what, client.kube().request::<ObjectList<T>>(again))
            .await
        {
            Err(error) if attempt < PAGE_TRIES && error.is_transient() => {
                tracing::debug!(%what, attempt, "the API server is busy ({error}); asking again in {wait:?}");
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

fn clone_request(request: &http::Request<Vec<u8>>) -> http::Request<Vec<u8>> {
    let mut copy = http::Request::new(request.body().clone());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// Where a list call points: `/api/v1/namespaces/inference/pods`, `/apis/apps/v1/deployments`.
pub fn collection_path(
    group: &str,
    version: &str,
    namespace: Option<&str>,
    plural: &str,
) -> String {
    let prefix = if group.is_empty() {
        format!("/api/{version}")
    } else {
        format!("/apis/{group}/{version}")
    };
    match namespace {
        Some(namespace) => format!("{prefix}/namespaces/{namespace}/{plural}"),
        None => format!("{prefix}/{plural}"),
    }
}

/// Every object at `path`, one request per page of [`PAGE_SIZE`]. `what` names it in errors.
pub async fn list_all<T>(
    client: &ClusterClient,
    path: &str,
    what: &str,
) -> Result<Vec<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    list_slimmed(client, path, what, |_: &mut T| {}).await
}

/// [`list_all`], each object passed through `slim` as its page is decoded, before the next page
/// is asked for.
pub async fn list_slimmed<T>(
    client: &ClusterClient,
    path: &str,
    what: &str,
    slim: impl Fn(&mut T),
) -> Result<Vec<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    list_selected(client, path, what, None, slim).await
}

/// [`list_slimmed`] of the objects whose labels match `selector` (`app=ztunnel`), when given.
pub async fn list_selected<T>(
    client: &ClusterClient,
    path: &str,
    what: &str,
    selector: Option<&str>,
    slim: impl Fn(&mut T),
) -> Result<Vec<T>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    list_mapped(client, path, what, selector, |mut item: T| {
        slim(&mut item);
        item
    })
    .await
}

/// [`list_all`] (of the objects `selector` matches, when given), each object turned into what is
/// kept of it (`map`) as its page is decoded, before the next page is asked for.
pub async fn list_mapped<T, U>(
    client: &ClusterClient,
    path: &str,
    what: &str,
    selector: Option<&str>,
    mut map: impl FnMut(T) -> U,
) -> Result<Vec<U>, ClusterError>
where
    T: DeserializeOwned + Clone,
{
    let mut items = Vec::new();
    let mut continue_token: Option<String> = None;
    let mut seen_tokens = std::collections::HashSet::new();
    for _ in 0..MAX_PAGES {
        let mut params = ListParams::default().limit(PAGE_SIZE);
        if let Some(selector) = selector {
            params = params.labels(selector);
        }
        if let Some(token) = &continue_token {
            params = params.continue_token(token);
        }
        let request = kube::core::Request::new(path)
            .list(&params)
            .map_err(|error| ClusterError::Other {
                what: what.to_string(),
                reason: error.to_string(),
            })?;
        let page: ObjectList<T> = page_with_retries(client, what, request).await?;
        items.extend(page.items.into_iter().map(&mut map));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => {
                if !seen_tokens.insert(token.clone()) {
                    return Err(ClusterError::Other {
                        what: what.to_string(),
                        reason: "the server handed back a continue token it had given before: its pages go round in a circle".to_string(),
                    });
                }
                continue_token = Some(token);
            }
            _ => {
                items.shrink_to_fit();
                return Ok(items);
            }
        }
    }
    Err(ClusterError::Other {
        what: what.to_string(),
        reason: format!("the server kept paging past {MAX_PAGES} pages of {PAGE_SIZE}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_follow_the_api_layout() {
        assert_eq!(
            collection_path("", "v1", Some("inference"), "pods"),
            "/api/v1/namespaces/inference/pods"
        );
        assert_eq!(collection_path("", "v1", None, "nodes"), "/api/v1/nodes");
        assert_eq!(
            collection_path("networking.istio.io", "v1", None, "virtualservices"),
            "/apis/networking.istio.io/v1/virtualservices"
        );
        assert_eq!(
            collection_path("apps", "v1", Some("ns"), "deployments"),
            "/apis/apps/v1/namespaces/ns/deployments"
        );
    }
}
