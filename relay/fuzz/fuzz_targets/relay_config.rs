//! The relay's TOML settings: parsing arbitrary text never panics, and whatever parses and
//! validates prints (`check-config`) as TOML that parses back to the same settings.
#![no_main]

use std::path::Path;

use alertgate_relay::Settings;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(settings) = Settings::parse(text, Path::new("fuzz.toml")) else {
        return;
    };
    let printed = settings.to_toml();
    let again = Settings::parse(&printed, Path::new("printed.toml"))
        .unwrap_or_else(|e| panic!("the printed config does not parse: {e}\n{printed}"));
    assert_eq!(again, settings);
});
