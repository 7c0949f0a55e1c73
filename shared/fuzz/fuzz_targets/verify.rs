//! The verifier on arbitrary id, timestamp, signature and body: never panics, and never accepts
//! anything but a signature made with the trusted key.
#![no_main]

use alertgate_shared::{HmacSecret, Signer, SigningKey, Verifier};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_795_338_000;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_seed(&[3u8; 32]);
    let Ok(secret) = HmacSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") else { return };
    let Ok(verifier) = Verifier::new(vec![key.verifying_key()], vec![secret], 300) else { return };
    let text = String::from_utf8_lossy(data);
    let mut parts = text.splitn(4, '\n');
    let (id, ts, sig, body) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
    if verifier.verify(id, ts, sig, body.as_bytes(), NOW).is_ok() {
        // Only reachable if the fuzzer forged a signature: re-sign and compare to be sure.
        let Ok(signer) = Signer::new(vec![key], vec![]) else { return };
        let ts: i64 = ts.and_then(|t| t.parse().ok()).unwrap_or(0);
        let expected = signer.sign(id.unwrap_or(""), ts, body.as_bytes());
        assert!(sig.unwrap_or("").contains(&expected[4..]), "accepted a forged signature");
    }
});
