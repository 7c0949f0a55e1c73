//! `alertgate-receiver certs`: a private CA, the receiver's server certificate and the relay's
//! client certificate, for mTLS between the two. `ca.key` is written 0600 and is only needed to
//! issue more certificates: keep it on the private side, never copy it to the relay.

use std::path::{Path, PathBuf};

use alertgate_shared::keys::write_new_file;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// The files `certs` writes, in `--out`.
pub const FILES: [&str; 6] = [
    "ca.pem",
    "ca.key",
    "receiver.pem",
    "receiver.key",
    "relay-client.pem",
    "relay-client.key",
];

/// Why certificates could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file already exists (nothing was written).
    #[error("{0} already exists; refusing to overwrite (move it away or choose another --out)")]
    Exists(PathBuf),
    /// Key generation or signing failed.
    #[error("cannot create the certificates: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// Writing failed.
    #[error(transparent)]
    Write(#[from] alertgate_shared::keys::KeyError),
}

/// Paths of what was written.
#[derive(Debug, Clone)]
pub struct Written {
    /// Every file, in [`FILES`] order.
    pub files: Vec<PathBuf>,
}

fn validity(params: &mut CertificateParams, days: i64) {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(days);
}

/// Writes the CA, `receiver.pem` (SAN `receiver_host`) and `relay-client.pem` into `out`.
/// Refuses to overwrite any existing file.
pub fn generate(out: &Path, receiver_host: &str) -> Result<Written, CertsError> {
    let paths: Vec<PathBuf> = FILES.iter().map(|f| out.join(f)).collect();
    if let Some(existing) = paths.iter().find(|p| p.exists()) {
        return Err(CertsError::Exists(existing.clone()));
    }

    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "alertgate private CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    validity(&mut ca_params, 3650);
    let ca_key = KeyPair::generate()?;
    let ca_key_pem = ca_key.serialize_pem();
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let mut server_params = CertificateParams::new(vec![receiver_host.to_owned()])?;
    server_params
        .distinguished_name
        .push(DnType::CommonName, receiver_host);
    server_params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    validity(&mut server_params, 825);
    let server_key = KeyPair::generate()?;
    let server = server_params.signed_by(&server_key, &ca)?;

    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params
        .distinguished_name
        .push(DnType::CommonName, "alertgate-relay");
    client_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    validity(&mut client_params, 825);
    let client_key = KeyPair::generate()?;
    let client = client_params.signed_by(&client_key, &ca)?;

    let contents: [(String, u32); 6] = [
        (ca.pem(), 0o644),
        (ca_key_pem, 0o600),
        (server.pem(), 0o644),
        (server_key.serialize_pem(), 0o600),
        (client.pem(), 0o644),
        (client_key.serialize_pem(), 0o600),
    ];
    for (path, (text, mode)) in paths.iter().zip(contents) {
        write_new_file(path, text.as_bytes(), mode)?;
    }
    Ok(Written { files: paths })
}
