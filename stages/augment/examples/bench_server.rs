//! A loopback OpenAI-compatible server for the augment benchmark: every `POST` gets a fixed
//! chat completion after a fixed latency, over HTTP/1.1 keep-alive connections.
//!
//! Usage: `bench_server PORT LATENCY_MS [THREADS]`. It listens on 127.0.0.1 only, prints
//! `listening` once it accepts connections, and runs until it is killed.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The completion every request gets; `usage` is what the tokens-per-minute check reads.
const BODY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":0,"model":"bench-model","choices":[{"index":0,"message":{"role":"assistant","content":"A rewrite of the document about the printing press in Mainz."},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":12,"total_tokens":62}}"#;

fn main() {
    let arguments: Vec<String> = std::env::args().collect();
    if arguments.len() < 3 {
        eprintln!("usage: bench_server PORT LATENCY_MS [THREADS]");
        std::process::exit(2);
    }
    let port: u16 = arguments[1].parse().expect("PORT is a number");
    let latency = Duration::from_millis(arguments[2].parse().expect("LATENCY_MS is a number"));
    let threads: usize = arguments
        .get(3)
        .map_or(1, |t| t.parse().expect("THREADS is a number"));

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("the runtime starts");
    runtime.block_on(async move {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the port is free");
        println!("listening");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(serve(stream, latency));
        }
    });
}

/// Answers the requests of one connection until the client closes it.
async fn serve(mut stream: TcpStream, latency: Duration) {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{BODY}",
        BODY.len()
    );
    let mut buffer: Vec<u8> = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        // Read one request: the head, then `content-length` bytes of body.
        let (head_end, length) = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buffer[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (end + 4, length);
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        };
        while buffer.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.drain(..head_end + length);

        tokio::time::sleep(latency).await;
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
    }
}
