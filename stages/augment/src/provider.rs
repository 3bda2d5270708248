//! Requests to an OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, `kenning serve`)
//! with the stage's own timeout, retry, cooldown, concurrency cap and rate limits.
//!
//! This uses `reqwest` and plain JSON instead of `async-openai`: that crate retries on its own
//! (bypassing our limits and ignoring HTTP-date `Retry-After` and `retry-after-ms`), sets no
//! timeout, and rejects a whole response whose `finish_reason` it does not know.

use std::collections::BTreeMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::backend::{Backend, BackendError};
use crate::cooldown::Cooldown;
use crate::outcome::{self, Completion, Endpoint, Outcome};
use crate::retry::{self, Decision, Failure, RetryPolicy};

/// Default request timeout: long enough for a few thousand generated tokens.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default number of requests in flight.
pub const DEFAULT_CONCURRENCY: usize = 64;

/// An API key; its `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Settings of one provider.
#[derive(Clone, Debug)]
pub struct ProviderConfig {
    /// Base URL up to and including `/v1`, such as `https://api.openai.com/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<ApiKey>,
    /// Extra HTTP headers sent with every request. They may hold secrets, so they are never
    /// logged.
    pub headers: BTreeMap<String, String>,
    pub endpoint: Endpoint,
    pub timeout: Duration,
    pub concurrency: usize,
    pub requests_per_minute: Option<NonZeroU32>,
    pub tokens_per_minute: Option<NonZeroU32>,
    pub retry: RetryPolicy,
    /// Stores text cut off at `max_tokens` as a success instead of a failure.
    pub keep_truncated: bool,
}

impl ProviderConfig {
    pub fn new(base_url: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            base_url: base_url.into(),
            model: model.into(),
            api_key: None,
            headers: BTreeMap::new(),
            endpoint: Endpoint::Chat,
            timeout: DEFAULT_TIMEOUT,
            concurrency: DEFAULT_CONCURRENCY,
            requests_per_minute: None,
            tokens_per_minute: None,
            retry: RetryPolicy::default(),
            keep_truncated: false,
        }
    }
}

/// A completion that passed every check.
#[derive(Clone, Debug, PartialEq)]
pub struct Success {
    pub completion: Completion,
    pub attempts: u32,
}

/// Failure of a request that produced no usable text, for the failures table.
#[derive(Clone, Debug, PartialEq)]
pub struct RequestFailure {
    /// Short machine-readable reason, such as `http_400`, `timeout`, `truncated`, `refused`.
    pub reason: String,
    /// HTTP status of the last attempt, when one arrived.
    pub status: Option<u16>,
    pub attempts: u32,
    /// Detail for people: the server's error message or the refusal text, cut to 500 bytes.
    pub detail: String,
}

/// Sends requests to one OpenAI-compatible server.
pub struct Provider {
    client: reqwest::Client,
    config: ProviderConfig,
    url: String,
    slots: Arc<Semaphore>,
    cooldown: Cooldown,
    requests: Option<DefaultDirectRateLimiter>,
    tokens: Option<DefaultDirectRateLimiter>,
    /// Makes requests take tokens in arrival order: without it, small requests take the tokens
    /// as they accrue and a large request waits until the small ones run out.
    token_queue: tokio::sync::Mutex<()>,
    /// Tokens that responses used beyond what their requests took from `tokens`. The next
    /// request takes them from the limiter before its own estimate.
    token_debt: AtomicU64,
    jitter_state: AtomicU64,
    /// An in-process generator that replaces the HTTP server.
    backend: Option<Arc<dyn Backend>>,
}

/// Failure to set up a provider.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid provider setting: {0}")]
    Config(String),
}

impl Provider {
    /// Sends requests to the in-process `backend` instead of a server; `base_url` is unused.
    pub fn in_process(
        mut config: ProviderConfig,
        backend: Arc<dyn Backend>,
    ) -> Result<Self, ProviderError> {
        config.base_url = "http://in-process.invalid/v1".into();
        let mut provider = Self::new(config)?;
        provider.backend = Some(backend);
        Ok(provider)
    }

    pub fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        if config.concurrency == 0 {
            return Err(ProviderError::Config(
                "concurrency must be at least 1".into(),
            ));
        }
        let base = config.base_url.trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(ProviderError::Config(format!(
                "base URL `{base}` must start with http:// or https://, for example http://127.0.0.1:8000/v1"
            )));
        }
        let url = match config.endpoint {
            Endpoint::Chat => format!("{base}/chat/completions"),
            Endpoint::Completions => format!("{base}/completions"),
        };
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency)
            .build()
            .map_err(|e| ProviderError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            client,
            url,
            slots: Arc::new(Semaphore::new(config.concurrency)),
            cooldown: Cooldown::default(),
            requests: config
                .requests_per_minute
                .map(|n| RateLimiter::direct(smooth_quota(n))),
            tokens: config
                .tokens_per_minute
                .map(|n| RateLimiter::direct(smooth_quota(n))),
            token_queue: tokio::sync::Mutex::new(()),
            token_debt: AtomicU64::new(0),
            jitter_state: AtomicU64::new(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64),
            ),
            config,
            backend: None,
        })
    }

    pub fn config(&self) -> &ProviderConfig {
        &self.config
    }

    /// Sends `body` (a chat or completions request without `model`) until it succeeds, fails
    /// for good, or runs out of attempts. `estimated_tokens` (prompt plus `max_tokens`) is
    /// taken from the tokens-per-minute budget before each attempt, and reconciled with the
    /// `usage` of the response (see [`Provider::reconcile_tokens`]).
    pub async fn complete(
        &self,
        body: &Value,
        estimated_tokens: u32,
    ) -> Result<Success, RequestFailure> {
        self.complete_in_slot(body, estimated_tokens).await.0
    }

    /// Does what [`Provider::complete`] does and also returns the concurrency slot the request
    /// took. The slot stays taken until it is dropped, so a caller can keep it until the
    /// response is stored, and the responses at risk in a crash stay within the concurrency.
    pub async fn complete_in_slot(
        &self,
        body: &Value,
        estimated_tokens: u32,
    ) -> (Result<Success, RequestFailure>, Slot) {
        let request = match self.backend {
            Some(_) => {
                let mut body = body.clone();
                body["model"] = Value::String(self.config.model.clone());
                Payload::InProcess(body)
            }
            None => Payload::Http(self.encode(body)),
        };
        let slot = Arc::clone(&self.slots)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let result = self.attempts(&request, estimated_tokens).await;
        (result, Slot { _permit: slot })
    }

    async fn attempts(
        &self,
        request: &Payload,
        estimated_tokens: u32,
    ) -> Result<Success, RequestFailure> {
        let mut attempt = 0;
        // Rate-limited attempts made within the patience do not count against `max_attempts`.
        let mut forgiven = 0;
        loop {
            attempt += 1;
            self.wait_for_turn(estimated_tokens).await;

            let sent = self.send(request).await;
            if let Ok(completion) = &sent {
                self.reconcile_tokens(estimated_tokens, completion);
            }
            self.cooldown
                .observe(matches!(sent, Err((Failure::Status(429), _, _))));
            let (failure, server_wait, detail) = match sent {
                Ok(completion) => {
                    match outcome::classify(&completion, self.config.keep_truncated) {
                        Outcome::Complete => {
                            return Ok(Success {
                                completion,
                                attempts: attempt,
                            });
                        }
                        Outcome::Empty => (
                            Failure::EmptyBody,
                            None,
                            "the completion is empty".to_string(),
                        ),
                        Outcome::Truncated => {
                            return Err(failed(
                                "truncated",
                                Some(200),
                                attempt,
                                "cut off at max_tokens",
                            ));
                        }
                        Outcome::Refused(message) => {
                            return Err(failed("refused", Some(200), attempt, &message));
                        }
                        Outcome::Filtered => {
                            return Err(failed(
                                "content_filter",
                                Some(200),
                                attempt,
                                "stopped by the content filter",
                            ));
                        }
                    }
                }
                Err(attempt_error) => attempt_error,
            };

            let status = match failure {
                Failure::Status(code) => Some(code),
                _ => None,
            };
            if retry::classify(&failure) == Decision::Fail {
                return Err(failed(&reason(&failure), status, attempt, &detail));
            }
            if failure == Failure::Status(429) {
                let pause = server_wait.unwrap_or(self.config.retry.base_delay);
                self.cooldown.extend(
                    Instant::now(),
                    pause.min(self.config.retry.retry_after_ceiling),
                );
                if self
                    .cooldown
                    .patient(Instant::now(), self.config.retry.rate_limit_patience)
                {
                    forgiven += 1;
                }
            }
            let jitter = self.jitter();
            let Some(delay) = self
                .config
                .retry
                .delay(attempt - forgiven, jitter, server_wait)
            else {
                return Err(failed(&reason(&failure), status, attempt, &detail));
            };
            tracing::debug!(attempt, failure = %reason(&failure), delay_ms = delay.as_millis() as u64, "retrying request");
            tokio::time::sleep(delay).await;
        }
    }

    /// Returns a uniform number in `[0, 1)` for backoff jitter. It needs no quality beyond
    /// spreading retries apart, so a counter run through SplitMix64 serves.
    fn jitter(&self) -> f64 {
        let mut z = self
            .jitter_state
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Waits for the shared cooldown and both rate limits.
    async fn wait_for_turn(&self, estimated_tokens: u32) {
        self.cooldown.wait(self.config.timeout).await;
        if let Some(requests) = &self.requests {
            requests.until_ready().await;
        }
        let (Some(tokens), Some(per_minute)) = (&self.tokens, self.config.tokens_per_minute) else {
            return;
        };

        // tokio's mutex is fair, so waiters take their turns in arrival order.
        let _turn = self.token_queue.lock().await;
        let debt = self.token_debt.swap(0, Ordering::Relaxed);
        // A request larger than a minute's budget takes one minute's budget instead of waiting
        // for more than a minute.
        let estimate = estimated_tokens.min(per_minute.get());
        take_tokens(tokens, debt + u64::from(estimate), quota_burst(per_minute)).await;
    }

    /// Adds what a response used beyond its request's estimate to the debt that the next
    /// request takes from the tokens-per-minute limiter, so that the achieved rate follows the
    /// limit even when the estimate is low. The debt of one response is capped at a minute's
    /// budget, so that one huge response delays the next request by at most a minute.
    ///
    /// An estimate larger than the usage is not refunded, so the limiter errs on the slow side,
    /// as a provider does that counts `max_tokens` when the request arrives.
    /// A response without `usage` keeps its estimate.
    fn reconcile_tokens(&self, estimated_tokens: u32, completion: &Completion) {
        let (Some(per_minute), Some(usage)) = (self.config.tokens_per_minute, completion.usage)
        else {
            return;
        };
        let taken = u64::from(estimated_tokens.min(per_minute.get()));
        let used = usage.prompt + usage.completion;
        let extra = used.saturating_sub(taken).min(u64::from(per_minute.get()));
        if extra > 0 {
            self.token_debt.fetch_add(extra, Ordering::Relaxed);
            tracing::debug!(
                estimated_tokens,
                used_tokens = used,
                extra_tokens = extra,
                "response used more tokens than estimated; the next request takes the difference"
            );
        }
    }

    /// Sends one attempt.
    /// Serializes `body` with the configured `model` in front, once for every attempt.
    fn encode(&self, body: &Value) -> bytes::Bytes {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"model\":");
        write_json(&mut out, &self.config.model);
        if let Some(fields) = body.as_object() {
            for (name, value) in fields.iter().filter(|(name, _)| *name != "model") {
                out.push(b',');
                write_json(&mut out, name);
                out.push(b':');
                write_json(&mut out, value);
            }
        }
        out.push(b'}');
        out.into()
    }

    async fn send(
        &self,
        request: &Payload,
    ) -> Result<Completion, (Failure, Option<Duration>, String)> {
        let body = match request {
            Payload::InProcess(body) => {
                let backend = self
                    .backend
                    .as_ref()
                    .expect("in-process payloads are made only with a backend");
                return backend
                    .complete(self.config.endpoint, body)
                    .await
                    .map_err(|error| match error {
                        BackendError::Invalid(detail) => (Failure::Status(400), None, detail),
                        BackendError::Unavailable(detail) => (Failure::Connection, None, detail),
                    });
            }
            Payload::Http(bytes) => bytes.clone(),
        };
        let mut request = self
            .client
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(&key.0);
        }
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }

        let response = request.send().await.map_err(|e| transport_failure(&e))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let server_wait = retry::retry_after(
            header("retry-after-ms").as_deref(),
            header("retry-after").as_deref(),
            SystemTime::now(),
        );
        let bytes = response.bytes().await.map_err(|e| transport_failure(&e))?;

        if !(200..300).contains(&status) {
            return Err((Failure::Status(status), server_wait, error_detail(&bytes)));
        }
        outcome::parse(self.config.endpoint, &bytes).map_err(|failure| {
            let detail = match failure {
                Failure::EmptyBody => "the response body is empty".to_string(),
                _ => "the response body is not a completion".to_string(),
            };
            (failure, None, detail)
        })
    }
}

/// A concurrency slot of a [`Provider`], free again once dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

/// A request body ready to send.
enum Payload {
    /// For the in-process backend, as JSON.
    InProcess(Value),
    /// For the HTTP server, serialized.
    Http(bytes::Bytes),
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("JSON values and strings always serialize");
}

/// Returns a per-minute quota whose burst is one second's share, so that the achieved rate stays
/// close to the limit over any minute instead of front-loading a minute's worth.
fn smooth_quota(per_minute: NonZeroU32) -> Quota {
    Quota::per_minute(per_minute).allow_burst(quota_burst(per_minute))
}

/// Returns the burst of [`smooth_quota`]: one second's share of the per-minute limit.
fn quota_burst(per_minute: NonZeroU32) -> NonZeroU32 {
    NonZeroU32::new(per_minute.get().div_ceil(60)).expect("at least 1")
}

/// Takes `count` cells from `limiter`, at most `burst` at a time, because governor 0.10's
/// `until_n_ready` returns an error at once for more cells than the burst instead of waiting.
async fn take_tokens(limiter: &DefaultDirectRateLimiter, mut count: u64, burst: NonZeroU32) {
    while count > 0 {
        let chunk = count.min(u64::from(burst.get())) as u32;
        let chunk = NonZeroU32::new(chunk).expect("count is positive");
        limiter
            .until_n_ready(chunk)
            .await
            .expect("a chunk never exceeds the burst");
        count -= u64::from(chunk.get());
    }
}

fn transport_failure(error: &reqwest::Error) -> (Failure, Option<Duration>, String) {
    // The URL is left out of the detail: users may put a key in it.
    let failure = if error.is_timeout() {
        Failure::Timeout
    } else {
        Failure::Connection
    };
    let detail = if error.is_timeout() {
        "no complete response within the request timeout".to_string()
    } else {
        "the connection failed or closed early".to_string()
    };
    (failure, None, detail)
}

/// Returns the `error.message` of an OpenAI-style error body, or the start of the body.
fn error_detail(body: &[u8]) -> String {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    truncate(&message, 500)
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn reason(failure: &Failure) -> String {
    match failure {
        Failure::Status(code) => format!("http_{code}"),
        Failure::Timeout => "timeout".into(),
        Failure::Connection => "connection".into(),
        Failure::EmptyBody => "empty".into(),
        Failure::Malformed => "malformed".into(),
    }
}

fn failed(reason: &str, status: Option<u16>, attempts: u32, detail: &str) -> RequestFailure {
    RequestFailure {
        reason: reason.to_string(),
        status,
        attempts,
        detail: truncate(detail, 500),
    }
}
