//! The embedded model end to end: `kenning augment --provider local` in process, and the same
//! run through `kenning serve` on 127.0.0.1 with the HTTP provider, must store the same rows.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};

use serde_json::{Map, Value};

/// A `kenning serve` process on a free loopback port, stopped (by its PID) on drop.
struct Served {
    child: Child,
    base_url: String,
}

impl Served {
    fn start() -> Self {
        let mut child = common::kenning()
            .args(["serve", "--port", "0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("kenning serve starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("kenning serve prints its address");
        let base_url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Self { child, base_url }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DOCUMENTS: &str = r#"{"id": "tides", "title": "Tides", "text": "Tides are the rise and fall of sea levels caused by the gravity of the Moon and the Sun. Most coasts see two high tides a day."}
{"id": "bees", "title": "Honeybees", "text": "Honeybees live in colonies with one queen. Worker bees collect nectar and pollen and turn the nectar into honey."}
"#;

fn augment(input: &Path, out: &Path, provider: &[&str]) -> Vec<Map<String, Value>> {
    let mut args = vec![
        "augment",
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--strategies",
        "key_concepts,rephrase",
        "--k",
        "2",
        "--max-tokens",
        "24",
        "--keep-truncated",
        "--temperature",
        "0.8",
        "--seed",
        "7",
        "--concurrency",
        "4",
        "--no-progress",
    ];
    args.extend_from_slice(provider);
    common::run(&args).assert_success();
    let mut rows = common::read_rows(out);
    rows.sort_by(|a, b| a["key"].as_str().cmp(&b["key"].as_str()));
    rows
}

#[test]
fn local_provider_and_serve_store_the_same_rows() {
    let dir = tempfile::tempdir().unwrap();
    let input = common::write_file(dir.path(), "docs.jsonl", DOCUMENTS);

    let local = augment(&input, &dir.path().join("local"), &["--provider", "local"]);

    let served = Served::start();
    let http = augment(
        &input,
        &dir.path().join("http"),
        &[
            "--provider",
            "openai",
            "--base-url",
            &served.base_url,
            "--model",
            "smollm2",
        ],
    );
    drop(served);

    // 2 documents x 2 templates x 2 samples.
    assert_eq!(local.len(), 8);
    assert_eq!(http.len(), 8);
    for (a, b) in local.iter().zip(&http) {
        assert_eq!(a["key"], b["key"]);
        assert_eq!(a["text"], b["text"], "{}", a["key"]);
        assert!(!a["text"].as_str().unwrap().trim().is_empty());
    }
    // Samples of the same prompt differ: each gets its own seed.
    assert_ne!(local[0]["text"], local[1]["text"]);

    let manifest = common::read_manifest(&dir.path().join("local"));
    let text = manifest.to_string();
    assert!(text.contains("SmolLM2-135M-Instruct"), "{text}");
}

#[test]
fn serve_lists_models_and_rejects_bad_requests() {
    let served = Served::start();
    let base = served.base_url.trim_start_matches("http://");
    let (host, rest) = base.split_once('/').unwrap();

    let models = http_request(host, &format!("/{rest}/models"), None);
    assert!(models.starts_with("HTTP/1.1 200"), "{models}");
    assert!(models.contains("SmolLM2-135M-Instruct"), "{models}");

    let bad = http_request(
        host,
        &format!("/{rest}/chat/completions"),
        Some("{\"messages\": 3}"),
    );
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains("messages"), "{bad}");

    let long = format!(
        "{{\"messages\": [{{\"role\": \"user\", \"content\": \"{}\"}}], \"max_tokens\": 10}}",
        "word ".repeat(9000)
    );
    let too_long = http_request(host, &format!("/{rest}/chat/completions"), Some(&long));
    assert!(too_long.starts_with("HTTP/1.1 400"), "{too_long}");
    assert!(too_long.contains("context window"), "{too_long}");
}

/// Sends one HTTP/1.1 request and returns the whole response.
fn http_request(host: &str, path: &str, body: Option<&str>) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    let request = match body {
        Some(body) => format!(
            "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        None => format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
    };
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
}
