//! End-to-end guarantees, with the real binaries as processes: every alert the relay answered 200
//! becomes exactly one paper order, whatever is killed or rotated along the way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alertgate_e2e::{
    binary, config, eventually, free_addr, free_port, keygen, service, Ready, Stack, TradingView,
    SECRET,
};
use alertgate_receiver::config::TlsConfig;
use alertgate_shared::SecretRef;
use alertgate_testkit::until;
use serde_json::Value;

fn message_ids(orders: &[Value]) -> Vec<String> {
    orders
        .iter()
        .map(|o| o["message_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// Asserts that `accepted` (relay ids answered 200) each became exactly one order, and nothing else did.
fn assert_exactly_one_order_each(accepted: &BTreeSet<String>, orders: &[Value]) {
    let ids = message_ids(orders);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let doubled: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(
        doubled.is_empty(),
        "alerts with more than one order: {doubled:?}"
    );
    let missing: Vec<_> = accepted
        .iter()
        .filter(|id| !counts.contains_key(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "accepted alerts without an order: {missing:?}"
    );
    let client_ids: BTreeSet<_> = orders
        .iter()
        .map(|o| o["client_order_id"].to_string())
        .collect();
    assert_eq!(
        client_ids.len(),
        orders.len(),
        "client order ids must be unique"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_posted_to_the_relay_becomes_exactly_one_paper_order() {
    let stack = Stack::start().await.unwrap();
    let answer = stack.send(&Stack::alert(1, SECRET)).await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.json());
    assert_eq!(answer.json()["status"], "accepted");
    let id = answer.json()["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("msg_"));

    let orders = stack
        .wait_for_orders(1, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(orders.len(), 1);
    let order = &orders[0];
    assert_eq!(order["message_id"], id.as_str());
    assert_eq!(order["account"], "main");
    assert_eq!(order["symbol"], "BTCUSDT");
    assert_eq!(order["side"], "buy");
    assert_eq!(order["quantity"], "0.001");
    assert_eq!(order["venue"], "paper");
    assert_eq!(order["status"], "filled");

    // The same alert again is the relay's duplicate, and still one order.
    let again = stack.send(&Stack::alert(1, SECRET)).await.unwrap();
    assert_eq!(again.status, 409, "{:?}", again.json());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stack.orders().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_alerts_survive_the_receiver_being_killed_and_restarted_twice() {
    let mut stack = Stack::start().await.unwrap();
    let mut accepted = BTreeSet::new();
    for n in 0..200 {
        if n == 50 || n == 130 {
            stack.receiver.kill9().unwrap();
        }
        if n == 80 || n == 160 {
            stack.receiver.start().await.unwrap();
        }
        let answer = stack.send(&Stack::alert(n, SECRET)).await.unwrap();
        assert_eq!(answer.status, 200, "alert {n}: {:?}", answer.json());
        accepted.insert(answer.json()["id"].as_str().unwrap().to_owned());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let orders = stack
        .wait_for_orders(200, Duration::from_secs(90))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orders = stack.orders().await.unwrap_or(orders);
    assert_eq!(orders.len(), 200);
    assert_exactly_one_order_each(&accepted, &orders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_alert_the_relay_answered_survives_a_relay_sigkill_mid_stream() {
    let mut stack = Stack::start().await.unwrap();
    let mut accepted = BTreeSet::new();
    let mut sent = 0;
    for n in 0..150 {
        if n == 40 || n == 100 {
            // Stop the receiver too, so the killed relay has undelivered alerts in its spool.
            if n == 40 {
                stack.receiver.kill9().unwrap();
            }
            stack.relay.kill9().unwrap();
            stack.relay.start().await.unwrap();
            if n == 40 {
                stack.receiver.start().await.unwrap();
            }
        }
        sent += 1;
        if let Ok(answer) = stack.send(&Stack::alert(n, SECRET)).await {
            if answer.status == 200 {
                accepted.insert(answer.json()["id"].as_str().unwrap().to_owned());
            }
        }
    }
    assert!(
        accepted.len() >= 140,
        "the relay refused too much: {} of {sent}",
        accepted.len()
    );
    let orders = stack
        .wait_for_orders(accepted.len(), Duration::from_secs(90))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let orders = stack.orders().await.unwrap_or(orders);
    assert!(orders.len() <= sent);
    assert_exactly_one_order_each(&accepted, &orders);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_under_continuous_traffic_rejects_nothing() {
    let mut stack = Stack::start().await.unwrap();
    let root = stack.dir.path().to_path_buf();
    let file = |name: &str| SecretRef::File(root.join(name));
    let old_key = file("relay-signing.key");
    let old_pub = file("relay-signing.pub");
    keygen(&root.join("relay-signing-2")).unwrap();
    let new_key = file("relay-signing-2.key");
    let new_pub = file("relay-signing-2.pub");

    // A sender posting every 10 ms with whichever secret is current.
    let secret = Arc::new(Mutex::new(SECRET.to_owned()));
    let stop = Arc::new(AtomicBool::new(false));
    let results = Arc::new(Mutex::new(Vec::<(u16, Value)>::new()));
    let relay_url = stack.webhook_url();
    let sender = {
        let (secret, stop, results) = (secret.clone(), stop.clone(), results.clone());
        tokio::spawn(async move {
            let tradingview = TradingView::new();
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let s = secret.lock().unwrap().clone();
                let alert = Stack::alert(n, &s);
                let r = tradingview
                    .post(&relay_url, alert.to_string())
                    .await
                    .unwrap();
                results.lock().unwrap().push((r.status, r.json()));
                n += 1;
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    // Between two rotation steps at least 15 more alerts go through, however busy the machine:
    // the proof is in the count of alerts sent across each step, not in how long a step took.
    let pause = || {
        let results = results.clone();
        async move {
            let start = results.lock().unwrap().len();
            until("15 more alerts through the relay", || async {
                results.lock().unwrap().len() >= start + 15
            })
            .await;
        }
    };

    // Signing key: receivers learn the new key, the relay signs with both, drops the old,
    // receivers forget the old.
    pause().await;
    stack.receiver_config.verify.public_keys = vec![old_pub.clone(), new_pub.clone()];
    stack.write_receiver_config().unwrap();
    stack.receiver.reload().await.unwrap();
    pause().await;
    stack.relay_config.signing.keys = vec![old_key.clone(), new_key.clone()];
    stack.write_relay_config().unwrap();
    stack.relay.reload().await.unwrap();
    pause().await;
    stack.relay_config.signing.keys = vec![new_key.clone()];
    stack.write_relay_config().unwrap();
    stack.relay.reload().await.unwrap();
    pause().await;
    // Let anything signed before the switch drain before the old key is forgotten.
    stack.receiver_config.verify.public_keys = vec![new_pub.clone()];
    stack.write_receiver_config().unwrap();
    stack.receiver.reload().await.unwrap();
    pause().await;

    // Account secret: accept both, switch the sender, drop the old one.
    let env = |name: &str| SecretRef::Env(name.into());
    stack.relay_config.accounts[0].secrets = vec![env("E2E_SECRET_MAIN"), env("E2E_SECRET_NEXT")];
    stack.write_relay_config().unwrap();
    stack.relay.reload().await.unwrap();
    pause().await;
    *secret.lock().unwrap() = format!("{SECRET}-next");
    pause().await;
    stack.relay_config.accounts[0].secrets = vec![env("E2E_SECRET_NEXT")];
    stack.write_relay_config().unwrap();
    stack.relay.reload().await.unwrap();
    pause().await;

    stop.store(true, Ordering::SeqCst);
    sender.await.unwrap();
    let results = results.lock().unwrap().clone();
    let rejected: Vec<_> = results.iter().filter(|(s, _)| *s != 200).collect();
    assert!(
        rejected.is_empty(),
        "rejected during rotation: {rejected:?}"
    );
    assert!(
        results.len() > 100,
        "too little traffic to prove anything: {}",
        results.len()
    );
    let accepted: BTreeSet<String> = results
        .iter()
        .map(|(_, b)| b["id"].as_str().unwrap().to_owned())
        .collect();
    let orders = stack
        .wait_for_orders(accepted.len(), Duration::from_secs(60))
        .await
        .unwrap();
    assert_exactly_one_order_each(&accepted, &orders);
    let failures = stack
        .metric(
            stack.receiver_metrics().unwrap(),
            "alertgate_receiver_verify_failures_total",
            "",
        )
        .await
        .unwrap();
    assert_eq!(
        failures, 0.0,
        "the receiver refused signatures during the rotation"
    );

    // And the retired credentials no longer work.
    assert_eq!(
        stack
            .send(&Stack::alert(100_000, SECRET))
            .await
            .unwrap()
            .status,
        401
    );
    let old = alertgate_shared::SigningKey::load(&old_key).unwrap();
    let signer = alertgate_shared::Signer::new(vec![old], vec![]).unwrap();
    let body = br#"{"type":"tradingview.alert","account":"main","received_at":"2026-11-22T09:00:00.000Z","source_ip":"127.0.0.1","alert":{}}"#;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let r = stack
        .http
        .post(format!(
            "http://{}/v1/alerts",
            stack.receiver_config.server.listen
        ))
        .header("webhook-id", "msg_oldkeyreplay")
        .header("webhook-timestamp", now.to_string())
        .header(
            "webhook-signature",
            signer.sign("msg_oldkeyreplay", now, body),
        )
        .header("content-type", "application/json")
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
}

fn run_certs(out: &Path) {
    let status = Command::new(binary("alertgate-receiver").unwrap())
        .args(["certs", "--out"])
        .arg(out)
        .args(["--receiver-host", "localhost"])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_requiring_client_certificates_refuses_a_relay_without_one_and_accepts_the_right_one(
) {
    let certs = tempfile::tempdir().unwrap();
    run_certs(certs.path());
    let c = |f: &str| certs.path().join(f);
    let without_cert = Stack::start_with(|relay, receiver| {
        receiver.server.tls = Some(TlsConfig {
            cert_file: c("receiver.pem"),
            key_file: c("receiver.key"),
            client_ca_file: Some(c("ca.pem")),
        });
        let port = receiver.server.listen.port();
        relay.forward.url = format!("https://localhost:{port}/v1/alerts");
        relay.forward.ca_file = Some(c("ca.pem"));
    })
    .await
    .unwrap();
    assert_eq!(
        without_cert
            .send(&Stack::alert(1, SECRET))
            .await
            .unwrap()
            .status,
        200
    );

    // The same receiver, now reached by a relay that presents the CA-signed client certificate.
    let mut with_cert = without_cert.relay_config.clone();
    with_cert.server.listen = free_addr().unwrap();
    with_cert.metrics.listen = free_addr().unwrap();
    with_cert.spool.dir = without_cert.dir.path().join("spool-2");
    with_cert.forward.client_cert_file = Some(c("relay-client.pem"));
    with_cert.forward.client_key_file = Some(c("relay-client.key"));
    let path = without_cert.dir.path().join("relay-2.toml");
    config::write(&path, &with_cert).unwrap();
    let ready = Ready::Http(with_cert.server.listen);
    let mut relay2 = service("relay-2", "alertgate-relay", &path, ready).unwrap();
    relay2.start().await.unwrap();
    let r = TradingView::new()
        .post(
            &format!("http://{}/webhook", with_cert.server.listen),
            Stack::alert(2, SECRET).to_string(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let accepted_id = r.json()["id"].as_str().unwrap().to_owned();

    // Read the journal over mTLS with the relay's client identity.
    let mut pem = std::fs::read(c("relay-client.pem")).unwrap();
    pem.extend(std::fs::read(c("relay-client.key")).unwrap());
    let client = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(c("ca.pem")).unwrap()).unwrap(),
        )
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "https://localhost:{}/v1/orders",
        without_cert.receiver_config.server.listen.port()
    );
    let read_orders = || async {
        let body: Value = client
            .get(&url)
            .bearer_auth(alertgate_e2e::OPS_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["orders"].as_array().cloned().unwrap_or_default()
    };
    let orders = eventually("the order over mTLS", Duration::from_secs(10), || async {
        Some(read_orders().await).filter(|o| !o.is_empty())
    })
    .await
    .unwrap();
    // Give the certificate-less relay time for several attempts: none of them may get through.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let orders_after = read_orders().await;
    assert_eq!(
        orders.len(),
        1,
        "exactly the relay with the certificate got through"
    );
    assert_eq!(orders_after.len(), 1);
    assert_eq!(orders_after[0]["message_id"], accepted_id.as_str());

    // A plain client without a certificate is refused at the TLS layer.
    let bare = reqwest::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(c("ca.pem")).unwrap()).unwrap(),
        )
        .build()
        .unwrap();
    assert!(bare
        .get(&url)
        .bearer_auth(alertgate_e2e::OPS_TOKEN)
        .send()
        .await
        .is_err());
}

fn caddy() -> std::path::PathBuf {
    let path = std::path::PathBuf::from(std::env::var("CADDY").unwrap_or_else(|_| "caddy".into()));
    let found = Command::new(&path)
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "caddy is required for this test: `apt-get install caddy` (.ci/run installs it)"
    );
    path
}

#[test]
fn the_shipped_caddyfile_validates() {
    let caddyfile = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/Caddyfile");
    let out = Command::new(caddy())
        .args(["validate", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_caddy_the_relay_sees_the_real_client_and_a_forged_forwarded_for_does_not_pass() {
    let stack = Stack::start_with(|relay, _| {
        relay.server.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        relay.allowlist.cidrs = vec!["127.0.0.3/32".parse().unwrap()];
    })
    .await
    .unwrap();
    let caddy_port = free_port().unwrap();
    let caddyfile = stack.dir.path().join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{caddy_port} {{\n\treverse_proxy {}\n}}\n",
            stack.relay_config.server.listen
        ),
    )
    .unwrap();
    let mut proxy = std::process::Command::new(caddy())
        .args(["run", "--adapter", "caddyfile", "--config"])
        .arg(&caddyfile)
        .env("HOME", stack.dir.path())
        .env("XDG_DATA_HOME", stack.dir.path())
        .env("XDG_CONFIG_HOME", stack.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{caddy_port}/webhook");
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(IpAddr::V4(Ipv4Addr::from(ip)))
            .build()
            .unwrap()
    };
    // Caddy's first start on a fresh machine (its data dirs, a busy CI machine) can take
    // longer than ten seconds: a readiness wait, not a timing check.
    eventually("caddy to listen", Duration::from_secs(60), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", caddy_port))
            .await
            .ok()
    })
    .await
    .unwrap();

    // The listed client, through Caddy: accepted, and recorded with its own address.
    let r = TradingView::from(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3)))
        .post(&url, Stack::alert(1, SECRET).to_string())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let id = r.json()["id"].as_str().unwrap().to_owned();
    stack
        .wait_for_orders(1, Duration::from_secs(20))
        .await
        .unwrap();
    let message: Value = stack
        .http
        .get(format!(
            "http://{}/v1/messages/{id}",
            stack.receiver_config.server.listen
        ))
        .bearer_auth(alertgate_e2e::OPS_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        message.to_string().contains("127.0.0.3"),
        "source ip not recorded: {message}"
    );

    // An unlisted client forging the listed address in X-Forwarded-For: refused.
    for forged in ["127.0.0.3", "127.0.0.3, 127.0.0.1", "52.89.214.238"] {
        let r = from([127, 0, 0, 4])
            .post(&url)
            .header("x-forwarded-for", forged)
            .body(Stack::alert(2, SECRET).to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "forged {forged:?} got through");
    }
    let _ = proxy.kill();
    let _ = proxy.wait();
}

#[test]
fn the_quickstart_script_turns_its_sample_alert_into_a_paper_order_and_can_be_rerun() {
    let home = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/quickstart.sh");
    let bin_dir = binary("alertgate-relay")
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    for run in 0..2 {
        let out = Command::new("bash")
            .arg(&script)
            .arg("--once")
            .env("ALERTGATE_HOME", home.path())
            .env("ALERTGATE_BIN_DIR", &bin_dir)
            .env("RELAY_PORT", free_port().unwrap().to_string())
            .env("RECEIVER_PORT", free_port().unwrap().to_string())
            .env("RELAY_METRICS_PORT", free_port().unwrap().to_string())
            .env("RECEIVER_METRICS_PORT", free_port().unwrap().to_string())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "run {run} failed:\n{stdout}\n{stderr}"
        );
        assert!(
            stdout.contains("became a paper order"),
            "run {run}:\n{stdout}"
        );
        assert!(
            stdout.contains("BTCUSDT"),
            "the order table should show the order:\n{stdout}"
        );
        // The configs are made once: the second run reuses them (and their ports).
        if run == 1 {
            assert_eq!(
                stdout
                    .matches("generating the relay's Ed25519 signing key")
                    .count(),
                0
            );
        }
    }
}

/// Runs `BIN check-config --config FILE` in `cwd` with the e2e secrets in the environment.
fn check_config(bin: &str, config: &Path, cwd: &Path) -> std::process::Output {
    Command::new(binary(bin).unwrap())
        .args(["check-config", "--config"])
        .arg(config)
        .current_dir(cwd)
        .env("ALERTGATE_SECRET_MAIN", SECRET)
        .env("ALERTGATE_OPS_TOKEN", alertgate_e2e::OPS_TOKEN)
        .output()
        .unwrap()
}

#[test]
fn every_shipped_config_passes_check_config_and_prints_no_secret() {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cwd.path().join("certs")).unwrap();
    keygen(&cwd.path().join("certs/relay-signing")).unwrap();
    // The Docker configs use absolute container paths: point them into the temp folder.
    let root = cwd.path().display().to_string();
    let key_text = std::fs::read_to_string(cwd.path().join("certs/relay-signing.key")).unwrap();
    for (bin, file) in [
        ("alertgate-relay", "relay.example.toml"),
        ("alertgate-receiver", "receiver.example.toml"),
        ("alertgate-relay", "docker/relay.toml"),
        ("alertgate-receiver", "docker/receiver.toml"),
    ] {
        let text = std::fs::read_to_string(deploy.join(file))
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .replace("/etc/alertgate/", &format!("{root}/certs/"))
            .replace("/var/lib/alertgate", &format!("{root}/state"))
            .replace("0.0.0.0:", "127.0.0.1:");
        let path = cwd.path().join(file.replace('/', "-"));
        std::fs::write(&path, text).unwrap();
        let out = check_config(bin, &path, cwd.path());
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "{file} failed check-config:\n{stdout}\n{stderr}"
        );
        for secret in [SECRET, alertgate_e2e::OPS_TOKEN, key_text.trim()] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "{file}: a secret was printed"
            );
        }
    }
}

#[test]
fn check_config_refuses_a_venue_whose_credentials_cannot_be_resolved() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(cwd.path().join("certs")).unwrap();
    keygen(&cwd.path().join("certs/relay-signing")).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/receiver.example.toml");
    let text = std::fs::read_to_string(example).unwrap().replace(
        "kind = \"paper\"",
        "kind = \"binance\"\n\n[broker.binance]\napi_key = \"env:E2E_SURELY_UNSET_BINANCE_KEY\"\napi_secret = \"env:E2E_SURELY_UNSET_BINANCE_SECRET\"",
    );
    let path = cwd.path().join("receiver.toml");
    std::fs::write(&path, text).unwrap();
    let out = check_config("alertgate-receiver", &path, cwd.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a venue without credentials must not pass check-config"
    );
    assert!(
        stderr.contains("E2E_SURELY_UNSET_BINANCE_KEY"),
        "the error must name the variable: {stderr}"
    );
}

/// The paper book's placements (client order id → status), read from the journal file.
fn paper_book(db: &Path) -> Vec<(String, String)> {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return Vec::new();
    };
    let Ok(mut stmt) = conn.prepare("SELECT client_order_id, status FROM paper_orders ORDER BY 1")
    else {
        return Vec::new();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_after_an_entry_filled_and_before_its_exits_went_out_places_each_exit_once(
) {
    // Each paper answer takes 1.5 s, so there is a window between the entry's fill and its exits.
    let mut stack = Stack::start_with(|_, r| {
        r.broker.paper = Some(alertgate_receiver::broker::config::PaperConfig {
            fill_delay_ms: 1500,
            ..Default::default()
        });
    })
    .await
    .unwrap();
    let db = stack.dir.path().join("receiver.db");
    let mut alert = Stack::alert(0, SECRET);
    alert["take_profit"] = "43000".into();
    alert["stop_loss"] = "41000".into();
    let answer = stack.send(&alert).await.unwrap();
    assert_eq!(answer.status, 200, "{:?}", answer.json());

    let entry_filled = eventually(
        "the entry in the paper book",
        Duration::from_secs(20),
        || {
            let db = db.clone();
            async move {
                let book = paper_book(&db);
                (book.len() == 1 && book[0].0.ends_with("-0")).then_some(book)
            }
        },
    )
    .await
    .unwrap();
    stack.receiver.kill9().unwrap();
    assert_eq!(entry_filled[0].1, "filled");
    let at_kill = paper_book(&db);
    assert!(
        at_kill.len() < 3,
        "the kill must come before both exits were placed: {at_kill:?}"
    );

    stack.receiver.start().await.unwrap();
    let orders = stack
        .wait_for_orders(3, Duration::from_secs(60))
        .await
        .unwrap();
    let book = paper_book(&db);
    let ids: Vec<&str> = book.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids.len(),
        3,
        "entry and two exits, each placed once: {book:?}"
    );
    assert!(ids[0].ends_with("-0") && ids[1].ends_with("-0o1") && ids[2].ends_with("-0o2"));
    let mut statuses: Vec<&str> = orders.iter().filter_map(|o| o["status"].as_str()).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, ["filled", "placed", "placed"], "{orders:?}");
}
