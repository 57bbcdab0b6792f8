//! `loopcast serve` as a user starts it: the README's main command on a free port, asked
//! over HTTP, stopped with SIGTERM; and a bad configuration refused with the field.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::loopcast;

/// One HTTP/1.1 exchange on a fresh connection: the status code and the body.
fn http(address: &str, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

#[test]
fn serve_answers_forecasts_and_drains_on_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loopcast"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    assert!(banner.contains("loopcast-small (embedded, cpu)"), "{banner}");
    let address = banner.split("http://").nth(1).unwrap().split_whitespace().next().unwrap().to_string();

    let mut ready = 0;
    for _ in 0..600 {
        ready = http(&address, "GET", "/ready", b"").0;
        if ready == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(ready, 200, "never ready");
    let request =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/requests/forecast.json")).unwrap();
    let (status, body) = http(&address, "POST", "/v1/forecast", &request);
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["model"], "loopcast-small");
    assert_eq!(answer["series"][1]["id"], "api");
    assert_eq!(answer["series"][0]["channels"][2]["quantiles"][2]["values"].as_array().unwrap().len(), 48);

    let term = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(term.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "{status}: {rest}");
    assert!(rest.contains("stopped after draining"), "{rest}");
}

#[test]
fn a_bad_configuration_exits_65_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("loopcast.toml");
    std::fs::write(&path, "[batching]\nqueue_capacity = 0\n").unwrap();
    let out = loopcast(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(65));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("batching.queue_capacity") && stderr.contains("loopcast.toml"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let out = loopcast(&["serve", "--device", "tpu"]);
    assert_eq!(out.status.code(), Some(65), "{}", String::from_utf8_lossy(&out.stderr));
}
