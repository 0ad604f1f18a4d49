//! TLS to PostgreSQL as libpq reads it: `sslmode` (`disable`, `prefer`, `require`,
//! `verify-full` with `sslrootcert`) taken out of the connection string, since rust-postgres
//! knows neither `verify-full` nor `sslrootcert`, and a rustls connector for the mode.

use super::*;

/// The TLS a connection string asks for, as libpq reads `sslmode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SslMode {
    /// Never.
    Disable,
    /// When the server offers it (libpq's default), without checking its certificate.
    Prefer,
    /// Always, without checking the certificate (encryption against eavesdroppers only).
    Require,
    /// Always, the certificate checked against `sslrootcert` and the host name.
    VerifyFull,
}

/// Takes libpq's TLS settings (`sslmode`, `sslrootcert`) out of a connection string, URL or
/// `key=value` form: rust-postgres knows neither `verify-full` nor `sslrootcert`. Returns the
/// rest of the string, the mode and the root certificate file.
pub(super) fn tls_settings(spec: &str) -> Result<(String, SslMode, Option<String>), StoreError> {
    let (mut mode, mut root) = (None::<String>, None::<String>);
    let mut take = |key: &str, value: String| match key {
        "sslmode" => mode = Some(value),
        _ => root = Some(value),
    };
    let rest = if spec.contains("://") {
        match spec.split_once('?') {
            None => spec.to_owned(),
            Some((base, query)) => {
                let mut kept = vec![];
                for param in query.split('&').filter(|p| !p.is_empty()) {
                    match url::form_urlencoded::parse(param.as_bytes()).next() {
                        Some((k, v)) if k == "sslmode" || k == "sslrootcert" => take(&k, v.into_owned()),
                        _ => kept.push(param),
                    }
                }
                if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
            }
        }
    } else {
        let mut kept = vec![];
        for kv in spec.split_whitespace() {
            match kv.split_once('=') {
                Some((k @ ("sslmode" | "sslrootcert"), v)) => take(k, v.trim_matches('\'').to_owned()),
                _ => kept.push(kv),
            }
        }
        kept.join(" ")
    };
    let mode = match mode.as_deref() {
        None | Some("prefer") | Some("allow") => SslMode::Prefer,
        Some("disable") => SslMode::Disable,
        Some("require") => SslMode::Require,
        Some("verify-full") => SslMode::VerifyFull,
        Some("verify-ca") => {
            return Err(StoreError(
                "store: sslmode=verify-ca is not supported; use verify-full (the certificate and the host name)".into(),
            ));
        }
        Some(other) => {
            return Err(StoreError(format!(
                "store: unknown sslmode '{other}' (disable, prefer, require or verify-full)"
            )));
        }
    };
    if mode == SslMode::VerifyFull && root.is_none() {
        return Err(StoreError(
            "store: sslmode=verify-full needs sslrootcert=/path/to/ca.pem (the certificate authority to trust)".into(),
        ));
    }
    Ok((rest, mode, root))
}

/// The TLS connector for `mode`: rustls with the ring provider (as the rest of Bastion), the
/// server's certificate checked against the certificates of `root` (PEM) with `verify-full`,
/// only its handshake signatures otherwise.
pub(super) fn connector(mode: SslMode, root: Option<&str>) -> Result<MakeRustlsConnect, StoreError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError(format!("TLS: {e}")))?;
    let config = match (mode, root) {
        (SslMode::VerifyFull, Some(path)) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?
            {
                let cert = cert.map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?;
                roots.add(cert).map_err(|e| StoreError(format!("sslrootcert {path}: {e}")))?;
            }
            if roots.is_empty() {
                return Err(StoreError(format!("sslrootcert {path}: no certificate in it")));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(Unverified(provider)))
            .with_no_client_auth(),
    };
    Ok(MakeRustlsConnect::new(config))
}

/// `sslmode=require`/`prefer`, as libpq: the channel is encrypted and the handshake signed by
/// the certificate's key, but whose certificate it is is not checked (that is `verify-full`).
#[derive(Debug)]
pub(super) struct Unverified(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
