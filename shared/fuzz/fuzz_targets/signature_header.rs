//! The `webhook-signature` header parser faces the network: it must never panic and must stay bounded.
#![no_main]

use alertgate_shared::webhooks::{parse_signature_header, MAX_SIGNATURE_TOKENS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        assert!(parse_signature_header(header).len() <= MAX_SIGNATURE_TOKENS);
    }
});
