//! Client side of the augment benchmark; `bench/run_augment_bench.py` runs it against
//! `bench_server` and prints one JSON line per run.
//!
//! Modes:
//! - `provider URL CONCURRENCY REQUESTS`: `Provider::complete` with CONCURRENCY in flight.
//! - `reqwest URL CONCURRENCY REQUESTS`: a bare reqwest loop with the same request and JSON
//!   parsing, for reference.
//! - `rate URL PER_MINUTE REQUESTS`: the request rate under `requests_per_minute`.
//! - `tokens URL PER_MINUTE SMALL LARGE SMALL_TOKENS LARGE_TOKENS`: small and large requests,
//!   interleaved, under `tokens_per_minute`; reports when each kind finished.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kenning_augment::provider::{Provider, ProviderConfig};
use serde_json::{Value, json};
use tokio::sync::Semaphore;

fn request() -> Value {
    json!({
        "messages": [
            {"role": "system", "content": "Rewrite the document as a teacher would explain it."},
            {"role": "user", "content": "Johannes Gutenberg built a printing press in Mainz around 1440."},
        ],
        "temperature": 0.7,
        "max_tokens": 64,
    })
}

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let number = |i: usize| -> u64 {
        arguments
            .get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("argument {i} must be a number: {arguments:?}"))
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the runtime starts");
    let url = arguments.get(1).cloned().unwrap_or_default();
    let result = match arguments.first().map(String::as_str) {
        Some("provider") => runtime.block_on(provider(&url, number(2) as usize, number(3))),
        Some("reqwest") => runtime.block_on(bare(&url, number(2) as usize, number(3))),
        Some("rate") => runtime.block_on(rate(&url, number(2) as u32, number(3))),
        Some("tokens") => runtime.block_on(tokens(
            &url,
            number(2) as u32,
            number(3),
            number(4),
            number(5) as u32,
            number(6) as u32,
        )),
        _ => {
            eprintln!("usage: provider_bench provider|reqwest|rate|tokens URL ...");
            std::process::exit(2);
        }
    };
    println!("{result}");
}

fn config(url: &str, concurrency: usize) -> ProviderConfig {
    let mut config = ProviderConfig::new(url, "bench-model");
    config.concurrency = concurrency;
    config.timeout = Duration::from_secs(60);
    config
}

async fn provider(url: &str, concurrency: usize, requests: u64) -> Value {
    let provider = Arc::new(Provider::new(config(url, concurrency)).expect("valid settings"));
    let body = Arc::new(request());
    let started = Instant::now();
    // At most twice the concurrency is spawned at a time, and finished tasks are joined as they
    // end, as the stage's run loop does: a `JoinSet` keeps every finished task until it is joined.
    let gate = Arc::new(Semaphore::new(concurrency * 2));
    let mut tasks = tokio::task::JoinSet::new();
    let mut ok = 0u64;
    for _ in 0..requests {
        let permit = gate.clone().acquire_owned().await.expect("open");
        let (provider, body) = (provider.clone(), body.clone());
        tasks.spawn(async move {
            let result = provider.complete(&body, 100).await;
            drop(permit);
            result.is_ok()
        });
        while let Some(done) = tasks.try_join_next() {
            ok += u64::from(done.expect("no task panics"));
        }
    }
    while let Some(done) = tasks.join_next().await {
        ok += u64::from(done.expect("no task panics"));
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({"mode": "provider", "concurrency": concurrency, "requests": requests, "ok": ok, "seconds": seconds})
}

async fn bare(url: &str, concurrency: usize, requests: u64) -> Value {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .build()
        .expect("client");
    let endpoint = format!("{}/chat/completions", url.trim_end_matches('/'));
    let mut body = request();
    body["model"] = json!("bench-model");
    let body = Arc::new(body);
    let remaining = Arc::new(std::sync::atomic::AtomicI64::new(requests as i64));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, endpoint, body, remaining) = (
            client.clone(),
            endpoint.clone(),
            body.clone(),
            remaining.clone(),
        );
        tasks.spawn(async move {
            let mut ok = 0u64;
            while remaining.fetch_sub(1, std::sync::atomic::Ordering::Relaxed) > 0 {
                let Ok(response) = client.post(&endpoint).json(&*body).send().await else {
                    continue;
                };
                let Ok(bytes) = response.bytes().await else {
                    continue;
                };
                ok += u64::from(serde_json::from_slice::<Value>(&bytes).is_ok());
            }
            ok
        });
    }
    let mut ok = 0u64;
    while let Some(done) = tasks.join_next().await {
        ok += done.expect("no task panics");
    }
    let seconds = started.elapsed().as_secs_f64();
    json!({"mode": "reqwest", "concurrency": concurrency, "requests": requests, "ok": ok, "seconds": seconds})
}

async fn rate(url: &str, per_minute: u32, requests: u64) -> Value {
    let mut settings = config(url, 64);
    settings.requests_per_minute = NonZeroU32::new(per_minute);
    let provider = Arc::new(Provider::new(settings).expect("valid settings"));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..requests {
        let provider = provider.clone();
        tasks.spawn(async move {
            let ok = provider.complete(&request(), 100).await.is_ok();
            (ok, started.elapsed().as_secs_f64())
        });
    }
    let mut finished = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (ok, at) = done.expect("no task panics");
        if ok {
            finished.push(at);
        }
    }
    finished.sort_by(f64::total_cmp);

    // The busiest 60 s window of finish times, when the run lasted that long.
    let mut busiest = 0usize;
    let mut start = 0usize;
    for end in 0..finished.len() {
        while finished[end] - finished[start] >= 60.0 {
            start += 1;
        }
        busiest = busiest.max(end - start + 1);
    }
    let span = finished.last().copied().unwrap_or(0.0) - finished.first().copied().unwrap_or(0.0);
    json!({
        "mode": "rate", "per_minute": per_minute, "requests": requests, "ok": finished.len(),
        "seconds": span,
        // Requests after the first, over the time from the first to the last finish.
        "steady_per_minute": (finished.len().saturating_sub(1)) as f64 / span * 60.0,
        "busiest_60s": busiest,
    })
}

async fn tokens(
    url: &str,
    per_minute: u32,
    small: u64,
    large: u64,
    small_tokens: u32,
    large_tokens: u32,
) -> Value {
    let mut settings = config(url, 64);
    settings.tokens_per_minute = NonZeroU32::new(per_minute);
    let provider = Arc::new(Provider::new(settings).expect("valid settings"));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    // Interleave: one large request after every `small / large` small ones.
    let every = (small / large.max(1)).max(1);
    let (mut sent_small, mut sent_large) = (0, 0);
    while sent_small < small || sent_large < large {
        let is_large = sent_large < large && (sent_small % every == 0 || sent_small == small);
        let estimate = if is_large { large_tokens } else { small_tokens };
        if is_large {
            sent_large += 1;
        } else {
            sent_small += 1;
        }
        let provider = provider.clone();
        tasks.spawn(async move {
            let ok = provider.complete(&request(), estimate).await.is_ok();
            (is_large, ok, started.elapsed().as_secs_f64())
        });
    }
    let (mut small_done, mut large_done) = (Vec::new(), Vec::new());
    while let Some(done) = tasks.join_next().await {
        let (is_large, ok, at) = done.expect("no task panics");
        if ok {
            if is_large {
                large_done.push(at);
            } else {
                small_done.push(at);
            }
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let last = |v: &[f64]| v.iter().copied().fold(0.0, f64::max);
    let total_tokens = small * u64::from(small_tokens) + large * u64::from(large_tokens);
    json!({
        "mode": "tokens", "per_minute": per_minute,
        "small": small, "large": large, "small_tokens": small_tokens, "large_tokens": large_tokens,
        "small_ok": small_done.len(), "large_ok": large_done.len(),
        "small_mean_finish": mean(&small_done), "large_mean_finish": mean(&large_done),
        "small_last_finish": last(&small_done), "large_last_finish": last(&large_done),
        "ideal_seconds": total_tokens as f64 / f64::from(per_minute) * 60.0,
    })
}
