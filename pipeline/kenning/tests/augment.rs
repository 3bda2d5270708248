//! `kenning augment` end to end against an OpenAI-compatible server on 127.0.0.1 that counts
//! requests: rows per key, failures kept out of the dataset, resume without paying twice, and a
//! canary API key that never appears in any output.

use std::fs;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KENNING: &str = env!("CARGO_BIN_EXE_kenning");
const CANARY: &str = "sk-canary-0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// A chat-completions server: responds to every request after `latency` with a text about the
/// document, except for documents whose text contains `REJECT`, which get a 400 while
/// `rejecting` is set. Entity-extraction requests get a JSON object with three entities of the
/// document and one that is not in it. Responses carry `usage` while `reporting_usage` is set.
struct FakeServer {
    base_url: String,
    requests: Arc<AtomicUsize>,
    rejecting: Arc<AtomicBool>,
    reporting_usage: Arc<AtomicBool>,
    prompts: Arc<Mutex<Vec<String>>>,
    _runtime: tokio::runtime::Runtime,
}

impl FakeServer {
    fn start(latency: Duration) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let rejecting = Arc::new(AtomicBool::new(true));
        let reporting_usage = Arc::new(AtomicBool::new(true));
        let prompts = Arc::new(Mutex::new(Vec::new()));
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
        let counter = requests.clone();
        let (reject_switch, prompt_log) = (rejecting.clone(), prompts.clone());
        let usage_switch = reporting_usage.clone();
        runtime.spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else { break };
                let counter = counter.clone();
                let (reject_switch, prompt_log) = (reject_switch.clone(), prompt_log.clone());
                let usage_switch = usage_switch.clone();
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 8192];
                    let (head_end, length) = loop {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                                .unwrap_or(0);
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let Ok(n) = stream.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..n]);
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    let request: Value = serde_json::from_slice(&buffer[head_end..head_end + length]).unwrap();
                    let prompt = request["messages"][1]["content"].as_str().unwrap_or_default().to_string();
                    let system = request["messages"][0]["content"].as_str().unwrap_or_default().to_string();
                    prompt_log.lock().unwrap().push(prompt.clone());
                    tokio::time::sleep(latency).await;

                    let (status, body) = if prompt.contains("REJECT") && reject_switch.load(Ordering::SeqCst) {
                        (400, json!({"error": {"message": "this document is not allowed"}}))
                    } else {
                        let text = if system.contains("You extract structured data") {
                            json!({"summary": "A press in Mainz.", "entities": ["Mainz", "printing press", "1440", "Atlantis"]}).to_string()
                        } else {
                            format!("A rewrite of a document of {} characters.", prompt.len())
                        };
                        let mut body = json!({
                            "model": "fake-model",
                            "choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                        });
                        if usage_switch.load(Ordering::SeqCst) {
                            body["usage"] = json!({"prompt_tokens": 50, "completion_tokens": 9});
                        }
                        (200, body)
                    };
                    let body = body.to_string();
                    let response = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Self {
            base_url,
            requests,
            rejecting,
            reporting_usage,
            prompts,
            _runtime: runtime,
        }
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

fn write_documents(path: &Path, count: usize, reject: &[usize]) {
    let mut lines = String::new();
    for i in 0..count {
        let marker = if reject.contains(&i) { " REJECT" } else { "" };
        let text =
            format!("Document {i} tells of the printing press in Mainz around 1440.{marker}");
        lines.push_str(
            &json!({"id": format!("doc-{i}"), "title": format!("Doc {i}"), "text": text})
                .to_string(),
        );
        lines.push('\n');
    }
    fs::write(path, lines).unwrap();
}

fn augment_command(server: &FakeServer, input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut command = Command::new(KENNING);
    command
        .env("OPENAI_API_KEY", CANARY)
        .env("RUST_LOG", "debug")
        .args([
            "augment",
            "--no-progress",
            "--model",
            "fake-model",
            "--base-url",
            &server.base_url,
        ])
        .args([
            "--strategies",
            "implications,key_concepts",
            "--k",
            "2",
            "--max-attempts",
            "2",
        ])
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra);
    command
}

fn run(mut command: Command) -> Output {
    let output = command.output().unwrap();
    assert!(
        output.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn rows(out: &Path) -> u64 {
    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    manifest["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["rows"].as_u64().unwrap())
        .sum()
}

#[test]
fn rows_failures_and_hidden_key() {
    let server = FakeServer::start(Duration::from_millis(5));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 3, &[1]);
    let out = dir.path().join("out");

    let first = run(augment_command(&server, &input, &out, &[]));
    // 3 documents × 2 strategies × 2 samples; document 1 gets a permanent 400.
    assert_eq!(rows(&out), 8);
    assert_eq!(server.requests(), 12);
    let failures = fs::read_to_string(out.join("failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 4, "{failures}");
    for line in failures.lines() {
        let failure: Value = serde_json::from_str(line).unwrap();
        assert_eq!(failure["doc_id"], "doc-1");
        assert_eq!(failure["reason"], "http_400");
        assert_eq!(failure["attempts"], 1);
        assert!(failure["detail"].as_str().unwrap().contains("not allowed"));
    }

    let manifest: Value =
        serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["usage"]["prompt_tokens"], 400);
    assert_eq!(manifest["provenance"]["augment"]["model"], "fake-model");
    assert!(manifest["provenance"]["augment"]["prompts"]["implications"].is_string());

    // Running again sends nothing: the rows are stored and the failures are not retried.
    let second = run(augment_command(&server, &input, &out, &[]));
    assert!(String::from_utf8_lossy(&second.stdout).contains("Nothing to do"));
    assert_eq!(server.requests(), 12);

    let mut shown = String::new();
    for output in [&first, &second] {
        shown.push_str(&String::from_utf8_lossy(&output.stdout));
        shown.push_str(&String::from_utf8_lossy(&output.stderr));
    }
    for file in [
        "manifest.json",
        "README.md",
        "failures.jsonl",
        ".kenning/state.json",
    ] {
        shown.push_str(&fs::read_to_string(out.join(file)).unwrap());
    }
    assert!(!shown.contains("canary"), "the API key leaked");
}

#[test]
fn kill_resends_only_in_flight_requests() {
    let server = FakeServer::start(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 40, &[]);
    let out = dir.path().join("out");
    let concurrency = 4;

    let mut child = augment_command(&server, &input, &out, &["--concurrency", "4"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // 160 requests at 4 in flight and 40 ms each take about 1.6 s; kill in the middle.
    std::thread::sleep(Duration::from_millis(800));
    child.kill().unwrap();
    child.wait().unwrap();
    let before_resume = server.requests();
    assert!(
        before_resume > 10 && before_resume < 160,
        "{before_resume} requests before the kill"
    );

    run(augment_command(
        &server,
        &input,
        &out,
        &["--concurrency", "4"],
    ));
    assert_eq!(rows(&out), 160);
    let extra = server.requests() - 160;
    // Requests in flight when the process died, plus at most one finished response in the
    // channel to the sink and one being journaled, are paid twice.
    assert!(extra <= concurrency + 2, "{extra} requests were sent twice");
}

#[test]
fn token_budget_stops_each_template_at_its_share() {
    let server = FakeServer::start(Duration::from_millis(1));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 30, &[]);
    let out = dir.path().join("out");

    // Each completion reports 9 tokens. A budget of 100 gives each of the two templates 50
    // tokens: 6 completions reach it, and with one request in flight a seventh may finish.
    run(augment_command(
        &server,
        &input,
        &out,
        &["--concurrency", "1", "--token-budget", "100"],
    ));
    let written = rows(&out);
    assert!((12..=14).contains(&written), "{written} rows");
    assert!(server.requests() < 30 * 4, "{} requests", server.requests());
}

/// Waits until the server has received `count` requests, for at most 60 s.
fn wait_for_requests(server: &FakeServer, count: usize) {
    let started = Instant::now();
    while server.requests() < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "only {} of {count} requests arrived",
            server.requests()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Returns the number of rows of `out`, failing when a key is stored twice.
fn unique_rows(out: &Path) -> usize {
    let keys = column(out, "key");
    let unique: std::collections::HashSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a key is stored twice");
    keys.len()
}

/// Returns `augment_command` with one request at a time and a token budget of `budget`.
fn budgeted_command(server: &FakeServer, input: &Path, out: &Path, budget: &str) -> Command {
    augment_command(
        server,
        input,
        out,
        &["--concurrency", "1", "--token-budget", budget],
    )
}

#[test]
fn token_budget_counts_rows_of_earlier_runs() {
    let server = FakeServer::start(Duration::from_millis(50));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 30, &[]);
    let out = dir.path().join("out");
    let with_budget = |budget: &str| budgeted_command(&server, &input, &out, budget);

    // Each completion reports 9 tokens, so a budget of 100 gives each of the two templates 50
    // tokens: 6 completions reach it, and one or two more may be under way. The first run is
    // killed once 8 requests arrived, so about 7 rows are stored.
    let mut child = with_budget("100")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_requests(&server, 8);
    child.kill().unwrap();
    child.wait().unwrap();
    let before_resume = server.requests();

    // The resumed run counts the stored rows. A run that counted from zero would write
    // another 12 to 14 rows on top of them.
    run(with_budget("100"));
    let resumed = unique_rows(&out);
    eprintln!("{before_resume} requests before the kill, {resumed} rows after the resume");
    assert!((12..=16).contains(&resumed), "{resumed} rows");
    let after_resume = server.requests();
    // The request in flight at the kill, plus at most one finished response in the channel to
    // the sink and one being journaled, are paid twice.
    assert!(after_resume <= resumed + 3, "{after_resume} requests");

    // The same budget again sends nothing.
    let again = run(with_budget("100"));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing to do"));
    assert_eq!(server.requests(), after_resume);
    assert_eq!(unique_rows(&out), resumed);

    // A larger budget continues the complete run up to 100 tokens per template: 12 completions.
    run(with_budget("200"));
    let continued = unique_rows(&out);
    eprintln!("{continued} rows after raising the budget to 200");
    assert!((24..=30).contains(&continued), "{continued} rows");
    assert_eq!(
        server.requests() - after_resume,
        continued - resumed,
        "only the new rows were requested"
    );
    assert_eq!(manifest(&out)["config"]["stages"][0]["token_budget"], 200);
}

#[test]
fn token_budget_counts_stored_rows_without_usage() {
    let server = FakeServer::start(Duration::from_millis(1));
    server.reporting_usage.store(false, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 30, &[]);
    let out = dir.path().join("out");
    let with_budget = |budget: &str| {
        let mut command = budgeted_command(&server, &input, &out, budget);
        command.args(["--max-tokens", "40"]);
        command
    };

    // Without usage a completion counts as a token per four characters of its text, about 10
    // tokens for the fake server's rewrites, so each template's share of 50 takes 5 or 6.
    run(with_budget("100"));
    let stored = unique_rows(&out);
    assert!((10..=16).contains(&stored), "{stored} rows");
    let completion_tokens = column_is_null(&out, "completion_tokens");
    assert!(
        completion_tokens.iter().all(|&null| null),
        "no row has usage"
    );
    let requests = server.requests();

    // The raised budget gives each template 100 tokens. The stored rows count as 40 tokens
    // each, at least 200 a template, so nothing is sent. Counting them as zero would send
    // about 10 more requests a template.
    let raised = run(with_budget("200"));
    assert_eq!(server.requests(), requests);
    assert_eq!(unique_rows(&out), stored);
    let stderr = String::from_utf8_lossy(&raised.stderr);
    assert!(
        stderr.contains("stored rows without usage count as max_tokens each"),
        "{stderr}"
    );
}

#[test]
fn entity_graph_kill_resends_only_in_flight_requests() {
    let server = FakeServer::start(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    let documents = 20;
    write_documents(&input, documents, &[]);
    let out = dir.path().join("out");
    let concurrency = 4;
    let arguments = [ENTITY_GRAPH.as_slice(), &["--concurrency", "4"]].concat();
    let command = || augment_command(&server, &input, &out, &arguments);
    // Per document: 4 rewrites, one extraction, then 2 samples of 2 pairs and of one triple.
    let requests = documents * (4 + 1 + 6);
    let rows = documents * (4 + 6);

    let mut child = command()
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for_requests(&server, requests / 2);
    child.kill().unwrap(); // SIGKILL to the child's PID on Unix.
    child.wait().unwrap();
    let before_resume = server.requests();
    assert!(
        before_resume < requests,
        "{before_resume} requests before the kill"
    );
    // The kill falls between the two steps: some documents have their entities, others not.
    let extracted_before = fs::read_to_string(out.join("entities.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        extracted_before > 0 && extracted_before < documents,
        "{extracted_before} documents extracted before the kill"
    );

    run(command());
    assert_eq!(unique_rows(&out), rows);
    // Every extraction is stored once, on a whole line of its own.
    let extractions = fs::read_to_string(out.join("entities.jsonl")).unwrap();
    let documents_extracted: std::collections::HashSet<String> = extractions
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|extraction| extraction["doc_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(documents_extracted.len(), documents);
    assert_eq!(extractions.lines().count(), documents, "{extractions}");
    let extra = server.requests() - requests;
    eprintln!("{before_resume} requests before the kill, {extra} sent twice");
    // As for the rewrites: the requests in flight, plus at most one finished response in the
    // channel to the sink and one being journaled, are paid twice.
    assert!(extra <= concurrency + 2, "{extra} requests were sent twice");
}

fn manifest(out: &Path) -> Value {
    serde_json::from_slice(&fs::read(out.join("manifest.json")).unwrap()).unwrap()
}

/// Reads the record batches of every shard of `out`, in shard order.
fn batches(out: &Path) -> Vec<arrow_array::RecordBatch> {
    let mut batches = Vec::new();
    for shard in manifest(out)["shards"].as_array().unwrap() {
        let file = fs::File::open(out.join(shard["path"].as_str().unwrap())).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap()
            .build()
            .unwrap();
        batches.extend(reader.map(Result::unwrap));
    }
    batches
}

/// Reads a string column of every shard of `out`, in shard order.
fn column(out: &Path, name: &str) -> Vec<Option<String>> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;

    let mut values = Vec::new();
    for batch in batches(out) {
        let strings = batch.column_by_name(name).unwrap().as_string::<i32>();
        for row in 0..strings.len() {
            values.push((!strings.is_null(row)).then(|| strings.value(row).to_string()));
        }
    }
    values
}

/// Returns, for every row of `out` in shard order, whether column `name` is null.
fn column_is_null(out: &Path, name: &str) -> Vec<bool> {
    use arrow_array::Array;

    let mut nulls = Vec::new();
    for batch in batches(out) {
        let values = batch.column_by_name(name).unwrap();
        nulls.extend((0..values.len()).map(|row| values.is_null(row)));
    }
    nulls
}

#[test]
fn retry_failed_completes_a_finished_run() {
    let server = FakeServer::start(Duration::from_millis(1));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 3, &[1]);
    let out = dir.path().join("out");

    run(augment_command(&server, &input, &out, &[]));
    assert_eq!(rows(&out), 8);
    assert_eq!(server.requests(), 12);

    // The server now accepts document 1: only its 4 failed requests are sent again.
    server.rejecting.store(false, Ordering::SeqCst);
    let retry = run(augment_command(&server, &input, &out, &["--retry-failed"]));
    assert_eq!(server.requests(), 16);
    assert_eq!(rows(&out), 12);
    let keys: std::collections::HashSet<_> = column(&out, "request_key").into_iter().collect();
    assert_eq!(keys.len(), 12, "every request key is stored once");
    let failures = fs::read_to_string(out.join("failures.jsonl")).unwrap();
    assert!(failures.trim().is_empty(), "{failures}");
    assert!(
        !String::from_utf8_lossy(&retry.stderr).contains("request(s) failed"),
        "{}",
        String::from_utf8_lossy(&retry.stderr)
    );
    let card = fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("Over all 12 rows"), "{card}");

    // Nothing is left to retry.
    let again = run(augment_command(&server, &input, &out, &["--retry-failed"]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Nothing to do"));
    assert_eq!(server.requests(), 16);
}

#[test]
fn costs_and_corpus_statistics_reach_manifest_and_card() {
    let server = FakeServer::start(Duration::from_millis(1));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 3, &[]);
    let out = dir.path().join("out");
    let prices = dir.path().join("prices.toml");
    fs::write(&prices, "[\"fake-model\"]\ninput = 1.0\noutput = 2.0\n").unwrap();

    let output = run(augment_command(
        &server,
        &input,
        &out,
        &["--prices", prices.to_str().unwrap()],
    ));

    // 12 rows of 50 prompt tokens at $1 and 9 completion tokens at $2 per million.
    let expected_cost = 12.0 * (50.0 * 1.0 + 9.0 * 2.0) / 1e6;
    let corpus = &manifest(&out)["corpus"];
    assert_eq!(corpus["rows"], 12);
    assert_eq!(corpus["prompt_tokens"], 600);
    assert_eq!(corpus["completion_tokens"], 108);
    assert_eq!(corpus["cached_tokens"], 0);
    assert!((corpus["cost_usd"].as_f64().unwrap() - expected_cost).abs() < 1e-12);
    let statistics = &corpus["statistics"];
    assert!(
        statistics["gzip_ratio"].as_f64().unwrap() > 1.0,
        "{statistics}"
    );
    // The fake texts differ only in a number, so most 4-grams are shared.
    assert!(
        statistics["self_repetition_4gram"].as_f64().unwrap() > 0.5,
        "{statistics}"
    );
    assert_eq!(statistics["self_bleu_sample"], 12);
    assert!(manifest(&out)["usage"]["cost_usd"].as_f64().unwrap() > 0.0);

    let card = fs::read_to_string(out.join("README.md")).unwrap();
    assert!(card.contains("## Corpus statistics"), "{card}");
    assert!(card.contains("$0.0008"), "{card}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("cost $0.0008"), "{stdout}");
    assert!(stdout.contains("self-BLEU"), "{stdout}");
}

/// Arguments of the entity-graph tests: 2 pairs and up to 5 triples per document.
const ENTITY_GRAPH: [&str; 6] = [
    "--strategies",
    "entigraph",
    "--entity-pairs",
    "2",
    "--entity-triples",
    "5",
];

#[test]
fn entity_graph_relates_extracted_entities() {
    let server = FakeServer::start(Duration::from_millis(1));
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("docs.jsonl");
    write_documents(&input, 3, &[]);
    let out = dir.path().join("out");
    // The rewrite strategies of `augment_command` (implications, key_concepts, 2 samples) run
    // beside the entity graph.
    let command = |server: &FakeServer| augment_command(server, &input, &out, &ENTITY_GRAPH);

    run(command(&server));
    // Per document: 4 rewrites, one extraction, then 2 samples of 2 of the 3 pairs and of the
    // only triple of the three entities that occur in the document ("Atlantis" does not).
    assert_eq!(server.requests(), 3 * (4 + 1 + 6));
    assert_eq!(rows(&out), 3 * (4 + 6));
    let extractions = fs::read_to_string(out.join("entities.jsonl")).unwrap();
    assert_eq!(extractions.lines().count(), 3, "{extractions}");
    assert!(!extractions.contains("Atlantis"));

    let entities = column(&out, "entities");
    assert_eq!(entities.iter().filter(|e| e.is_none()).count(), 12);
    let entities: Vec<String> = entities.into_iter().flatten().collect();
    assert_eq!(
        entities
            .iter()
            .filter(|e| e.matches("; ").count() == 1)
            .count(),
        12
    );
    assert_eq!(
        entities
            .iter()
            .filter(|e| e.as_str() == "Mainz; printing press; 1440")
            .count(),
        6
    );
    let prompts = server.prompts.lock().unwrap().clone();
    let relation_prompts: Vec<&String> = prompts
        .iter()
        .filter(|p| p.contains("Entities: "))
        .collect();
    assert_eq!(relation_prompts.len(), 18);
    for prompt in relation_prompts {
        assert!(
            prompt.contains("Summary of the document: A press in Mainz."),
            "{prompt}"
        );
        assert!(
            prompt.contains("printing press in Mainz around 1440"),
            "{prompt}"
        );
    }

    // A second run sends nothing: the rows are stored and the entities are read back.
    let second = run(command(&server));
    assert!(String::from_utf8_lossy(&second.stdout).contains("Nothing to do"));
    assert_eq!(server.requests(), 33);
}
