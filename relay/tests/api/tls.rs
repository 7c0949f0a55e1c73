//! The relay terminating TLS itself, with TradingView's client certificate checked.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use alertgate_relay::config::{ClientCertMode, TlsSettings};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::helpers::*;

struct Pki {
    ca_pem: String,
    /// cert + key PEM of TradingView's client certificate.
    tradingview: String,
    /// cert + key PEM of a client certificate from the same CA with another subject.
    impostor: String,
}

fn client_cert(ca: &CertifiedIssuer<'_, KeyPair>, cn: &str, o: &str) -> String {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.distinguished_name.push(DnType::OrganizationName, o);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    format!("{}{}", cert.pem(), key.serialize_pem())
}

fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut srv = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    srv.distinguished_name.push(DnType::CommonName, "localhost");
    srv.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    srv.use_authority_key_identifier_extension = true;
    let srv_key = KeyPair::generate().unwrap();
    let srv_cert = srv.signed_by(&srv_key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), srv_cert.pem()).unwrap();
    std::fs::write(dir.join("server.key"), srv_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    Pki {
        ca_pem: ca.pem(),
        tradingview: client_cert(&ca, "TradingView Webhooks", "TradingView, Inc."),
        impostor: client_cert(&ca, "TradingView Webhooks", "Someone Else"),
    }
}

fn tls_client(pki: &Pki, identity: Option<&str>, addr: SocketAddr) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .resolve("localhost", addr)
        .timeout(Duration::from_secs(5));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(id.as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn tls_relay(mode: ClientCertMode) -> (TestRelay, Pki) {
    let mut pki = None;
    let relay = spawn_relay_with(|s, files| {
        pki = Some(make_pki(files.path()));
        s.server.tls = Some(TlsSettings {
            cert_file: files.path().join("server.pem"),
            key_file: files.path().join("server.key"),
            tradingview_client_cert: mode,
            client_ca_file: Some(files.path().join("ca.pem")),
        });
    })
    .await;
    (relay, pki.unwrap())
}

async fn post(client: &reqwest::Client, relay: &TestRelay, id: &str) -> u16 {
    let url = format!("https://localhost:{}/webhook", relay.addr.port());
    client
        .post(url)
        .body(alert(id))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn with_required_client_certs_only_tradingviews_certificate_gets_in() {
    let (relay, pki) = tls_relay(ClientCertMode::Required).await;
    assert_eq!(
        post(
            &tls_client(&pki, Some(&pki.tradingview), relay.addr),
            &relay,
            "tv"
        )
        .await,
        200
    );
    assert_eq!(
        post(&tls_client(&pki, None, relay.addr), &relay, "anon").await,
        403
    );
    assert_eq!(
        post(
            &tls_client(&pki, Some(&pki.impostor), relay.addr),
            &relay,
            "fake"
        )
        .await,
        403
    );
    let health = tls_client(&pki, None, relay.addr)
        .get(format!("https://localhost:{}/healthz", relay.addr.port()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "health needs no certificate");
    let got = relay.receiver.wait_delivered(1).await;
    assert_eq!(got[0].json()["alert"]["id"], "tv");
}

#[tokio::test]
async fn with_optional_client_certs_a_client_without_one_is_served() {
    let (relay, pki) = tls_relay(ClientCertMode::Optional).await;
    assert_eq!(
        post(&tls_client(&pki, None, relay.addr), &relay, "anon").await,
        200
    );
    assert_eq!(
        post(
            &tls_client(&pki, Some(&pki.tradingview), relay.addr),
            &relay,
            "tv"
        )
        .await,
        200
    );
}

#[tokio::test]
async fn plain_http_is_not_served_on_a_tls_listener() {
    let (relay, _pki) = tls_relay(ClientCertMode::Off).await;
    let result = relay
        .client
        .post(relay.url("/webhook"))
        .body(alert("x"))
        .send()
        .await;
    assert!(result.is_err() || result.unwrap().status() != 200);
}

/// A receiver that only talks to clients with a certificate from the test CA (mTLS).
async fn mtls_receiver(dir: &Path) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    use warp::Filter;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(dir.join("ca.pem")).unwrap())
        .unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from_pem_file(dir.join("server.pem")).unwrap()],
            PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap(),
        )
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let record = std::sync::Arc::clone(&seen);
    let route = warp::path!("v1" / "alerts")
        .and(warp::body::bytes())
        .map(move |body: bytes::Bytes| {
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            warp::reply::Response::new("{}".into())
        })
        .recover(|_| async {
            Ok::<_, std::convert::Infallible>(warp::reply::Response::new("".into()))
        })
        .unify();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let settings = alertgate_relay::config::ServerSettings::default();
    tokio::spawn(async move {
        alertgate_relay::server::serve(
            listener,
            Some(std::sync::Arc::new(config)),
            &alertgate_relay::server::options(&settings),
            route,
            std::future::pending(),
        )
        .await;
    });
    (addr, seen)
}

#[tokio::test]
async fn alerts_are_forwarded_over_mtls_with_the_configured_ca_and_client_certificate() {
    let files = std::sync::Arc::new(Files::new());
    let pki = make_pki(files.path());
    std::fs::write(files.path().join("relay-client.pem"), &pki.impostor).unwrap(); // cert + key PEM
    let (addr, seen) = mtls_receiver(files.path()).await;
    let receiver = TestReceiver::spawn().await;
    let mut settings = test_settings(&files, &receiver);
    settings.forward.url = format!("https://localhost:{}/v1/alerts", addr.port());
    settings.forward.ca_file = Some(files.path().join("ca.pem"));
    settings.forward.client_cert_file = Some(files.path().join("relay-client.pem"));
    settings.forward.client_key_file = Some(files.path().join("relay-client.pem"));
    let relay = start(
        settings,
        files,
        receiver,
        std::sync::Arc::new(alertgate_shared::SystemClock),
    )
    .await;
    assert_eq!(relay.post_alert("mtls").await.status, 200);
    until("delivery over mTLS", || async {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    assert!(seen.lock().unwrap()[0].contains("\"mtls\""));
}
