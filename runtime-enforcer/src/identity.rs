//! Identities: SPIFFE IDs, the certificate authority (`ambit ca`), workload
//! certificates, and the rustls verifiers that bind a TLS peer to a SPIFFE
//! ID taken from its certificate alone.
//!
//! Keys are ECDSA P-256 (a full TLS 1.3 mTLS handshake is ~3.5× cheaper than
//! with RSA-2048). Workload certificates carry exactly one URI SAN,
//! `spiffe://TRUST_DOMAIN/ns/NS/sa/SA`, and both the server and the client
//! extended key usage: the same certificate serves a workload's outbound
//! (client) and inbound (server) side of a tunnel.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256, SanType,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use time::OffsetDateTime;

/// A workload identity: `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl SpiffeId {
    pub fn new(trust_domain: &str, namespace: &str, service_account: &str) -> Self {
        SpiffeId {
            trust_domain: trust_domain.to_owned(),
            namespace: namespace.to_owned(),
            service_account: service_account.to_owned(),
        }
    }

    /// Parse a workload SPIFFE URI; only the Kubernetes form
    /// `spiffe://TD/ns/NS/sa/SA` is an identity here.
    pub fn parse(uri: &str) -> Option<SpiffeId> {
        let rest = uri.strip_prefix("spiffe://")?;
        let mut parts = rest.split('/');
        let (td, ns_key, ns, sa_key, sa) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        if parts.next().is_some() || ns_key != "ns" || sa_key != "sa" {
            return None;
        }
        if [td, ns, sa].iter().any(|s| s.is_empty()) {
            return None;
        }
        Some(SpiffeId::new(td, ns, sa))
    }

    /// The Istio principal form: `TD/ns/NS/sa/SA`.
    pub fn principal(&self) -> String {
        format!(
            "{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spiffe://{}", self.principal())
    }
}

/// Errors of the certificate tooling.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("cannot read `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot write `{path}`: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("`{0}` holds no PEM certificate")]
    NoCertificate(String),
    #[error("`{0}` holds no PEM private key")]
    NoKey(String),
    #[error("`{path}`: {reason}")]
    Invalid { path: String, reason: String },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{0}")]
    Tls(#[from] rustls::Error),
}

/// The process-wide crypto provider (ring; TLS 1.3 only is asked of it).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|source| CertError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn write(path: &Path, text: &str, private: bool) -> Result<(), CertError> {
    let err = |source| CertError::Write {
        path: path.display().to_string(),
        source,
    };
    std::fs::write(path, text).map_err(err)?;
    if private {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    Ok(())
}

/// Every certificate of a PEM file.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let bytes = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| CertError::Invalid {
            path: path.display().to_string(),
            reason: format!("not PEM: {e}"),
        })?;
    if certs.is_empty() {
        return Err(CertError::NoCertificate(path.display().to_string()));
    }
    Ok(certs)
}

/// The private key of a PEM file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| CertError::NoKey(path.display().to_string()))
}

/// The trust bundle: every CA certificate of a PEM file.
pub fn read_bundle(path: &Path) -> Result<Arc<RootCertStore>, CertError> {
    let mut roots = RootCertStore::empty();
    for cert in read_certificates(path)? {
        roots.add(cert).map_err(|e| CertError::Invalid {
            path: path.display().to_string(),
            reason: format!("not a CA certificate: {e}"),
        })?;
    }
    Ok(Arc::new(roots))
}

/// The SPIFFE IDs among a certificate's URI SANs, and its validity.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub uris: Vec<String>,
    pub not_before: i64,
    pub not_after: i64,
    pub is_ca: bool,
}

pub fn cert_info(der: &[u8]) -> Result<CertInfo, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let mut uris = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(u) = name {
                uris.push((*u).to_owned());
            }
        }
    }
    Ok(CertInfo {
        uris,
        not_before: cert.validity().not_before.timestamp(),
        not_after: cert.validity().not_after.timestamp(),
        is_ca: cert.is_ca(),
    })
}

/// The one SPIFFE workload ID of a certificate, or why there is none.
pub fn spiffe_of(der: &[u8]) -> Result<SpiffeId, String> {
    let info = cert_info(der)?;
    let ids: Vec<SpiffeId> = info
        .uris
        .iter()
        .filter(|u| u.starts_with("spiffe://"))
        .map(|u| SpiffeId::parse(u).ok_or_else(|| format!("`{u}` is not a workload SPIFFE ID")))
        .collect::<Result<_, _>>()?;
    match ids.as_slice() {
        [id] => Ok(id.clone()),
        [] => Err("the certificate has no SPIFFE URI SAN".into()),
        _ => Err("the certificate has more than one SPIFFE URI SAN".into()),
    }
}

/// A certificate authority on disk: `ca.pem` and `ca-key.pem`.
#[derive(Debug)]
pub struct Ca {
    pub cert_pem: String,
    key: KeyPair,
    pub trust_domain: String,
}

pub const CA_CERT: &str = "ca.pem";
pub const CA_KEY: &str = "ca-key.pem";

impl Ca {
    /// A new self-signed CA for a trust domain (its URI SAN is
    /// `spiffe://TRUST_DOMAIN`).
    pub fn generate(trust_domain: &str, days: u32) -> Result<Ca, CertError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        // The name carries a digest of the key: two CAs of one trust domain
        // never share a subject, so a certificate of the other is an unknown
        // issuer, not a bad signature.
        use sha2::Digest;
        let digest = sha2::Sha256::digest(key.public_key_pem().as_bytes());
        let tag: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("ambit CA {trust_domain} {tag}"));
        params
            .distinguished_name
            .push(DnType::OrganizationName, trust_domain);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.subject_alt_names =
            vec![SanType::URI(format!("spiffe://{trust_domain}").try_into()?)];
        let now = OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::minutes(5);
        params.not_after = now + time::Duration::days(days.into());
        let cert = params.self_signed(&key)?;
        Ok(Ca {
            cert_pem: cert.pem(),
            key,
            trust_domain: trust_domain.to_owned(),
        })
    }

    /// Read `ca.pem` and `ca-key.pem` from a directory (or the two paths).
    pub fn load(cert: &Path, key: &Path) -> Result<Ca, CertError> {
        let cert_pem = String::from_utf8_lossy(&read(cert)?).into_owned();
        let key_pem = String::from_utf8_lossy(&read(key)?).into_owned();
        let key = KeyPair::from_pem(&key_pem).map_err(|e| CertError::Invalid {
            path: key.display().to_string(),
            reason: format!("not a private key: {e}"),
        })?;
        let der = read_certificates(cert)?.remove(0);
        let info = cert_info(&der).map_err(|reason| CertError::Invalid {
            path: cert.display().to_string(),
            reason,
        })?;
        let trust_domain = info
            .uris
            .iter()
            .find_map(|u| u.strip_prefix("spiffe://").filter(|td| !td.contains('/')))
            .ok_or_else(|| CertError::Invalid {
                path: cert.display().to_string(),
                reason: "the CA certificate names no trust domain (URI SAN spiffe://TRUST_DOMAIN)"
                    .into(),
            })?
            .to_owned();
        Ok(Ca {
            cert_pem,
            key,
            trust_domain,
        })
    }

    /// Write `ca.pem` and `ca-key.pem` (mode 0600) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<(), CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        write(&dir.join(CA_CERT), &self.cert_pem, false)?;
        write(&dir.join(CA_KEY), &self.key.serialize_pem(), true)
    }

    /// A workload certificate for `namespace/service_account`, valid from
    /// `not_before` to `not_after` (unix seconds; tests issue expired ones).
    pub fn issue_between(
        &self,
        namespace: &str,
        service_account: &str,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Result<Issued, CertError> {
        let id = SpiffeId::new(&self.trust_domain, namespace, service_account);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::OrganizationName, self.trust_domain.as_str());
        params.subject_alt_names = vec![SanType::URI(id.to_string().try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = not_before;
        params.not_after = not_after;
        let issuer = Issuer::from_ca_cert_pem(&self.cert_pem, &self.key)?;
        let cert = params.signed_by(&key, &issuer)?;
        Ok(Issued {
            id,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// A workload certificate valid for `days` from now.
    pub fn issue(
        &self,
        namespace: &str,
        service_account: &str,
        days: u32,
    ) -> Result<Issued, CertError> {
        let now = OffsetDateTime::now_utc();
        self.issue_between(
            namespace,
            service_account,
            now - time::Duration::minutes(5),
            now + time::Duration::days(days.into()),
        )
    }
}

/// An issued workload certificate and its key, PEM-encoded.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: SpiffeId,
    pub cert_pem: String,
    pub key_pem: String,
}

impl Issued {
    /// Write `NAME.pem` and `NAME-key.pem` (mode 0600) into `dir`.
    pub fn save(&self, dir: &Path, name: &str) -> Result<(), CertError> {
        std::fs::create_dir_all(dir).map_err(|source| CertError::Write {
            path: dir.display().to_string(),
            source,
        })?;
        write(&dir.join(format!("{name}.pem")), &self.cert_pem, false)?;
        write(&dir.join(format!("{name}-key.pem")), &self.key_pem, true)
    }

    pub fn certified_key(&self) -> Result<Arc<CertifiedKey>, CertError> {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(self.cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| CertError::Invalid {
                    path: "(issued)".into(),
                    reason: e.to_string(),
                })?;
        let key = PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(|_| CertError::NoKey("(issued)".into()))?;
        Ok(Arc::new(CertifiedKey::from_der(chain, key, &provider())?))
    }
}

/// A workload's certificate chain and key, ready for rustls, with the
/// identity its certificate carries.
#[derive(Debug, Clone)]
pub struct WorkloadCert {
    pub id: SpiffeId,
    pub key: Arc<CertifiedKey>,
}

impl WorkloadCert {
    /// Read a chain and key from PEM files; the key must match the
    /// certificate and the certificate must carry one SPIFFE ID.
    pub fn load(cert: &Path, key: &Path) -> Result<WorkloadCert, CertError> {
        let chain = read_certificates(cert)?;
        let id = spiffe_of(&chain[0]).map_err(|reason| CertError::Invalid {
            path: cert.display().to_string(),
            reason,
        })?;
        let key = read_key(key)?;
        let key =
            CertifiedKey::from_der(chain, key, &provider()).map_err(|e| CertError::Invalid {
                path: cert.display().to_string(),
                reason: format!("the key does not match the certificate: {e}"),
            })?;
        Ok(WorkloadCert {
            id,
            key: Arc::new(key),
        })
    }

    pub fn from_issued(issued: &Issued) -> Result<WorkloadCert, CertError> {
        Ok(WorkloadCert {
            id: issued.id.clone(),
            key: issued.certified_key()?,
        })
    }

    /// Seconds since the epoch when the leaf certificate expires.
    pub fn not_after(&self) -> Option<i64> {
        self.key
            .cert
            .first()
            .and_then(|c| cert_info(c).ok())
            .map(|i| i.not_after)
    }
}

/// Why a peer's certificate was refused (a metric label).
pub fn refusal_reason(e: &rustls::Error) -> &'static str {
    use rustls::{CertificateError, Error};
    match e {
        Error::InvalidCertificate(CertificateError::Expired)
        | Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => "expired",
        Error::InvalidCertificate(CertificateError::NotValidYet)
        | Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => "not-yet-valid",
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => "unknown-issuer",
        Error::InvalidCertificate(CertificateError::BadSignature) => "bad-signature",
        Error::InvalidCertificate(CertificateError::Other(o))
            if o.to_string().contains("trust domain") =>
        {
            "foreign-trust-domain"
        }
        Error::InvalidCertificate(CertificateError::Other(o))
            if o.to_string().contains("identity") =>
        {
            "wrong-identity"
        }
        Error::InvalidCertificate(_) => "invalid-certificate",
        Error::NoCertificatesPresented => "no-certificate",
        Error::PeerIncompatible(_) => "incompatible",
        Error::AlertReceived(_) => "alert",
        _ => "tls-error",
    }
}

#[derive(Debug)]
struct IdentityError(String);

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for IdentityError {}

fn identity_error(message: String) -> rustls::Error {
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(IdentityError(message)),
    )))
}

/// Verifies a client (the source side of a tunnel): the chain against the
/// trust bundle (validity, key usage), then a SPIFFE ID in the trust
/// domain. No certificate, no connection.
#[derive(Debug)]
pub struct SpiffeClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    trust_domain: String,
}

impl SpiffeClientVerifier {
    pub fn new(roots: Arc<RootCertStore>, trust_domain: &str) -> Result<Self, rustls::Error> {
        let inner = WebPkiClientVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Ok(SpiffeClientVerifier {
            inner,
            trust_domain: trust_domain.to_owned(),
        })
    }
}

fn check_trust_domain(der: &[u8], trust_domain: &str) -> Result<SpiffeId, rustls::Error> {
    let id = spiffe_of(der).map_err(|m| identity_error(format!("identity: {m}")))?;
    if id.trust_domain != trust_domain {
        return Err(identity_error(format!(
            "trust domain `{}` is not `{trust_domain}`",
            id.trust_domain
        )));
    }
    Ok(id)
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        check_trust_domain(end_entity, &self.trust_domain)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies the server (the destination side of a tunnel): the chain
/// against the trust bundle, then that its SPIFFE ID is exactly the
/// destination workload's. DNS names play no part.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Arc<RootCertStore>,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

impl SpiffeServerVerifier {
    pub fn new(roots: Arc<RootCertStore>, expected: SpiffeId) -> Self {
        SpiffeServerVerifier {
            roots,
            expected,
            provider: provider(),
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let id = check_trust_domain(end_entity, &self.expected.trust_domain)?;
        if id != self.expected {
            return Err(identity_error(format!(
                "identity `{id}` is not the destination's `{}`",
                self.expected
            )));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spiffe_ids_parse_only_the_workload_form() {
        let id = SpiffeId::parse("spiffe://cluster.local/ns/shop/sa/web").unwrap();
        assert_eq!(id.principal(), "cluster.local/ns/shop/sa/web");
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
        for bad in [
            "spiffe://cluster.local",
            "spiffe://cluster.local/ns/shop",
            "spiffe://cluster.local/ns/shop/sa/web/x",
            "spiffe://cluster.local/sa/web/ns/shop",
            "spiffe:///ns/shop/sa/web",
            "https://cluster.local/ns/shop/sa/web",
        ] {
            assert_eq!(SpiffeId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn issued_certificates_carry_the_identity_and_chain_to_the_ca() {
        let ca = Ca::generate("cluster.local", 1).unwrap();
        let issued = ca.issue("shop", "web", 1).unwrap();
        let der = CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
        assert_eq!(
            spiffe_of(&der).unwrap().to_string(),
            "spiffe://cluster.local/ns/shop/sa/web"
        );
        let ca_der = CertificateDer::from_pem_slice(ca.cert_pem.as_bytes()).unwrap();
        assert!(cert_info(&ca_der).unwrap().is_ca);
        let mut roots = RootCertStore::empty();
        roots.add(ca_der).unwrap();
        let v = SpiffeClientVerifier::new(Arc::new(roots), "cluster.local").unwrap();
        v.verify_client_cert(&der, &[], UnixTime::now()).unwrap();
    }
}
