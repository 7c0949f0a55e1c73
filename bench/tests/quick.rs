//! The harness's quick mode, end to end against the debug binaries: every scenario must produce
//! successful requests and a well-formed JSON file. Nothing here judges timing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

/// The folder holding the workspace binaries (`target/<profile>`), next to this test executable.
fn bin_dir() -> PathBuf {
    let relay = alertgate_testkit::binary("alertgate-relay").unwrap();
    alertgate_testkit::binary("alertgate-receiver").unwrap();
    relay.parent().unwrap().to_path_buf()
}

fn number(v: &Value, path: &str) -> f64 {
    let mut cur = v;
    for key in path.split('.') {
        cur = match key.parse::<usize>() {
            Ok(i) => &cur[i],
            Err(_) => &cur[key],
        };
    }
    cur.as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in the results: {cur}"))
}

#[test]
fn quick_mode_runs_every_scenario_against_the_real_binaries_and_writes_json() {
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("results.json");
    let run = Command::new(env!("CARGO_BIN_EXE_alertgate-load"))
        .arg("--quick")
        .arg("--bin-dir")
        .arg(bin_dir())
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "alertgate-load --quick failed\nstdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        stdout.contains("| scenario | result | target |"),
        "no table printed:\n{stdout}"
    );

    let results: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(results["plan"]["mode"], "quick");
    assert!(number(&results, "machine.cpus") >= 1.0);

    // 1. Reject path: the bare server answered 200 and the relay 403, both more than zero times.
    assert!(number(&results, "reject.bare.ok") > 0.0);
    assert!(number(&results, "reject.relay.ok") > 0.0);
    assert!(number(&results, "reject.ratio") > 0.0);

    // 2. Accept path: every connection count got accepted alerts.
    let levels = results["accept"]["levels"].as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for level in levels {
        assert!(
            number(level, "relay.ok") > 0.0,
            "no accepted alerts: {level}"
        );
        assert!(number(level, "relay.latency.count") > 0.0);
    }

    // 3. End to end: alerts were accepted and their orders were seen recorded, both ways.
    assert!(number(&results, "end_to_end.accepted") > 0.0);
    assert!(number(&results, "end_to_end.recorded") > 0.0);
    assert!(number(&results, "end_to_end.polled_recorded") > 0.0);

    // 4. Flood: the flood was refused and the legitimate alerts went through and were placed.
    assert!(number(&results, "flood.flood.ok") > 0.0);
    assert!(number(&results, "flood.legit_accepted") > 0.0);
    assert!(number(&results, "flood.legit_placed") > 0.0);

    // 6. The receiver alone: signed deliveries were executed, every answer a 200, and the
    //    orders it lists are filled.
    assert!(number(&results, "receiver.receiver.ok") > 0.0);
    assert_eq!(
        number(&results, "receiver.receiver.ok"),
        number(&results, "receiver.receiver.latency.count"),
        "every delivery answered 200: {}",
        results["receiver"]
    );
    assert!(number(&results, "receiver.filled_of_listed.1") > 0.0);
    assert_eq!(
        number(&results, "receiver.filled_of_listed.0"),
        number(&results, "receiver.filled_of_listed.1")
    );

    // 7. Against Flask, when gunicorn is installed (it is skipped, and null, otherwise).
    if results["compare"].is_object() {
        let round = &results["compare"]["rounds"][0];
        assert!(number(round, "flask.ok") > 0.0, "{round}");
        assert!(number(round, "relay.ok") > 0.0, "{round}");
        assert!(number(round, "ratio") > 0.0);
    }

    // 5. Memory was read from /proc for both services.
    assert!(number(&results, "accept.idle.0.rss_kib") > 0.0);
    assert!(number(&results, "accept.idle.1.rss_kib") > 0.0);
    assert!(number(&results, "flood.relay_memory.hwm_kib") > 0.0);
}
