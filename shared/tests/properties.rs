//! Property tests for Standard Webhooks: what must hold for every body, id, timestamp and header.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alertgate_shared::webhooks::parse_signature_header;
use alertgate_shared::{HmacSecret, Signer, SigningKey, Verifier, VerifyError};
use proptest::prelude::*;

const NOW: i64 = 1_795_338_000;

fn keys() -> (Signer, Verifier) {
    let key = SigningKey::from_seed(&[7u8; 32]);
    let secret = HmacSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let signer = Signer::new(vec![key.clone()], vec![secret.clone()]).unwrap();
    let verifier = Verifier::new(vec![key.verifying_key()], vec![secret], 300).unwrap();
    (signer, verifier)
}

fn ed_only() -> (Signer, Verifier) {
    let key = SigningKey::from_seed(&[9u8; 32]);
    (
        Signer::new(vec![key.clone()], vec![]).unwrap(),
        Verifier::new(vec![key.verifying_key()], vec![], 300).unwrap(),
    )
}

fn mac_only() -> (Signer, Verifier) {
    let secret = HmacSecret::parse("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    (
        Signer::new(vec![], vec![secret.clone()]).unwrap(),
        Verifier::new(vec![], vec![secret], 300).unwrap(),
    )
}

fn id_strategy() -> impl Strategy<Value = String> {
    "msg_[A-Za-z0-9_-]{1,40}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn every_body_signed_verifies(body in proptest::collection::vec(any::<u8>(), 0..2048),
                                  id in id_strategy(), skew in -300i64..=300) {
        let (signer, verifier) = keys();
        let sig = signer.sign(&id, NOW + skew, &body);
        let ts = (NOW + skew).to_string();
        prop_assert_eq!(verifier.verify(Some(&id), Some(&ts), Some(&sig), &body, NOW), Ok(()));
    }

    #[test]
    fn any_single_byte_change_of_the_body_fails(body in proptest::collection::vec(any::<u8>(), 1..512),
                                                pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        for (signer, verifier) in [ed_only(), mac_only()] {
            let sig = signer.sign("msg_a", NOW, &body);
            let mut tampered = body.clone();
            let i = pos.index(tampered.len());
            tampered[i] ^= flip;
            prop_assert_eq!(
                verifier.verify(Some("msg_a"), Some(&NOW.to_string()), Some(&sig), &tampered, NOW),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn any_change_of_the_id_fails(id in id_strategy(), other in id_strategy()) {
        prop_assume!(id != other);
        for (signer, verifier) in [ed_only(), mac_only()] {
            let sig = signer.sign(&id, NOW, b"{}");
            prop_assert_eq!(
                verifier.verify(Some(&other), Some(&NOW.to_string()), Some(&sig), b"{}", NOW),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn any_change_of_the_timestamp_fails(delta in -300i64..=300) {
        prop_assume!(delta != 0);
        for (signer, verifier) in [ed_only(), mac_only()] {
            let sig = signer.sign("msg_a", NOW, b"{}");
            let ts = (NOW + delta).to_string();
            prop_assert_eq!(
                verifier.verify(Some("msg_a"), Some(&ts), Some(&sig), b"{}", NOW),
                Err(VerifyError::BadSignature)
            );
        }
    }

    #[test]
    fn any_single_byte_change_of_the_signature_fails(pos in any::<prop::sample::Index>(), flip in 1u8..=255) {
        for (signer, verifier) in [ed_only(), mac_only()] {
            let sig = signer.sign("msg_a", NOW, b"{\"a\":1}");
            let mut bytes = sig.into_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= flip;
            // A flipped byte may no longer be UTF-8, which a header could not carry anyway.
            if let Ok(tampered) = String::from_utf8(bytes) {
                prop_assert_eq!(
                    verifier.verify(Some("msg_a"), Some(&NOW.to_string()), Some(&tampered), b"{\"a\":1}", NOW),
                    Err(VerifyError::BadSignature)
                );
            }
        }
    }

    #[test]
    fn the_header_parser_never_panics(header in ".{0,600}") {
        let tokens = parse_signature_header(&header);
        prop_assert!(tokens.len() <= alertgate_shared::webhooks::MAX_SIGNATURE_TOKENS);
    }

    #[test]
    fn the_verifier_never_panics_on_arbitrary_headers(id in ".{0,80}", ts in ".{0,20}", sig in ".{0,300}",
                                                      body in proptest::collection::vec(any::<u8>(), 0..128)) {
        let (_, verifier) = keys();
        let _ = verifier.verify(Some(&id), Some(&ts), Some(&sig), &body, NOW);
    }
}
