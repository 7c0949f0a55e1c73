//! Envelope parsing (what the receiver does after verification) never panics.
#![no_main]

use alertgate_shared::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(env) = Envelope::from_slice(data) {
        let again = Envelope::from_slice(&env.to_bytes()).ok();
        assert_eq!(again.as_ref().map(|e| &e.alert), Some(&env.alert));
    }
});
