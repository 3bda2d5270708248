//! The provider against a real HTTP server on 127.0.0.1, scripted per request with the faults
//! that OpenAI-compatible servers show: 429 with Retry-After, 5xx, hangs, resets, empty and
//! malformed bodies, truncated and refused completions.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use kenning_augment::outcome::Endpoint;
use kenning_augment::provider::{ApiKey, Provider, ProviderConfig};
use kenning_augment::retry::RetryPolicy;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the server does with one request.
#[derive(Clone, Debug)]
enum Reply {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Keeps the connection open without a response.
    Hang(Duration),
    /// Closes the connection without a response.
    Reset,
    /// Announces a longer body than it sends, then closes.
    Truncated,
}

fn ok(text: &str) -> Reply {
    completion(text, "stop")
}

fn completion(text: &str, finish_reason: &str) -> Reply {
    completion_with_usage(text, finish_reason, 10, 5)
}

fn completion_with_usage(
    text: &str,
    finish_reason: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> Reply {
    Reply::Respond {
        status: 200,
        headers: Vec::new(),
        body: json!({
            "id": "chatcmpl-1", "object": "chat.completion", "model": "test-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens}
        })
        .to_string(),
    }
}

fn status(code: u16, headers: &[(&str, &str)], body: &str) -> Reply {
    Reply::Respond {
        status: code,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: body.to_string(),
    }
}

/// A scripted server: replies are taken from the script in request order; once it is empty,
/// every request gets `fallback`.
struct Server {
    base_url: String,
    requests: Arc<AtomicUsize>,
    authorization: Arc<Mutex<Vec<String>>>,
}

impl Server {
    async fn start(script: Vec<Reply>, fallback: Reply) -> Self {
        let script = Mutex::new(VecDeque::from(script));
        Self::start_with(move || {
            script
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| fallback.clone())
        })
        .await
    }

    /// Starts a server that replies to each connection with what `next` returns.
    async fn start_with(next: impl Fn() -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let authorization = Arc::new(Mutex::new(Vec::new()));
        {
            let requests = requests.clone();
            let authorization = authorization.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        break;
                    };
                    let reply = next();
                    let requests = requests.clone();
                    let authorization = authorization.clone();
                    tokio::spawn(async move {
                        serve(stream, reply, &requests, &authorization).await;
                    });
                }
            });
        }
        Self {
            base_url,
            requests,
            authorization,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request and responds as `reply` describes, then closes the connection.
async fn serve(
    mut stream: TcpStream,
    reply: Reply,
    requests: &AtomicUsize,
    authorization: &Mutex<Vec<String>>,
) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let length: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().parse().unwrap())
        })
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let Ok(n) = stream.read(&mut chunk).await else {
            return;
        };
        if n == 0 {
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    requests.fetch_add(1, Ordering::SeqCst);
    if let Some(value) = head.lines().find_map(|l| {
        l.strip_prefix("authorization: ")
            .or_else(|| l.strip_prefix("Authorization: "))
    }) {
        authorization.lock().unwrap().push(value.to_string());
    }

    match reply {
        Reply::Respond {
            status,
            headers,
            body,
        } => {
            let mut response = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (name, value) in headers {
                response.push_str(&format!("{name}: {value}\r\n"));
            }
            response.push_str("\r\n");
            response.push_str(&body);
            let _ = stream.write_all(response.as_bytes()).await;
        }
        Reply::Hang(duration) => tokio::time::sleep(duration).await,
        Reply::Reset => {}
        Reply::Truncated => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 400\r\nconnection: close\r\n\r\n{\"choices\": [")
                .await;
        }
    }
    let _ = stream.shutdown().await;
}

fn config(server: &Server) -> ProviderConfig {
    let mut config = ProviderConfig::new(&server.base_url, "test-model");
    config.timeout = Duration::from_millis(800);
    config.retry = RetryPolicy {
        max_attempts: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        retry_after_ceiling: Duration::from_secs(5),
        rate_limit_patience: Duration::from_secs(60),
    };
    config
}

fn request() -> serde_json::Value {
    json!({"messages": [{"role": "user", "content": "Summarise: Mainz, 1440."}], "max_tokens": 64})
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let server = Server::start(
        vec![status(429, &[("retry-after", "1")], "{}")],
        ok("Gutenberg"),
    )
    .await;
    let provider = Provider::new(config(&server)).unwrap();

    let started = Instant::now();
    let success = provider.complete(&request(), 100).await.unwrap();
    assert_eq!(success.completion.text, "Gutenberg");
    assert_eq!(success.attempts, 2);
    assert_eq!(server.requests(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let date = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2));
    let server = Server::start(
        vec![status(429, &[("retry-after", &date)], "not json")],
        ok("done"),
    )
    .await;
    let provider = Provider::new(config(&server)).unwrap();

    let started = Instant::now();
    let success = provider.complete(&request(), 100).await.unwrap();
    assert_eq!(success.attempts, 2);
    // The HTTP date has one-second resolution, so the wait is between 1 and 2 seconds.
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn server_errors_are_retried() {
    let script = vec![
        status(500, &[], "{}"),
        status(502, &[], "<html>bad gateway</html>"),
        status(503, &[], ""),
    ];
    let server = Server::start(script, ok("recovered")).await;
    let provider = Provider::new(config(&server)).unwrap();

    let success = provider.complete(&request(), 100).await.unwrap();
    assert_eq!(success.attempts, 4);
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn hung_response_times_out_and_retries() {
    let server = Server::start(
        vec![Reply::Hang(Duration::from_secs(3))],
        ok("late but fine"),
    )
    .await;
    let provider = Provider::new(config(&server)).unwrap();

    let started = Instant::now();
    let success = provider.complete(&request(), 100).await.unwrap();
    assert_eq!(success.attempts, 2);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "the timeout must cut the hang short"
    );
}

#[tokio::test]
async fn reset_and_truncated_bodies_are_retried() {
    let server = Server::start(vec![Reply::Reset, Reply::Truncated], ok("whole")).await;
    let provider = Provider::new(config(&server)).unwrap();

    let success = provider.complete(&request(), 100).await.unwrap();
    assert_eq!(success.attempts, 3);
    assert_eq!(success.completion.text, "whole");
}

#[tokio::test]
async fn empty_and_malformed_bodies_are_retried_then_fail() {
    let server = Server::start(
        vec![status(200, &[], ""), status(200, &[], "{\"choices\": [{")],
        ok("finally"),
    )
    .await;
    let provider = Provider::new(config(&server)).unwrap();
    assert_eq!(
        provider.complete(&request(), 100).await.unwrap().attempts,
        3
    );

    let server = Server::start(Vec::new(), completion("   ", "stop")).await;
    let provider = Provider::new(config(&server)).unwrap();
    let failure = provider.complete(&request(), 100).await.unwrap_err();
    assert_eq!(failure.reason, "empty");
    assert_eq!(failure.attempts, 4);
    assert_eq!(server.requests(), 4);
}

#[tokio::test]
async fn truncated_completion_fails_unless_kept() {
    let server = Server::start(Vec::new(), completion("partial te", "length")).await;
    let provider = Provider::new(config(&server)).unwrap();
    let failure = provider.complete(&request(), 100).await.unwrap_err();
    assert_eq!(failure.reason, "truncated");
    assert_eq!(failure.attempts, 1);

    let mut keep = config(&server);
    keep.keep_truncated = true;
    let success = Provider::new(keep)
        .unwrap()
        .complete(&request(), 100)
        .await
        .unwrap();
    assert_eq!(success.completion.finish_reason.as_deref(), Some("length"));
}

#[tokio::test]
async fn refusal_is_its_own_failure() {
    let body = json!({"choices": [{"message": {"content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    let server = Server::start(Vec::new(), status(200, &[], &body.to_string())).await;
    let failure = Provider::new(config(&server))
        .unwrap()
        .complete(&request(), 100)
        .await
        .unwrap_err();
    assert_eq!(failure.reason, "refused");
    assert_eq!(failure.detail, "I can't help with that.");
    assert_eq!(server.requests(), 1);
}

#[tokio::test]
async fn missing_usage_and_unknown_fields_are_accepted() {
    let body = json!({"choices": [{"message": {"content": "text", "audio": null}, "finish_reason": "abort", "extra": 1}], "vendor": {"x": 2}});
    let server = Server::start(Vec::new(), status(200, &[], &body.to_string())).await;
    let success = Provider::new(config(&server))
        .unwrap()
        .complete(&request(), 100)
        .await
        .unwrap();
    assert_eq!(success.completion.usage, None);
    assert_eq!(success.completion.finish_reason.as_deref(), Some("abort"));
}

#[tokio::test]
async fn client_errors_fail_at_once() {
    let body = json!({"error": {"message": "model `nope` does not exist", "type": "invalid_request_error"}});
    let server = Server::start(Vec::new(), status(404, &[], &body.to_string())).await;
    let failure = Provider::new(config(&server))
        .unwrap()
        .complete(&request(), 100)
        .await
        .unwrap_err();
    assert_eq!(failure.reason, "http_404");
    assert_eq!(failure.status, Some(404));
    assert_eq!(failure.attempts, 1);
    assert!(
        failure.detail.contains("does not exist"),
        "{}",
        failure.detail
    );
}

#[tokio::test]
async fn burst_of_429_is_survived_with_shared_cooldown() {
    let script = vec![status(429, &[("retry-after", "1")], "{}"); 100];
    let server = Server::start(script, ok("fine")).await;
    let mut settings = config(&server);
    settings.concurrency = 100;
    let provider = Arc::new(Provider::new(settings).unwrap());

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.complete(&request(), 100).await })
        })
        .collect();
    for task in tasks {
        let success = task
            .await
            .unwrap()
            .expect("every request succeeds after the burst");
        assert!(success.attempts <= 3, "{} attempts", success.attempts);
    }
    assert!(server.requests() <= 300, "{} requests", server.requests());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_of_429_delays_but_fails_nothing() {
    // For 30 s every request gets a 429 asking for a 1 s pause; then the server accepts all.
    let started = Instant::now();
    let server = Server::start_with(move || {
        if started.elapsed() < Duration::from_secs(30) {
            status(
                429,
                &[("retry-after", "1")],
                r#"{"error": {"message": "Rate limit reached"}}"#,
            )
        } else {
            ok("fine")
        }
    })
    .await;
    let mut settings = config(&server);
    settings.concurrency = 100;
    let provider = Arc::new(Provider::new(settings).unwrap());

    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.complete(&request(), 100).await })
        })
        .collect();
    let mut attempts = 0;
    for task in tasks {
        let success = task
            .await
            .unwrap()
            .expect("every request succeeds once the stream of 429s ends");
        assert_eq!(success.completion.text, "fine");
        attempts += success.attempts as usize;
    }
    assert!(started.elapsed() >= Duration::from_secs(30));

    // At most 100 requests in the first wave (those that start after the first 429 wait),
    // about one probe per second of the stream, then the 100 that succeed. Without the shared cooldown each of the 100 requests would retry
    // every second: about 3,000 requests, and every one would fail after 4 attempts.
    let requests = server.requests();
    assert_eq!(attempts, requests, "every attempt reached the server once");
    assert!(requests <= 100 + 40 + 100, "{requests} requests");
}

#[tokio::test]
async fn request_rate_follows_the_limit() {
    let server = Server::start(Vec::new(), ok("x")).await;
    let mut settings = config(&server);
    settings.requests_per_minute = NonZeroU32::new(600);
    settings.concurrency = 16;
    let provider = Arc::new(Provider::new(settings).unwrap());

    let started = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let provider = provider.clone();
            tokio::spawn(async move { provider.complete(&request(), 10).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // 600 per minute is 10 per second with a burst of 10, so 40 requests need about 3 s.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(2800), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}

/// Requests and tokens of one run of [`run_token_limited`].
struct TokenRun {
    requests: usize,
    /// Tokens the server reported in `usage`, summed over all responses.
    tokens: u64,
    elapsed: Duration,
}

/// Sends requests that take `estimate` tokens each from `workers` tasks through a provider
/// limited to `tokens_per_minute`, until `window` has passed or 200 requests were sent, then
/// waits for those in flight. The server reports `prompt_tokens` + `completion_tokens` of
/// usage for every request.
async fn run_token_limited(
    tokens_per_minute: u32,
    estimate: u32,
    (prompt_tokens, completion_tokens): (u64, u64),
    workers: usize,
    window: Duration,
) -> TokenRun {
    let server = Server::start(
        Vec::new(),
        completion_with_usage("x", "stop", prompt_tokens, completion_tokens),
    )
    .await;
    let mut settings = config(&server);
    settings.tokens_per_minute = NonZeroU32::new(tokens_per_minute);
    settings.concurrency = workers;
    settings.timeout = Duration::from_secs(30);
    let provider = Arc::new(Provider::new(settings).unwrap());
    let sent = Arc::new(AtomicUsize::new(0));

    let started = Instant::now();
    let tasks: Vec<_> = (0..workers)
        .map(|_| {
            let provider = provider.clone();
            let sent = sent.clone();
            tokio::spawn(async move {
                while started.elapsed() < window && sent.fetch_add(1, Ordering::SeqCst) < 200 {
                    provider.complete(&request(), estimate).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }

    let requests = server.requests();
    TokenRun {
        requests,
        tokens: requests as u64 * (prompt_tokens + completion_tokens),
        elapsed: started.elapsed(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_rate_follows_reported_usage() {
    // 60,000 tokens per minute is 1,000 per second with a burst of 1,000. Each request is
    // estimated at 20 tokens but the server reports 600, so a limiter that kept the estimates
    // would let about 30,000 reported tokens per second through.
    let (per_second, burst, workers) = (1_000.0, 1_000.0, 4);
    let run = run_token_limited(60_000, 20, (100, 500), workers, Duration::from_secs(3)).await;
    let rate = run.tokens as f64 / run.elapsed.as_secs_f64();
    eprintln!(
        "{} requests, {} tokens in {:?}: {rate:.0} tokens/s against a limit of {per_second}/s",
        run.requests, run.tokens, run.elapsed
    );

    assert!(run.requests >= 3, "{} requests", run.requests);
    // Each request takes the extra tokens of the responses that came before it, so only the
    // last `workers` responses can be unpaid when the run ends. One more burst is slack for
    // timer granularity.
    let unpaid = workers as f64 * (600.0 - 20.0);
    let allowed = 2.0 * burst + per_second * run.elapsed.as_secs_f64() + unpaid;
    assert!(
        run.tokens as f64 <= allowed,
        "{} tokens reported in {:?}; the limit allows {allowed:.0}",
        run.tokens,
        run.elapsed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_limit_holds_above_the_burst() {
    // Each request is estimated at 2,000 tokens, twice the burst of 1,000, and uses as much.
    // The limiter must take it in parts instead of letting it through.
    let (per_second, burst) = (1_000.0, 1_000.0);
    let run = run_token_limited(60_000, 2_000, (500, 1_500), 1, Duration::from_secs(2)).await;
    eprintln!(
        "{} requests, {} tokens in {:?}",
        run.requests, run.tokens, run.elapsed
    );

    assert!(run.requests >= 1, "{} requests", run.requests);
    let allowed = 2.0 * burst + per_second * run.elapsed.as_secs_f64();
    assert!(
        run.tokens as f64 <= allowed,
        "{} tokens reported in {:?}; the limit allows {allowed:.0}",
        run.tokens,
        run.elapsed
    );
}

#[tokio::test]
async fn api_key_is_sent_but_never_shown() {
    let canary = "sk-canary-5f0c1d2e3b4a59687766554433221100";
    let server = Server::start(
        Vec::new(),
        status(401, &[], "{\"error\": {\"message\": \"invalid key\"}}"),
    )
    .await;
    let mut settings = config(&server);
    settings.api_key = Some(ApiKey::new(canary));
    settings.endpoint = Endpoint::Chat;
    let provider = Provider::new(settings.clone()).unwrap();

    let failure = provider.complete(&request(), 100).await.unwrap_err();
    assert_eq!(
        server.authorization.lock().unwrap().as_slice(),
        [format!("Bearer {canary}")]
    );
    for shown in [
        format!("{failure:?}"),
        format!("{settings:?}"),
        failure.detail.clone(),
    ] {
        assert!(!shown.contains("canary"), "the key leaked: {shown}");
    }
}
