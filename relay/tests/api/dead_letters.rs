//! `alertgate-relay dead-letters list|replay` against a running relay: replayed letters go back
//! into the spool with their original `webhook-id`, `received_at` and envelope bytes.

use std::process::Command;

use alertgate_testkit::config;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_alertgate-relay");

fn cli(config: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .arg("dead-letters")
        .args(args)
        .arg("--config")
        .arg(config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn dead_letters_are_listed_and_replayed_into_the_running_relay_with_their_original_id() {
    let relay = spawn_relay().await;
    let config_path = relay.files.path().join("relay.toml");
    config::write(&config_path, &relay.settings).unwrap();
    relay.receiver.set_status(422);
    let first = relay.post_alert("dl-1").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let second = relay.post_alert("dl-2").await.json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    until("two dead letters", || async {
        relay.dead_letters().len() == 2
    })
    .await;
    let refused = relay.receiver.received();

    let (ok, table, err) = cli(&config_path, &["list"]);
    assert!(ok, "{err}");
    assert!(table.starts_with("ID"), "{table}");
    assert!(
        table.contains(&first) && table.contains("rejected_422"),
        "{table}"
    );
    let (ok, json, err) = cli(&config_path, &["list", "--json"]);
    assert!(ok, "{err}");
    let rows: Vec<serde_json::Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["id"], second.as_str());

    // The receiver is fixed; one letter is replayed by id while the relay runs.
    relay.receiver.set_status(200);
    let (ok, out, err) = cli(&config_path, &["replay", "--id", &first]);
    assert!(ok, "{err}");
    assert!(out.contains("1 letter(s) queued"), "{out}");
    let delivered = relay.receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].header("webhook-id"), first);
    let original = refused
        .iter()
        .find(|r| r.header("webhook-id") == first)
        .unwrap();
    assert_eq!(
        delivered[0].body, original.body,
        "the envelope is sent byte for byte, received_at included"
    );

    let (ok, _, err) = cli(&config_path, &["replay", "--id", "msg_unknown"]);
    assert!(!ok);
    assert!(err.contains("msg_unknown"), "{err}");

    // Replaying everything sends both again under their own ids: a receiver that has an id
    // answers duplicate (see the receiver's redelivery tests), so nothing is placed twice.
    let (ok, _, err) = cli(&config_path, &["replay", "--all"]);
    assert!(ok, "{err}");
    let delivered = relay.receiver.wait_delivered(3).await;
    let mut ids: Vec<String> = delivered[1..]
        .iter()
        .map(|r| r.header("webhook-id").to_owned())
        .collect();
    ids.sort();
    let mut want = vec![first.clone(), second.clone()];
    want.sort();
    assert_eq!(ids, want);
    assert!(
        std::fs::read_dir(relay.settings.spool.dir.join("replay"))
            .unwrap()
            .next()
            .is_none(),
        "taken requests are deleted"
    );
}

#[test]
fn replay_needs_exactly_one_selection() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relay.toml");
    std::fs::write(&config, "").unwrap();
    let (ok, _, err) = cli(&config, &["replay"]);
    assert!(!ok);
    assert!(err.contains("--id") || err.contains("required"), "{err}");
    let (ok, _, err) = cli(
        &config,
        &["replay", "--all", "--since", "2026-01-01T00:00:00Z"],
    );
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
}
