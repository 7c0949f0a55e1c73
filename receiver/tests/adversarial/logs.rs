//! Secrets in logs: a receiver process logging at debug level, driven through verified and
//! refused deliveries, a venue that cannot be reached, and the ops API with right and wrong
//! tokens, never writes its HMAC secret, the ops token (or a guess at it), or the venue's API
//! credentials.

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use alertgate_shared::{MessageId, Signer};

use crate::helpers::*;

const BINANCE_KEY: &str = "binance-api-key-3b9d0c7e51a24f68";
const BINANCE_SECRET: &str = "binance-api-secret-8c1f2e9a7d6b5043";

#[tokio::test]
async fn no_secret_token_guess_or_venue_credential_appears_in_any_log_line_at_debug_level() {
    let base = Options::default();
    let work = Workdir::new(&base);
    let d = work.path().display();
    std::fs::write(work.path().join("binance-key"), BINANCE_KEY).unwrap();
    std::fs::write(work.path().join("binance-secret"), BINANCE_SECRET).unwrap();
    let options = Options {
        extra_toml: format!(
            r#"[log]
level = "debug"
format = "json"
[broker]
kind = "binance"
[broker.binance]
base_url = "http://127.0.0.1:9"
api_key = "file:{d}/binance-key"
api_secret = "file:{d}/binance-secret"
[executor]
max_attempts = 2
retry_base_ms = 10
retry_max_ms = 20
inline_deadline_ms = 3000
"#
        ),
        ..Options::default()
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let config = work.path().join("receiver.toml");
    std::fs::write(&config, work.config(&options, &listen)).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut readers = Vec::new();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let output = Arc::clone(&output);
        readers.push(std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                output.lock().unwrap().push(line);
            }
        }));
    }
    let addr: std::net::SocketAddr = listen.parse().unwrap();
    let http = reqwest::Client::new();
    eventually("the receiver process to answer /healthz", || {
        let http = http.clone();
        async move {
            http.get(format!("http://{addr}/healthz"))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200)
        }
    })
    .await;

    let client = ProcessClient::new(&work, addr);
    let body = envelope_at(&buy("1"), time::OffsetDateTime::now_utc());
    let id = MessageId::generate().to_string();
    let placed = client.deliver(&id, &body).await;
    assert!([200, 202].contains(&placed.status), "{:?}", placed.body);
    // Signed with a key the receiver does not trust.
    let stranger = ProcessClient {
        signer: Signer::new(vec![alertgate_shared::SigningKey::generate()], vec![]).unwrap(),
        ..ProcessClient::new(&work, addr)
    };
    assert_eq!(stranger.deliver("msg_stranger", &body).await.status, 401);
    let near_miss = format!("{}X", &OPS_TOKEN[..OPS_TOKEN.len() - 1]);
    for token in [OPS_TOKEN, near_miss.as_str()] {
        let _ = http
            .get(format!("http://{addr}/v1/orders"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
        let _ = http
            .get(format!("http://{addr}/v1/messages/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap();
    }
    // The venue is unreachable: wait for the execution to give up (logged as an error).
    eventually("the order to fail at the unreachable venue", || {
        let output = Arc::clone(&output);
        async move {
            output
                .lock()
                .unwrap()
                .iter()
                .any(|l| l.contains("order failed"))
        }
    })
    .await;

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    child.wait().unwrap();
    for r in readers {
        r.join().unwrap();
    }
    let mut lines = output.lock().unwrap().clone();
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    lines.extend(
        String::from_utf8_lossy(&check.stdout)
            .lines()
            .map(str::to_owned),
    );
    lines.extend(
        String::from_utf8_lossy(&check.stderr)
            .lines()
            .map(str::to_owned),
    );

    assert!(
        lines.len() > 5,
        "too few log lines to mean anything: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains(r#""level":"DEBUG""#)),
        "debug logging was not on: {lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("delivery refused")),
        "the refused delivery is logged: {lines:#?}"
    );
    println!("{} lines checked", lines.len());
    let whsec = work.hmac.to_text().expose().to_owned();
    for (what, needle) in [
        ("the HMAC secret", whsec.trim_start_matches("whsec_")),
        ("the ops token", OPS_TOKEN),
        ("a near-miss ops token", near_miss.as_str()),
        ("the Binance API key", BINANCE_KEY),
        ("the Binance API secret", BINANCE_SECRET),
    ] {
        let leaks: Vec<&String> = lines.iter().filter(|l| l.contains(needle)).collect();
        assert!(leaks.is_empty(), "{what} was logged: {leaks:#?}");
    }
}
