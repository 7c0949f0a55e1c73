//! `deploy/relay.example.toml`: valid as shipped, every key documented, defaults true.

use std::path::Path;

use alertgate_relay::config::Settings;

const EXAMPLE: &str = include_str!("../../../deploy/relay.example.toml");

/// The example with every commented `key = value` line (and `[server.tls]`) uncommented.
fn uncommented() -> String {
    EXAMPLE
        .lines()
        .map(|line| {
            let Some(rest) = line.strip_prefix("# ") else {
                return line.to_owned();
            };
            let is_key = rest.split_once(" = ").is_some_and(|(k, _)| {
                !k.is_empty() && k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            });
            if is_key || rest.starts_with("[server.tls]") {
                rest.to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_example_config_is_valid_as_shipped() {
    Settings::parse(EXAMPLE, Path::new("relay.example.toml")).unwrap();
}

#[test]
fn every_commented_default_in_the_example_is_the_real_default() {
    let shipped = Settings::parse(EXAMPLE, Path::new("relay.example.toml")).unwrap();
    let mut all = Settings::parse(&uncommented(), Path::new("uncommented.toml")).unwrap();
    // The optional parts the example shows but that are off by default.
    assert!(all.server.tls.is_some());
    all.server.tls = None;
    for f in [
        &mut all.forward.ca_file,
        &mut all.forward.client_cert_file,
        &mut all.forward.client_key_file,
    ] {
        assert!(f.take().is_some());
    }
    assert!(
        !all.forward.urls.is_empty(),
        "the example shows forward.urls"
    );
    all.forward.urls.clear();
    assert_eq!(all, shipped);
}

#[test]
fn every_key_of_the_configuration_appears_in_the_example() {
    let all = Settings::parse(&uncommented(), Path::new("uncommented.toml")).unwrap();
    let rendered = all.to_toml();
    let text = uncommented();
    for line in rendered.lines() {
        if let Some((key, _)) = line.split_once(" = ") {
            let key = key.trim();
            assert!(
                text.contains(&format!("{key} = ")),
                "{key} is not in deploy/relay.example.toml"
            );
        }
    }
}
