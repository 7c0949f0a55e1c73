//! `check-config` on DESIGN.md's minimal receiver config (verbatim) and on the example config.

use std::path::Path;
use std::process::Command;

use alertgate_shared::SigningKey;

use crate::helpers::BIN;

/// DESIGN.md section 8, minimal receiver config, unchanged.
const MINIMAL: &str = r#"[server]
listen = "127.0.0.1:9000"
# [server.tls] cert_file, key_file, client_ca_file (client certificates required when set)
[verify]
public_keys = ["file:certs/relay-signing.pub"]
hmac_secrets = []
tolerance_seconds = 300
[store]
path = "data/receiver.db"
[dedupe]
window_seconds = 300
[broker]
kind = "paper"          # paper | binance | alpaca | http
# [broker.binance]
# base_url = "https://testnet.binance.vision"
# api_key = "env:BINANCE_API_KEY"
# api_secret = "env:BINANCE_API_SECRET"       # HMAC key; or private_key = "file:..." for an Ed25519 key
# recv_window_ms = 5000
# [broker.alpaca]
# base_url = "https://paper-api.alpaca.markets"
# key_id = "env:APCA_API_KEY_ID"
# secret_key = "env:APCA_API_SECRET_KEY"
# [broker.http]
# url = "https://oms.internal/orders"
# hmac_secrets = ["env:OMS_WHSEC"]            # Standard Webhooks v1 signing of the forwarded order
[risk]
max_alert_age_seconds = 120
max_quantity = "1000"
max_notional = "1000000"
max_orders_per_minute = 60
allowed_symbols = []    # empty: any
kill_switch_file = "data/KILL"
[symbols]
"BINANCE:BTCUSDT" = "BTCUSDT"
[ops]
token = "env:ALERTGATE_OPS_TOKEN"
[metrics]
listen = "127.0.0.1:9102"
"#;

fn check_config(dir: &Path, file: &str, token: Option<&str>) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir)
        .args(["check-config", "--config", file])
        .env_remove("ALERTGATE_OPS_TOKEN");
    if let Some(t) = token {
        cmd.env("ALERTGATE_OPS_TOKEN", t);
    }
    cmd.output().unwrap()
}

fn dir_with_public_key() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    SigningKey::generate()
        .write_pair(&dir.path().join("certs/relay-signing"))
        .unwrap();
    dir
}

#[test]
fn the_minimal_config_from_the_design_passes_check_config_unchanged() {
    let dir = dir_with_public_key();
    std::fs::write(dir.path().join("receiver.toml"), MINIMAL).unwrap();
    let out = check_config(dir.path(), "receiver.toml", Some("a-long-ops-token"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("env:ALERTGATE_OPS_TOKEN"), "{stdout}");
    assert!(
        !stdout.contains("a-long-ops-token"),
        "secrets are never printed"
    );
}

#[test]
fn check_config_names_a_missing_environment_variable_and_fails() {
    let dir = dir_with_public_key();
    std::fs::write(dir.path().join("receiver.toml"), MINIMAL).unwrap();
    let out = check_config(dir.path(), "receiver.toml", None);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("ops.token") && stderr.contains("ALERTGATE_OPS_TOKEN"),
        "{stderr}"
    );
}

#[test]
fn check_config_refuses_an_unknown_key_with_its_name() {
    let dir = dir_with_public_key();
    std::fs::write(
        dir.path().join("receiver.toml"),
        MINIMAL.replace("max_quantity", "max_qty"),
    )
    .unwrap();
    let out = check_config(dir.path(), "receiver.toml", Some("t"));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_qty"));
}

#[test]
fn the_example_config_passes_check_config() {
    let dir = dir_with_public_key();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/receiver.example.toml");
    std::fs::copy(example, dir.path().join("receiver.toml")).unwrap();
    let out = check_config(dir.path(), "receiver.toml", Some("t"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn check_config_resolves_every_venues_credentials() {
    let dir = dir_with_public_key();
    let venues = "[[venues]]\nname = \"sim\"\nkind = \"paper\"\nexchanges = [\"SIM\"]\n\
                  [[venues]]\nname = \"stocks\"\nkind = \"alpaca\"\nexchanges = [\"NASDAQ\"]\n\
                  key_id = \"env:AG_TEST_ALPACA_KEY_ID\"\nsecret_key = \"env:AG_TEST_ALPACA_SECRET\"\n";
    let text = MINIMAL.replace(
        "[broker]\nkind = \"paper\"          # paper | binance | alpaca | http\n",
        venues,
    );
    assert!(text.contains("[[venues]]"));
    std::fs::write(dir.path().join("receiver.toml"), text).unwrap();

    let missing = check_config(dir.path(), "receiver.toml", Some("t"));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(!missing.status.success(), "{stderr}");
    assert!(
        stderr.contains("venues \"stocks\"") && stderr.contains("AG_TEST_ALPACA_KEY_ID"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .current_dir(dir.path())
        .args(["check-config", "--config", "receiver.toml"])
        .env("ALERTGATE_OPS_TOKEN", "t")
        .env("AG_TEST_ALPACA_KEY_ID", "PKTEST")
        .env("AG_TEST_ALPACA_SECRET", "alpaca-secret-value")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("[[venues]]") && stdout.contains("name = \"stocks\""),
        "{stdout}"
    );
    assert!(
        !stdout.contains("alpaca-secret-value"),
        "secrets are never printed"
    );
}
