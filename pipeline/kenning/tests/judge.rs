//! `kenning qa --answers FILE --judge-base-url URL` with an LLM judge on 127.0.0.1 that grades
//! earlier answers. Every verdict (yes, no, unclear, failed) must reach answers.jsonl and
//! qa.json, and the API key must not appear in any output.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread;

use serde_json::{Value, json};

const CANARY: &str = "sk-canary-judge-5f1e2d3c4b5a69788796a5b4c3d2e1f0";

/// What the judge server saw: one entry per request, the user message and the authorization
/// header.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A blocking chat-completions server on a free loopback port. It grades by the student's
/// answer line: `FAIL` gets a 400, `HEDGE` an unclear reply, and otherwise "Yes." when the
/// answer contains the first accepted answer and "No" when it does not. With `deny_all`, every
/// request gets a 401.
fn start_judge(deny_all: bool) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base_url = format!("http://{}/v1", listener.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let log = seen.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            let log = log.clone();
            thread::spawn(move || answer(stream, deny_all, &log));
        }
    });
    (base_url, seen)
}

fn answer(stream: TcpStream, deny_all: bool, log: &Seen) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let (mut length, mut authorization) = (0usize, String::new());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.to_ascii_lowercase().as_str() {
                "content-length" => length = value.trim().parse().unwrap(),
                "authorization" => authorization = value.trim().to_string(),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).unwrap();
    let request: Value = serde_json::from_slice(&body).unwrap();
    let prompt = request["messages"][1]["content"]
        .as_str()
        .unwrap()
        .to_string();
    log.lock().unwrap().push((prompt.clone(), authorization));

    let student = line_after(&prompt, "Student's answer: ");
    let gold = line_after(&prompt, "- ");
    let (status, body) = if deny_all {
        (401, json!({"error": {"message": "invalid API key"}}))
    } else if student.contains("FAIL") {
        (
            400,
            json!({"error": {"message": "this request is not allowed"}}),
        )
    } else {
        let reply = if student.contains("HEDGE") {
            "It depends on the reading."
        } else if student.to_lowercase().contains(&gold.to_lowercase()) {
            "Yes."
        } else {
            "No"
        };
        (
            200,
            json!({
                "choices": [{"message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 60, "completion_tokens": 2},
            }),
        )
    };
    let body = body.to_string();
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no line starting with {prefix:?} in {text:?}"))
}

/// Writes an answers.jsonl as `kenning qa` does, with one prediction per judge behaviour.
fn write_answers(dir: &Path) -> std::path::PathBuf {
    let rows = [
        (
            "What is the capital of France?",
            "Paris",
            "The city of Paris",
        ),
        ("Which planet is the largest?", "Jupiter", "Saturn"),
        ("Who wrote Hamlet?", "Shakespeare", "HEDGE perhaps Marlowe"),
        (
            "At what temperature does water boil?",
            "100 degrees",
            "FAIL",
        ),
    ];
    let text: String = rows
        .iter()
        .enumerate()
        .map(|(i, (question, gold, prediction))| {
            json!({"passage": i, "title": "Quiz", "question": question, "answers": [gold],
                   "prediction": prediction})
            .to_string()
                + "\n"
        })
        .collect();
    common::write_file(dir, "answers.jsonl", text)
}

fn judge_command(answers: &Path, out: &Path, base_url: &str) -> std::process::Command {
    let mut command = common::kenning();
    command
        .args(["qa", "--no-progress", "--answers"])
        .arg(answers)
        .arg("--out")
        .arg(out)
        .args(["--judge-base-url", base_url, "--judge-model", "judge-1"])
        .args(["--judge-api-key-env", "KENNING_TEST_JUDGE_KEY"])
        .env("KENNING_TEST_JUDGE_KEY", CANARY);
    command
}

#[test]
fn judge_verdicts_reach_answers_and_summary() {
    let dir = tempfile::tempdir().unwrap();
    let answers = write_answers(dir.path());
    let out = dir.path().join("judged");
    let (base_url, seen) = start_judge(false);

    let run = common::Run::from(judge_command(&answers, &out, &base_url).output().unwrap());
    run.assert_success();

    // One request per answer: the 400 is not retried.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert!(
        seen.iter()
            .all(|(_, auth)| auth == &format!("Bearer {CANARY}"))
    );
    assert!(seen.iter().any(|(prompt, _)| prompt.contains("- Jupiter\n")
        && prompt.contains("Student's answer: Saturn\n")));

    let rows: Vec<Value> = std::fs::read_to_string(out.join("answers.jsonl"))
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let verdicts: Vec<&str> = rows.iter().map(|r| r["judge"].as_str().unwrap()).collect();
    assert_eq!(verdicts, ["match", "no_match", "unclear", "failed"]);
    assert_eq!(rows[0]["judge_reply"], "Yes.");
    assert_eq!(rows[0]["contains"], true);
    assert!(
        rows[3]["judge_error"]
            .as_str()
            .unwrap()
            .contains("http_400"),
        "{}",
        rows[3]
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("qa.json")).unwrap()).unwrap();
    assert_eq!(summary["questions"], 4);
    assert_eq!(summary["passages"], 4);
    assert_eq!(summary["judge"]["model"], "judge-1");
    assert_eq!(summary["judge"]["accepted"], 0.25);
    assert_eq!(
        summary["judge"]["verdicts"],
        json!({"total": 4, "matched": 1, "not_matched": 1, "unclear": 1, "failed": 1})
    );
    run.assert_stdout_contains("accepted 25.0% (1 yes, 1 no, 1 unclear, 1 failed)");

    for name in ["answers.jsonl", "qa.json"] {
        let text = std::fs::read_to_string(out.join(name)).unwrap();
        assert!(!text.contains(CANARY), "the API key is in {name}");
    }
    assert!(!run.stdout.contains(CANARY), "the API key is in stdout");
    assert!(!run.stderr.contains(CANARY), "the API key is in stderr");
}

#[test]
fn qa_fails_when_the_judge_refuses_every_request() {
    let dir = tempfile::tempdir().unwrap();
    let answers = write_answers(dir.path());
    let (base_url, seen) = start_judge(true);

    let run = common::Run::from(
        judge_command(&answers, &dir.path().join("judged"), &base_url)
            .output()
            .unwrap(),
    );
    run.assert_failure()
        .assert_stderr_contains("every request to the judge")
        .assert_stderr_contains("http_401");
    assert_eq!(seen.lock().unwrap().len(), 4, "a 401 is not retried");
    assert!(!run.stderr.contains(CANARY), "the API key is in the error");
}
