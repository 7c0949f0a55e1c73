//! The receiver's TOML settings: parsing arbitrary text never panics, and what parses prints
//! (`check-config`) as TOML that parses back to the same settings. Only deserialization is fuzzed:
//! `validate` reads the referenced key files and environment.
#![no_main]

use std::path::Path;

use alertgate_receiver::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = alertgate_shared::config::parse::<Settings>(text, Path::new("fuzz.toml"))
    else {
        return;
    };
    let printed = settings.to_toml();
    let again = alertgate_shared::config::parse::<Settings>(&printed, Path::new("printed.toml"))
        .unwrap_or_else(|e| panic!("the printed config does not parse: {e}\n{printed}"));
    assert_eq!(again, settings);
});
