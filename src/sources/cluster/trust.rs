//! The API server's certificate, trusted as kubectl (Go's crypto/x509) trusts it: a served
//! certificate that is byte for byte one of the kubeconfig's CA certificates is trusted whatever
//! its CA flag (a self-signed serving certificate pinned as `certificate-authority-data`, what
//! `openssl req -x509` makes), with its validity and the host name still checked; anything else
//! goes through normal chain validation against those CAs (WebPKI).

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};
use std::sync::Arc;

#[derive(Debug)]
pub struct KubectlTrust {
    roots: Vec<CertificateDer<'static>>,
    /// Chain validation; `None` when no root parses as a trust anchor (only pinned
    /// certificates can then be trusted).
    chain: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl KubectlTrust {
    /// Trust in `roots` (DER), the certificates of `certificate-authority(-data)`.
    pub fn new(roots: &[Vec<u8>], provider: Arc<CryptoProvider>) -> Self {
        let roots: Vec<CertificateDer<'static>> = roots
            .iter()
            .map(|der| CertificateDer::from(der.clone()))
            .collect();
        let mut store = RootCertStore::empty();
        store.add_parsable_certificates(roots.iter().cloned());
        let chain = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .ok();
        Self {
            roots,
            chain,
            provider,
        }
    }
}

impl ServerCertVerifier for KubectlTrust {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        if self
            .roots
            .iter()
            .any(|root| root.as_ref() == end_entity.as_ref())
        {
            check_validity(end_entity, now)?;
            check_name(end_entity, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        match &self.chain {
            Some(chain) => {
                chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(
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
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(
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

fn check_validity(der: &CertificateDer<'_>, now: UnixTime) -> Result<(), Error> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref())
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    let validity = certificate.validity();
    if now < validity.not_before.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    if now > validity.not_after.timestamp() {
        return Err(Error::InvalidCertificate(CertificateError::Expired));
    }
    Ok(())
}

fn check_name(der: &CertificateDer<'_>, server_name: &ServerName<'_>) -> Result<(), Error> {
    let certificate = webpki::EndEntityCert::try_from(der)
        .map_err(|_| Error::InvalidCertificate(CertificateError::BadEncoding))?;
    certificate
        .verify_is_valid_for_subject_name(server_name)
        .map_err(|_| Error::InvalidCertificate(CertificateError::NotValidForName))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    };
    use std::sync::atomic::{AtomicU32, Ordering};

    /// Every test certificate gets a name of its own, so issuers are told apart by name.
    fn params_for(names: &[&str]) -> CertificateParams {
        static NEXT: AtomicU32 = AtomicU32::new(1);
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("test certificate {serial}"));
        params
    }

    fn provider() -> Arc<CryptoProvider> {
        Arc::new(rustls::crypto::ring::default_provider())
    }

    fn name(text: &str) -> ServerName<'static> {
        ServerName::try_from(text.to_string()).unwrap()
    }

    fn now() -> UnixTime {
        UnixTime::now()
    }

    struct Made {
        der: Vec<u8>,
        params: CertificateParams,
        key: KeyPair,
    }

    fn self_signed(names: &[&str], ca: bool) -> Made {
        let key = KeyPair::generate().unwrap();
        let mut params = params_for(names);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        }
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Made { der, params, key }
    }

    fn signed_by(names: &[&str], issuer: &Made, ca: bool) -> Made {
        let key = KeyPair::generate().unwrap();
        let mut params = params_for(names);
        if ca {
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        }
        let issuer = Issuer::new(issuer.params.clone(), &issuer.key);
        let der = params.signed_by(&key, &issuer).unwrap().der().to_vec();
        Made { der, params, key }
    }

    fn verify(roots: &[&Made], served: &Made, chain: &[&Made], host: &str) -> Result<(), Error> {
        let roots: Vec<Vec<u8>> = roots.iter().map(|made| made.der.clone()).collect();
        let trust = KubectlTrust::new(&roots, provider());
        let chain: Vec<CertificateDer<'static>> = chain
            .iter()
            .map(|made| CertificateDer::from(made.der.clone()))
            .collect();
        trust
            .verify_server_cert(
                &CertificateDer::from(served.der.clone()),
                &chain,
                &name(host),
                &[],
                now(),
            )
            .map(|_| ())
    }

    #[test]
    fn a_self_signed_ca_serving_as_itself_is_trusted_for_its_names_only() {
        let cert = self_signed(&["127.0.0.1", "localhost"], true);
        verify(&[&cert], &cert, &[], "localhost").unwrap();
        verify(&[&cert], &cert, &[], "127.0.0.1").unwrap();
        assert_eq!(
            verify(&[&cert], &cert, &[], "kube.example.com").unwrap_err(),
            Error::InvalidCertificate(CertificateError::NotValidForName)
        );
    }

    #[test]
    fn a_pinned_self_signed_leaf_is_trusted() {
        let leaf = self_signed(&["kube.internal"], false);
        verify(&[&leaf], &leaf, &[], "kube.internal").unwrap();
    }

    #[test]
    fn a_chain_through_an_intermediate_verifies_against_the_root() {
        let root = self_signed(&[], true);
        let intermediate = signed_by(&[], &root, true);
        let leaf = signed_by(&["localhost"], &intermediate, false);
        verify(&[&root], &leaf, &[&intermediate], "localhost").unwrap();
        // Without the intermediate the chain is broken.
        assert!(verify(&[&root], &leaf, &[], "localhost").is_err());
    }

    #[test]
    fn a_bundle_of_several_cas_trusts_each() {
        let first = self_signed(&[], true);
        let second = self_signed(&[], true);
        let leaf = signed_by(&["localhost"], &second, false);
        verify(&[&first, &second], &leaf, &[], "localhost").unwrap();
    }

    #[test]
    fn a_certificate_from_another_ca_is_refused() {
        let ours = self_signed(&[], true);
        let theirs = self_signed(&[], true);
        let leaf = signed_by(&["localhost"], &theirs, false);
        assert_eq!(
            verify(&[&ours], &leaf, &[], "localhost").unwrap_err(),
            Error::InvalidCertificate(CertificateError::UnknownIssuer)
        );
        // A self-signed certificate that is not the pinned one is not trusted either.
        let other = self_signed(&["localhost"], true);
        assert!(verify(&[&ours], &other, &[], "localhost").is_err());
    }

    #[test]
    fn an_expired_pinned_certificate_is_refused() {
        let key = KeyPair::generate().unwrap();
        let mut params = params_for(&["localhost"]);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let expired = Made { der, params, key };
        assert_eq!(
            verify(&[&expired], &expired, &[], "localhost").unwrap_err(),
            Error::InvalidCertificate(CertificateError::Expired)
        );
    }
}
