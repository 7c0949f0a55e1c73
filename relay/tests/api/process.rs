//! The `alertgate-relay` binary: `check-config`, `keygen`, `run` with SIGKILL, SIGHUP, SIGTERM.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use alertgate_relay::config::Settings;
use alertgate_shared::{SecretRef, SigningKey, Verifier};
use nix::sys::signal::Signal;

use crate::helpers::*;

/// DESIGN.md section 8, verbatim.
const MINIMAL_RELAY_CONFIG: &str = r#"[server]
listen = "127.0.0.1:8080"
trusted_proxies = []            # CIDRs whose X-Forwarded-For is believed
max_body_bytes = 16384
[allowlist]
cidrs = ["52.89.214.238/32", "34.212.75.30/32", "54.218.53.128/32", "52.32.178.7/32"]  # the default
[rate_limit]
per_ip_per_second = 5
per_ip_burst = 20
global_per_second = 50
global_burst = 100
per_account_per_second = 5
per_account_burst = 20
[[accounts]]
id = "main"
secrets = ["env:ALERTGATE_SECRET_MAIN"]   # two entries during a secret rotation
[signing]
keys = ["file:certs/relay-signing.key"]   # every key signs; two during a key rotation
hmac_secrets = []                         # optional whsec_ secrets for v1 signatures
[forward]
url = "http://127.0.0.1:9000/v1/alerts"
timeout_ms = 2000
max_age_seconds = 120
# ca_file / client_cert_file / client_key_file for mTLS
[spool]
dir = "data/relay-spool"
[dedupe]
window_seconds = 300
[metrics]
listen = "127.0.0.1:9101"
# [server.tls] cert_file, key_file, tradingview_client_cert = "off" | "optional" | "required"
"#;

fn minimal_config_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relay.toml"), MINIMAL_RELAY_CONFIG).unwrap();
    let out = Command::new(BIN)
        .args(["keygen", "--out", "certs/relay-signing"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dir
}

#[test]
fn check_config_accepts_the_minimal_config_from_the_design_and_never_prints_a_secret() {
    let dir = minimal_config_dir();
    let out = Command::new(BIN)
        .args(["check-config", "--config", "relay.toml"])
        .current_dir(dir.path())
        .env("ALERTGATE_SECRET_MAIN", "tv-secret-value-123")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("env:ALERTGATE_SECRET_MAIN"), "{stdout}");
    assert!(stdout.contains("file:certs/relay-signing.key"), "{stdout}");
    assert!(
        stdout.contains("ed25519:"),
        "the key fingerprint is shown: {stdout}"
    );
    let key = std::fs::read_to_string(dir.path().join("certs/relay-signing.key")).unwrap();
    assert!(!stdout.contains("tv-secret-value-123"));
    assert!(!stdout.contains(key.trim()));
    // The printed effective config is itself a valid config.
    Settings::parse(&stdout, Path::new("printed.toml")).unwrap();
}

#[test]
fn check_config_names_an_unresolvable_secret_and_fails() {
    let dir = minimal_config_dir();
    let out = Command::new(BIN)
        .args(["check-config", "--config", "relay.toml"])
        .current_dir(dir.path())
        .env_remove("ALERTGATE_SECRET_MAIN")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ALERTGATE_SECRET_MAIN"), "{stderr}");
}

#[test]
fn check_config_refuses_unknown_keys_literal_secrets_and_missing_keys() {
    let dir = minimal_config_dir();
    let cases = [
        (
            MINIMAL_RELAY_CONFIG.replace("max_body_bytes", "max_body_byts"),
            "max_body_byts",
        ),
        (
            MINIMAL_RELAY_CONFIG.replace("env:ALERTGATE_SECRET_MAIN", "hunter2"),
            "env:NAME",
        ),
        (
            MINIMAL_RELAY_CONFIG.replace("certs/relay-signing.key", "certs/missing.key"),
            "signing.keys[0]",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(dir.path().join("bad.toml"), &text).unwrap();
        let out = Command::new(BIN)
            .args(["check-config", "--config", "bad.toml"])
            .current_dir(dir.path())
            .env("ALERTGATE_SECRET_MAIN", "x")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{expected}");
        assert!(stderr.contains(expected), "{expected}: {stderr}");
        assert!(!stderr.contains("hunter2"));
    }
}

#[test]
fn keygen_writes_a_private_key_and_refuses_to_overwrite() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("k");
    let out = Command::new(BIN)
        .arg("keygen")
        .arg("--out")
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let public = std::fs::read_to_string(dir.path().join("k.pub")).unwrap();
    assert!(stdout.contains(public.trim()), "{stdout}");
    assert!(stdout.contains("fingerprint: ed25519:"), "{stdout}");
    let mode = std::fs::metadata(dir.path().join("k.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = SigningKey::load(&SecretRef::File(dir.path().join("k.key"))).unwrap();
    assert_eq!(key.verifying_key().to_text(), public.trim());

    let again = Command::new(BIN)
        .arg("keygen")
        .arg("--out")
        .arg(&base)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("k.pub")).unwrap(),
        public,
        "not overwritten"
    );
}

fn verifies(key: &SigningKey, got: &Recorded) -> bool {
    let v = Verifier::new(vec![key.verifying_key()], vec![], 300).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    v.verify(
        Some(got.header("webhook-id")),
        Some(got.header("webhook-timestamp")),
        Some(got.header("webhook-signature")),
        &got.body,
        now,
    )
    .is_ok()
}

#[tokio::test]
async fn a_relay_killed_after_answering_200_delivers_the_alert_after_restart() {
    let files = Files::new();
    let port = alertgate_testkit::free_port().unwrap();
    let placeholder = TestReceiver::spawn().await;
    let mut settings = test_settings(&files, &placeholder);
    settings.forward.url = format!("http://127.0.0.1:{port}/v1/alerts");

    let mut relay = RelayProcess::start(files.path(), &settings, "info").await;
    let accepted = relay.post(alert("kill-9")).await;
    assert_eq!(accepted.status, 200);
    let id = accepted.json()["id"].as_str().unwrap().to_owned();
    relay.service.kill9().unwrap(); // SIGKILL: no chance to flush anything

    let receiver = TestReceiver::spawn_on(port).await;
    relay.service.start().await.unwrap(); // the same config, the same spool
    let got = receiver.wait_delivered(1).await;
    assert_eq!(got[0].header("webhook-id"), id);
    assert!(verifies(&files.key, &got[0]));
    // The duplicate window came back too.
    assert_eq!(relay.post(alert("kill-9")).await.status, 409);
}

#[tokio::test]
async fn sighup_with_a_new_key_signs_the_next_forward_with_it() {
    let files = Files::new();
    let receiver = TestReceiver::spawn().await;
    let settings = test_settings(&files, &receiver);
    let mut relay = RelayProcess::start(files.path(), &settings, "info").await;
    assert_eq!(relay.post(alert("before")).await.status, 200);
    let first = receiver.wait_delivered(1).await.remove(0);
    assert!(verifies(&files.key, &first));

    let (new_key, new_ref) = files.new_key("rotated");
    relay.settings.signing.keys = vec![new_ref];
    relay.write_config();
    relay.signal(Signal::SIGHUP);
    relay.wait_line("configuration reloaded").await;

    assert_eq!(relay.post(alert("after")).await.status, 200);
    let second = receiver.wait_delivered(2).await.remove(1);
    assert!(verifies(&new_key, &second), "signed with the new key");
    assert!(!verifies(&files.key, &second), "no longer with the old one");
}

#[tokio::test]
async fn sighup_with_a_broken_config_keeps_the_old_one_working() {
    let files = Files::new();
    let receiver = TestReceiver::spawn().await;
    let settings = test_settings(&files, &receiver);
    let mut relay = RelayProcess::start(files.path(), &settings, "info").await;

    relay.settings.accounts[0].secrets = vec![SecretRef::Env("ALERTGATE_TEST_SURELY_UNSET".into())];
    relay.settings.signing.keys = vec![SecretRef::File(files.path().join("no-such.key"))];
    relay.write_config();
    relay.signal(Signal::SIGHUP);
    let refused = relay.wait_line("reload refused").await;
    assert!(refused.contains("ALERTGATE_TEST_SURELY_UNSET"), "{refused}");

    std::fs::write(relay.service.config_path(), "this is [not toml").unwrap();
    relay.signal(Signal::SIGHUP);
    relay.wait_line("reload refused").await;

    assert_eq!(relay.post(alert("still-works")).await.status, 200);
    let got = receiver.wait_delivered(1).await.remove(0);
    assert!(verifies(&files.key, &got));
}

#[tokio::test]
async fn a_second_relay_on_the_same_spool_is_refused_at_start() {
    let files = Files::new();
    let receiver = TestReceiver::spawn().await;
    let settings = test_settings(&files, &receiver);
    let first = RelayProcess::start(files.path(), &settings, "info").await;
    // The same spool, on a port of its own.
    let mut same_spool = first.settings.clone();
    same_spool.server.listen = alertgate_testkit::loopback(0);
    let config = files.path().join("relay-2.toml");
    alertgate_testkit::config::write(&config, &same_spool).unwrap();
    let second = Command::new(BIN)
        .arg("run")
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("spool.dir") && stderr.contains("in use by process"),
        "{stderr}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_relay_cleanly() {
    let files = Files::new();
    let receiver = TestReceiver::spawn().await;
    let settings = test_settings(&files, &receiver);
    let mut relay = RelayProcess::start(files.path(), &settings, "info").await;
    assert_eq!(relay.post(alert("t")).await.status, 200);
    relay.signal(Signal::SIGTERM);
    relay.wait_line("shutting down").await;
    let status = relay
        .service
        .wait_exit(Duration::from_secs(10))
        .await
        .expect("the relay exits after SIGTERM");
    assert!(status.success(), "{status}");
}
