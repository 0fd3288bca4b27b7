//! An exporter: collectors asked at each scrape of `/metrics`, served with
//! the web configuration and the fairness of [`crate::serve`].

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use perfkit_exposition::{CONTENT_TYPE, Collector, Writer};

use crate::{ServerOptions, Shared, WebConfig};

/// A Prometheus exporter: `/metrics` from the collectors added, each
/// scrape's collection shared by the scrapes that arrive while it runs
/// (and reused for [`Exporter::metrics_cache`]), beside any other routes.
///
/// As node_exporter does, each scrape also reports how long each
/// collector took and whether it succeeded
/// (`NAMESPACE_scrape_collector_duration_seconds`,
/// `NAMESPACE_scrape_collector_success`): a failing collector shows in the
/// data (its families left out) instead of failing the scrape.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use perfkit_exporter::{Collector, Exporter, Writer, exposition};
/// struct Queue;
/// impl Collector for Queue {
///     fn name(&self) -> &str { "queue" }
///     fn collect(&self, out: &mut Writer) -> Result<(), exposition::Error> {
///         out.gauge("team_queue_depth", "Jobs waiting.").sample(&[], 3u64);
///         Ok(())
///     }
/// }
/// let exporter = Exporter::new("team").collector(Queue);
/// exporter.serve(perfkit_exporter::bind("127.0.0.1:9500".parse()?)?).await?;
/// # Ok(()) }
/// ```
pub struct Exporter {
    inner: Arc<Metrics>,
    metrics_cache: Duration,
    routes: axum::Router,
    web: Option<WebConfig>,
    options: ServerOptions,
}

/// What a scrape collects.
struct Metrics {
    namespace: String,
    collectors: Vec<Box<dyn Collector>>,
    build_version: Option<String>,
}

impl Exporter {
    /// An exporter with no collectors; its own metrics are named
    /// `NAMESPACE_...` (`perfkit`: `perfkit_scrape_collector_success`).
    pub fn new(namespace: &str) -> Self {
        Self {
            inner: Arc::new(Metrics { namespace: namespace.to_owned(), collectors: Vec::new(), build_version: None }),
            metrics_cache: Duration::from_secs(1),
            routes: axum::Router::new(),
            web: None,
            options: ServerOptions::default(),
        }
    }

    fn metrics_mut(&mut self) -> &mut Metrics {
        Arc::get_mut(&mut self.inner).expect("an exporter being built is not shared")
    }

    /// Adds a collector, asked at each scrape after those added before.
    pub fn collector(mut self, collector: impl Collector + 'static) -> Self {
        self.metrics_mut().collectors.push(Box::new(collector));
        self
    }

    /// Exports `NAMESPACE_build_info{version="VERSION"} 1`.
    pub fn build_info(mut self, version: &str) -> Self {
        self.metrics_mut().build_version = Some(version.to_owned());
        self
    }

    /// How long one collection is reused for other scrapes (1 s by
    /// default; zero: only by the scrapes that arrive while it runs).
    pub fn metrics_cache(mut self, max_age: Duration) -> Self {
        self.metrics_cache = max_age;
        self
    }

    /// Serves these routes too (beside `/metrics`), behind the same
    /// access control.
    pub fn routes(mut self, routes: axum::Router) -> Self {
        self.routes = std::mem::take(&mut self.routes).merge(routes);
        self
    }

    /// TLS and basic authentication, on every route.
    pub fn web_config(mut self, web: Option<WebConfig>) -> Self {
        self.web = web;
        self
    }

    /// Connection limits.
    pub fn server_options(mut self, options: ServerOptions) -> Self {
        self.options = options;
        self
    }

    /// One collection, now, in the text format (blocking: call it off an
    /// async runtime's threads, or in a tool that only prints).
    pub fn scrape(&self) -> String {
        self.inner.collect()
    }

    /// The routes: `/metrics` and those added with [`Exporter::routes`].
    pub fn router(&self) -> axum::Router {
        let metrics = self.inner.clone();
        let shared = Arc::new(Shared::new(self.metrics_cache));
        let handler = move || {
            let (metrics, shared) = (metrics.clone(), shared.clone());
            async move { scrape(metrics, &shared).await }
        };
        self.routes.clone().route("/metrics", axum::routing::get(handler))
    }

    /// Serves the routes on `listener` until the returned future is
    /// dropped (see [`crate::serve`]).
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        let app = self.router();
        crate::serve(listener, app, self.web.as_ref(), self.options).await
    }
}

/// `/metrics`: the shared collection, or a 500 if the collection could
/// not run at all.
async fn scrape(metrics: Arc<Metrics>, shared: &Shared) -> Response {
    let collected = shared
        .get(|| async move {
            tokio::task::spawn_blocking(move || metrics.collect())
                .await
                .map(crate::Bytes::from)
                .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, format!("collection failed: {e}\n")).into_response())
        })
        .await;
    match collected {
        Ok(body) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], body).into_response(),
        Err(response) => response,
    }
}

impl Metrics {
    fn collect(&self) -> String {
        let mut out = Writer::new();
        let mut scrape = Vec::with_capacity(self.collectors.len());
        for c in &self.collectors {
            let started = Instant::now();
            let mut mine = Writer::new();
            let ok = match c.collect(&mut mine) {
                Ok(()) => {
                    out.merge(mine);
                    true
                }
                Err(e) => {
                    tracing::warn!(collector = c.name(), %e, "collection failed");
                    false
                }
            };
            scrape.push((c.name(), started.elapsed(), ok));
        }
        let ns = &self.namespace;
        if let Some(version) = &self.build_version {
            out.gauge(&format!("{ns}_build_info"), &format!("{ns}'s version (always 1)."))
                .sample(&[("version", version)], 1u64);
        }
        let mut f = out.gauge(&format!("{ns}_scrape_collector_duration_seconds"), "How long each collector took.");
        for (c, d, _) in &scrape {
            f.sample(&[("collector", c)], d.as_secs_f64());
        }
        let mut f = out.gauge(&format!("{ns}_scrape_collector_success"), "Whether each collector succeeded.");
        for (c, _, ok) in &scrape {
            f.sample(&[("collector", c)], u64::from(*ok));
        }
        out.finish()
    }
}

/// A route for `/` that links to `links` (paths on this server), for a
/// person who opens the exporter in a browser.
pub fn landing_page(links: &[&str]) -> axum::Router {
    let html = landing_html(links);
    axum::Router::new().route("/", axum::routing::get(move || async move { axum::response::Html(html) }))
}

/// The page of [`landing_page`]: one link a line, each path shown as its
/// text (escaped for HTML).
fn landing_html(links: &[&str]) -> String {
    let escape = |s: &str| s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;");
    let links: Vec<String> = links.iter().map(|l| format!("<a href=\"{0}\">{0}</a>", escape(l))).collect();
    format!("<html><body>{}</body></html>", links.join("<br>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use perfkit_exposition::Error;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn the_landing_page_links_its_paths() {
        assert_eq!(
            landing_html(&["/metrics", "/debug/pprof/"]),
            "<html><body><a href=\"/metrics\">/metrics</a><br><a href=\"/debug/pprof/\">/debug/pprof/</a></body></html>"
        );
        assert_eq!(
            landing_html(&["/a?x=1&y=\"<"]),
            "<html><body><a href=\"/a?x=1&amp;y=&quot;&lt;\">/a?x=1&amp;y=&quot;&lt;</a></body></html>"
        );
        assert_eq!(landing_html(&[]), "<html><body></body></html>");
    }

    /// Counts its collections.
    struct Counting(AtomicU64);

    impl Collector for Counting {
        fn name(&self) -> &str {
            "counting"
        }
        fn collect(&self, out: &mut Writer) -> Result<(), Error> {
            let n = self.0.fetch_add(1, Ordering::SeqCst) + 1;
            out.counter("team_collections_total", "Collections.").sample(&[], n);
            out.gauge("team_shared", "A family two collectors write.").sample(&[("by", "counting")], 1u64);
            Ok(())
        }
    }

    /// Writes a family, then fails.
    struct Failing;

    impl Collector for Failing {
        fn name(&self) -> &str {
            "failing"
        }
        fn collect(&self, out: &mut Writer) -> Result<(), Error> {
            out.gauge("team_partial", "Never exported.").sample(&[], 1u64);
            Err("the source is gone".into())
        }
    }

    /// Writes into the family of another collector.
    struct Second;

    impl Collector for Second {
        fn name(&self) -> &str {
            "second"
        }
        fn collect(&self, out: &mut Writer) -> Result<(), Error> {
            out.gauge("team_shared", "A family two collectors write.").sample(&[("by", "second")], 2u64);
            Ok(())
        }
    }

    #[test]
    fn a_failing_collector_shows_in_the_data_and_families_are_written_once() {
        let e = Exporter::new("team").collector(Counting(AtomicU64::new(0))).collector(Failing).collector(Second);
        let text = e.build_info("1.2.3").scrape();
        assert!(text.contains("team_collections_total 1\n"), "{text}");
        assert!(!text.contains("team_partial"), "a failed collection is left out: {text}");
        assert!(
            text.contains("# TYPE team_shared gauge\nteam_shared{by=\"counting\"} 1\nteam_shared{by=\"second\"} 2\n")
        );
        assert_eq!(text.matches("# TYPE team_shared").count(), 1);
        assert!(text.contains("team_build_info{version=\"1.2.3\"} 1\n"));
        assert!(text.contains("team_scrape_collector_success{collector=\"counting\"} 1\n"));
        assert!(text.contains("team_scrape_collector_success{collector=\"failing\"} 0\n"));
        assert!(text.contains("team_scrape_collector_success{collector=\"second\"} 1\n"));
        assert_eq!(text.matches("team_scrape_collector_duration_seconds{").count(), 3);
    }

    async fn get(port: u16, path: &str) -> String {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn serves_metrics_with_other_routes_and_reuses_a_collection() {
        let exporter = Exporter::new("team")
            .collector(Counting(AtomicU64::new(0)))
            .metrics_cache(Duration::from_secs(60))
            .routes(axum::Router::new().route("/hello", axum::routing::get(|| async { "hi\n" })));
        let listener = crate::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(exporter.serve(listener));
        let first = get(port, "/metrics").await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
        assert!(first.contains(&format!("content-type: {CONTENT_TYPE}")), "{first}");
        assert!(first.contains("\r\n\r\n# HELP team_collections_total Collections.\n"), "{first}");
        assert!(first.contains("team_collections_total 1\n"), "{first}");
        // Within the cache's age: the same collection.
        assert!(get(port, "/metrics").await.contains("team_collections_total 1\n"));
        assert!(get(port, "/hello").await.ends_with("\r\n\r\nhi\n"));
        assert!(get(port, "/nothing").await.starts_with("HTTP/1.1 404"));
        server.abort();
    }
}
