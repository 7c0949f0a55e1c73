//! mTLS with the certificates `alertgate-receiver certs` makes.

use std::sync::Arc;

use alertgate_receiver::config::TlsConfig;

use crate::helpers::{spawn_in, Options, Workdir};

fn client(
    dir: &std::path::Path,
    addr: std::net::SocketAddr,
    with_identity: bool,
) -> reqwest::Client {
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let mut builder = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .resolve("receiver.test", addr);
    if with_identity {
        let mut identity = std::fs::read(dir.join("relay-client.pem")).unwrap();
        identity.extend(std::fs::read(dir.join("relay-client.key")).unwrap());
        builder = builder.identity(reqwest::Identity::from_pem(&identity).unwrap());
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn with_a_client_ca_the_receiver_serves_only_clients_holding_a_certificate_from_it() {
    let work = Arc::new(Workdir::new(&Options::default()));
    let certs = work.path().join("certs");
    alertgate_receiver::certs::generate(&certs, "receiver.test").unwrap();
    let dir = certs.clone();
    let options = Options::configured(move |s| {
        s.server.tls = Some(TlsConfig {
            cert_file: dir.join("receiver.pem"),
            key_file: dir.join("receiver.key"),
            client_ca_file: Some(dir.join("ca.pem")),
        });
    });
    let app = spawn_in(work.clone(), &options).await;
    let url = format!("https://receiver.test:{}/healthz", app.addr.port());

    let ok = client(&certs, app.addr, true)
        .get(&url)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let refused = client(&certs, app.addr, false).get(&url).send().await;
    assert!(
        refused.is_err(),
        "a client without a certificate is refused: {refused:?}"
    );
}
