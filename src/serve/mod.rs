//! `ferry serve`: the guide's HTTP API on the engine and the store of one work directory.
//!
//! Validate, stage (create-or-update), create (process), the transfer status, the three lists
//! of a supplier's import processes, `/healthz` and `/readyz`. Every handler translates: the
//! engine decides ([`crate::engine`], [`crate::engine::api`] for stage and create) and
//! [`crate::guide`] builds every guide body; the errors of HTTP itself (404 for an unknown path,
//! 405, 413, 415, 400 for a create request without its fields, 500, 503) are built once, in
//! `errors.rs`.
//!
//! Stage and create go to one writer thread (`writer.rs`) that owns the store and batches them.
//! At most `--create-limit` creates (40, the platform's) are in flight: the next one gets the
//! guide's 429 at once, with `Retry-After: 1`, never a queue; an account in flight shows
//! `IN_PROGRESS` in the status. Reads use a second connection to the store.
//!
//! The server holds the work directory's lock while it runs, like every writer: a CLI writer
//! started meanwhile is refused, and `ferry serve` started while one runs exits 2 naming it.
//! SIGINT or SIGTERM: `/readyz` answers 503, no new connections are taken, requests in flight
//! finish (at most `--drain-timeout`), the writer finishes its batch, then the lock is released.

mod errors;
mod readers;
mod validators;
mod writer;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::engine::tokens::Role;
use crate::error::{Error, ExitStatus};
use crate::settings::Settings;
use crate::store::{ProcessFilter, Store};
use crate::workdir::Workdir;

/// How the server listens and drains.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// The largest request body; larger is 413.
    pub max_body: usize,
    /// How long requests in flight may take to finish after SIGINT/SIGTERM.
    pub drain_timeout: Duration,
    /// Creates in flight at most (1 to 40).
    pub create_limit: usize,
    /// How the request log on stderr is written.
    pub log_format: crate::cli::LogFormat,
}

/// What every handler shares.
struct App {
    /// The readers' connections (the writer thread has its own).
    readers: readers::Readers,
    /// To the writer thread.
    work: Mutex<std::sync::mpsc::Sender<writer::Work>>,
    /// To the validation threads.
    validators: validators::Validators,
    /// One permit per create in flight.
    creates: Arc<tokio::sync::Semaphore>,
    create_limit: usize,
    /// False once a shutdown signal came: `/readyz` answers 503.
    ready: AtomicBool,
    /// The keys seen lately, so that most requests are authenticated without the store.
    keyring: Mutex<crate::engine::tokens::Keyring>,
    log_format: crate::cli::LogFormat,
    /// The largest request body.
    max_body: usize,
    /// What `GET /metrics` renders.
    metrics: metrics_exporter_prometheus::PrometheusHandle,
}

type Shared = Arc<App>;

/// Runs the server until SIGINT or SIGTERM.
pub fn serve(settings: Settings, wd: &Workdir, options: &Options) -> Result<ExitStatus, Error> {
    if !(1..=crate::settings::CREATE_LIMIT).contains(&options.create_limit) {
        return Err(Error::usage(
            format!("--create-limit must be 1 to {}", crate::settings::CREATE_LIMIT),
            Some("the platform allows 40 creations in flight"),
        ));
    }
    let mut lock = wd.lock("serve")?;
    lock.describe(None)?;
    let mut store = crate::store::open(wd)?;
    // Creations a kill interrupted are recorded first, as every writer does.
    crate::engine::runs::recover_interrupted(store.as_mut(), wd, &settings.schema, "")?;
    store.ensure_record_tables(&settings.schema)?;
    let reader = crate::store::open(wd)?;
    if reader.tokens()?.iter().all(|t| t.revoked_at.is_some()) {
        eprintln!(
            "no API tokens: every request but /healthz gets 401; add one with `ferry token add NAME --role importer`"
        );
    }
    let settings = Arc::new(crate::settings::LiveSettings::new(settings));
    let (to_writer, work) = std::sync::mpsc::channel();
    let writer = {
        let (settings, wd) = (settings.clone(), wd.clone());
        std::thread::spawn(move || writer::run(&settings, &wd, store, lock, &work))
    };
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let metrics = recorder.handle();
    // One server per process: the recorder is this process's.
    let _ = metrics::set_global_recorder(recorder);
    metrics::describe_counter!("ferry_http_requests_total", "HTTP requests answered, by route and status");
    metrics::describe_histogram!("ferry_http_request_seconds", "Time to answer a request, by route");
    metrics::describe_gauge!("ferry_creates_in_flight", "Create requests holding one of the --create-limit permits");
    metrics::describe_counter!("ferry_creates_refused_total", "Create requests answered 429 at the limit");
    let app = Arc::new(App {
        metrics,
        keyring: Mutex::default(),
        validators: validators::Validators::start(settings),
        readers: readers::Readers::new(wd, reader),
        work: Mutex::new(to_writer),
        creates: Arc::new(tokio::sync::Semaphore::new(options.create_limit)),
        create_limit: options.create_limit,
        log_format: options.log_format,
        max_body: options.max_body,
        ready: AtomicBool::new(true),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::usage(format!("cannot start the server's runtime: {e}"), None))?;
    let served = runtime.block_on(run(app, options));
    // Every handler is gone with the runtime, and with them the writer's senders: it finishes
    // its batch, and its store is checkpointed and sealed before its lock is released.
    drop(runtime);
    let (store, lock) = writer.join().map_err(|_| Error::usage("the server's writer failed", None))?;
    drop(store);
    drop(lock);
    served?;
    Ok(ExitStatus::Clean)
}

async fn run(app: Shared, options: &Options) -> Result<(), Error> {
    let app_for_router = app.clone();
    let listener = tokio::net::TcpListener::bind(options.listen).await.map_err(|e| {
        Error::usage(format!("cannot listen on {}: {e}", options.listen), Some("pick another --listen address"))
    })?;
    let address = listener.local_addr()?;
    eprintln!("listening on http://{address}");
    let router = router(app_for_router, options.max_body);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let signalled = {
        let app = app.clone();
        async move {
            shutdown_signal().await;
            app.ready.store(false, Ordering::SeqCst);
            eprintln!("shutting down: finishing the requests in flight");
            let _ = stop.send(());
        }
    };
    let server = axum::serve(listener, router).with_graceful_shutdown(signalled);
    let drain = options.drain_timeout;
    tokio::select! {
        served = server => served.map_err(Error::from)?,
        () = async { let _ = stopped.await; tokio::time::sleep(drain).await } => {
            eprintln!("requests still in flight after {} s: stopping them", drain.as_secs());
        }
    }
    eprintln!("stopped");
    Ok(())
}

/// SIGINT (Ctrl-C) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// The platform's paths, trailing slash included.
fn router(app: Shared, max_body: usize) -> Router {
    let viewer = Router::new()
        .route("/v1/data-import/validate-account/", post(validate))
        .route("/v1/data-import/account-transfer-status/{supplier}/{account}/", get(status))
        .route("/v1/data-import/all-account-import-processes/{supplier}/", get(list_all))
        .route("/v1/data-import/pending-account-import-processes/{supplier}/", get(list_pending))
        .route("/v1/data-import/imported-account-import-processes/{supplier}/", get(list_imported))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render_metrics))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), |s, r, n| require(s, Role::Viewer, r, n)));
    let importer = Router::new()
        .route("/v1/data-import/account-import-process/create-or-update/", post(stage))
        .route("/v1/data-import/account-import-process/process/", post(create))
        .route_layer(axum::middleware::from_fn_with_state(app.clone(), |s, r, n| require(s, Role::Importer, r, n)));
    Router::new()
        .merge(viewer)
        .merge(importer)
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        // The body is read (up to the limit) so that the connection stays open for the next
        // request instead of being closed with the body unread.
        .fallback(|_: Result<Bytes, BytesRejection>| async { errors::not_found() })
        .method_not_allowed_fallback(|_: Result<Bytes, BytesRejection>| async { errors::method_not_allowed() })
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(move |request: Request, next: Next| refuse_large(max_body, request, next)))
        .layer(axum::middleware::from_fn_with_state(app.clone(), log))
        .with_state(app)
}

/// 401 without a live token's key in `Authorization: Token <key>`, 403 when its role is below
/// `needed`.
async fn require(State(app): State<Shared>, needed: Role, mut request: Request, next: Next) -> Response {
    let header = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let presented = header.is_some();
    let recalled = app.keyring.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recall(header.as_deref());
    let who = match recalled {
        Some(who) => who,
        None => {
            let app_for_store = app.clone();
            let learned = with_store(&app, move |store| {
                let mut keyring = app_for_store.keyring.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                keyring.learn(store, header.as_deref())
            })
            .await;
            match learned {
                Ok(who) => who,
                Err(refused) => return refused,
            }
        }
    };
    let Some((name, role)) = who else {
        drain(&app, request).await;
        return errors::unauthenticated(presented);
    };
    let mut response = if role < needed {
        drain(&app, request).await;
        errors::forbidden()
    } else {
        request.extensions_mut().insert(Caller(name.clone()));
        next.run(request).await
    };
    // For the request log, which runs outside this layer.
    response.extensions_mut().insert(Caller(name));
    response
}

/// Reads a refused request's body (up to the limit) before the answer, so that the client's
/// connection stays open for its next request instead of being closed with the body unread.
async fn drain(app: &Shared, request: Request) {
    let _ = axum::body::to_bytes(request.into_body(), app.max_body).await;
}

/// 413 at once for a body whose declared length is past the limit, before any of it is read
/// (a chunked body is cut at the limit as it is read: `DefaultBodyLimit`).
async fn refuse_large(max_body: usize, request: Request, next: Next) -> Response {
    let declared =
        request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_body as u64) {
        return errors::too_large();
    }
    next.run(request).await
}

/// The request's id: the caller's `x-request-id` when it is a plain token (letters, digits, `-`,
/// `_`, `.`, at most 64), else 16 random hex digits. Every response carries it back.
fn request_id(request: &Request) -> String {
    let given = request.headers().get("x-request-id").and_then(|v| v.to_str().ok());
    match given {
        Some(id)
            if (1..=64).contains(&id.len())
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')) =>
        {
            id.to_owned()
        }
        _ => format!("{:016x}", rand::random::<u64>()),
    }
}

/// The id of a request: the handlers tag its audit rows with it.
#[derive(Clone)]
struct RequestId(String);

/// The name of the token a request was authenticated with.
#[derive(Clone)]
struct Caller(String);

/// One line per request on stderr: request id, method, path, status, milliseconds and the
/// token's name, as text or as one JSON object. Never a header (the key) or a body (personal
/// data).
async fn log(State(app): State<Shared>, mut request: Request, next: Next) -> Response {
    let id = request_id(&request);
    request.extensions_mut().insert(RequestId(id.clone()));
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    // The route (`/v1/.../{supplier}/`), not the path: account numbers are no metric labels.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let started = Instant::now();
    // A panic anywhere below is this request's JSON 500; the server goes on serving.
    let mut response =
        match futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(next.run(request))).await {
            Ok(response) => response,
            Err(_) => errors::internal("the request's handler failed"),
        };
    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    metrics::counter!("ferry_http_requests_total", "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!("ferry_http_request_seconds", "route" => route.clone()).record(elapsed);
    let token = response.extensions().get::<Caller>().map(|c| c.0.as_str());
    let line = match app.log_format {
        crate::cli::LogFormat::Text => format!(
            "{id} {method} {} {status} {:.1} ms{}",
            crate::text::escape(&path),
            elapsed * 1e3,
            token.map(|t| format!(" token={t}")).unwrap_or_default()
        ),
        crate::cli::LogFormat::Json => serde_json::json!({
            "time": crate::clock::now(),
            "request_id": id,
            "method": method.as_str(),
            "path": path,
            "route": route,
            "status": status,
            "ms": (elapsed * 1e4).round() / 10.0,
            "token": token,
        })
        .to_string(),
    };
    eprintln!("{line}");
    if let Ok(value) = axum::http::HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

/// A handler's request id and caller, for the audit rows it leads to.
struct Tagged(crate::store::RequestTag);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Tagged {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, Response> {
        let id = parts.extensions.get::<RequestId>().map(|r| r.0.clone());
        let token = parts.extensions.get::<Caller>().map(|c| c.0.clone());
        match (id, token) {
            (Some(id), Some(token)) => Ok(Tagged(crate::store::RequestTag { id, token })),
            _ => Err(errors::internal("the request was not authenticated")),
        }
    }
}

/// A JSON body with its status; a 429 (the limit in flight, in this server or on the shared
/// store) says when to retry.
fn json(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS {
        response.headers_mut().insert(header::RETRY_AFTER, axum::http::HeaderValue::from_static("1"));
    }
    response
}

/// Runs a store call on the blocking pool; a panic in it is a JSON 500, and the server goes on.
async fn with_store<T: Send + 'static>(
    app: &Shared,
    call: impl FnOnce(&dyn Store) -> Result<T, Error> + Send + 'static,
) -> Result<T, Response> {
    let app = app.clone();
    let joined = tokio::task::spawn_blocking(move || {
        let lease = app.readers.lend()?;
        call(lease.store())
    })
    .await;
    match joined {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(errors::internal(&e.to_string())),
        Err(_) => Err(errors::internal("the request's handler failed")),
    }
}

async fn validate(State(app): State<Shared>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match errors::json_body(&headers, body) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    crate::workdir::failpoint("serve-validate");
    match app.validators.validate(body).await {
        Some(result) => json(result.status, result.body),
        None => errors::internal("the request's validation failed"),
    }
}

/// Sends `work` to the writer and waits for its answer.
async fn to_writer(app: &Shared, work: impl FnOnce(writer::Reply) -> writer::Work) -> Response {
    let (reply, answer) = tokio::sync::oneshot::channel();
    let sent = app.work.lock().unwrap_or_else(std::sync::PoisonError::into_inner).send(work(reply));
    if sent.is_err() {
        return errors::draining();
    }
    match answer.await {
        Ok(Ok(answer)) => json(answer.status, answer.body),
        Ok(Err(why)) => errors::internal(&why),
        Err(_) => errors::internal("the server's writer stopped"),
    }
}

/// Create-or-update: stage one account (201 first time, 200 update, 400 as the guide says).
async fn stage(
    State(app): State<Shared>,
    Tagged(request): Tagged,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match errors::json_body(&headers, body) {
        Ok(body) => to_writer(&app, |reply| writer::Work::Stage { body, request, reply }).await,
        Err(refused) => refused,
    }
}

/// The process (create) request's body.
#[derive(serde::Deserialize)]
struct CreateRequest {
    external_account_number: String,
    import_supplier_code: String,
    operations_team_name: String,
    #[serde(default)]
    dry_run: bool,
}

/// Process: create one account from its staged data; 429 at once past the limit in flight.
async fn create(
    State(app): State<Shared>,
    Tagged(tag): Tagged,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match errors::json_body(&headers, body) {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    let request: CreateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return errors::bad_request(&format!(
                "the create request must be a JSON object with external_account_number, import_supplier_code, operations_team_name and optionally dry_run: {e}"
            ));
        }
    };
    // The permit lives until the answer is back, whatever happens to the request meanwhile.
    let Ok(_permit) = app.creates.clone().try_acquire_owned() else {
        metrics::counter!("ferry_creates_refused_total").increment(1);
        let in_flight = match app.create_limit {
            1 => "1 account creation is in flight.".to_owned(),
            n => format!("{n} account creations are in flight."),
        };
        let body = crate::guide::concurrency_limit(&in_flight);
        return json(crate::guide::Code::ConcurrencyLimitExceeded.status().code(), body);
    };
    let in_flight = || (app.create_limit - app.creates.available_permits()) as f64;
    metrics::gauge!("ferry_creates_in_flight").set(in_flight());
    let CreateRequest { external_account_number, import_supplier_code, operations_team_name, dry_run } = request;
    let answer = to_writer(&app, |reply| writer::Work::Create {
        supplier: import_supplier_code,
        team: operations_team_name,
        dry_run,
        account: external_account_number,
        request: tag,
        reply,
    })
    .await;
    metrics::gauge!("ferry_creates_in_flight").set(in_flight() - 1.0);
    answer
}

/// Prometheus text: requests by route and status, their times, creates in flight and refused.
async fn render_metrics(State(app): State<Shared>) -> Response {
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/plain; version=0.0.4")], app.metrics.render()).into_response()
}

async fn status(State(app): State<Shared>, Path((supplier, account)): Path<(String, String)>) -> Response {
    let answer = with_store(&app, move |store| crate::engine::status::status(store, &supplier, &account)).await;
    match answer {
        Ok((status, body, _)) => json(status.code(), body),
        Err(refused) => refused,
    }
}

/// A list as a JSON array, streamed a page at a time ([`crate::engine::status::PAGE`]
/// processes), so that a supplier with a million accounts is never in memory at once. The
/// store's reader is taken per page, so other requests interleave. The first page is read
/// before the answer starts (a failure is a 500); a failure after that ends the body early,
/// which a client sees as an array that does not close.
async fn list(app: Shared, supplier: String, which: ProcessFilter) -> Response {
    let (first, mut after, mut more) = match page_json(&app, supplier.clone(), which, None).await {
        Ok(page) => page,
        Err(refused) => return refused,
    };
    let (to_body, body) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let _ = to_body.send(Ok(Bytes::from(format!("[{first}")))).await;
    tokio::spawn(async move {
        while more {
            match page_json(&app, supplier.clone(), which, after.clone()).await {
                Ok((text, last, full)) => {
                    if !text.is_empty() && to_body.send(Ok(Bytes::from(format!(",{text}")))).await.is_err() {
                        return;
                    }
                    (after, more) = (last, full);
                }
                Err(_) => {
                    eprintln!("a list of {} stopped early: its store read failed", crate::text::escape(&supplier));
                    let _ = to_body.send(Err(std::io::Error::other("the list's store read failed"))).await;
                    return;
                }
            }
        }
        let _ = to_body.send(Ok(Bytes::from_static(b"]"))).await;
    });
    let stream = futures_util::stream::unfold(body, |mut body| async { body.recv().await.map(|chunk| (chunk, body)) });
    let mut response = axum::body::Body::from_stream(stream).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, axum::http::HeaderValue::from_static("application/json"));
    response
}

/// One page of a list as JSON entries joined by commas; the last key; whether it was full.
async fn page_json(
    app: &Shared,
    supplier: String,
    which: ProcessFilter,
    after: Option<String>,
) -> Result<(String, Option<String>, bool), Response> {
    with_store(app, move |store| {
        let page = crate::engine::status::list_page(store, &supplier, which, after.as_deref())?;
        let last = page.last().map(|p| p.external_account_number.clone());
        let text: Vec<String> = page.iter().map(crate::guide::list_entry).collect();
        Ok((text.join(","), last, page.len() == crate::engine::status::PAGE))
    })
    .await
}

async fn list_all(State(app): State<Shared>, Path(supplier): Path<String>) -> Response {
    list(app, supplier, ProcessFilter::All).await
}

async fn list_pending(State(app): State<Shared>, Path(supplier): Path<String>) -> Response {
    list(app, supplier, ProcessFilter::Pending).await
}

async fn list_imported(State(app): State<Shared>, Path(supplier): Path<String>) -> Response {
    list(app, supplier, ProcessFilter::Imported).await
}

/// The OpenAPI 3.1 document of these endpoints (`docs/openapi.json`); no token needed: it
/// holds no data.
async fn openapi() -> Response {
    json(200, OPENAPI.to_owned())
}

const OPENAPI: &str = include_str!("../../docs/openapi.json");

async fn healthz() -> Response {
    json(200, serde_json::json!({ "status": "ok" }).to_string())
}

async fn readyz(State(app): State<Shared>) -> Response {
    if app.ready.load(Ordering::SeqCst) {
        json(200, serde_json::json!({ "status": "ready" }).to_string())
    } else {
        errors::draining()
    }
}
