//! Certificates made at test time, in the shapes real clusters hand out: a CA that signs the API
//! server's serving certificate (kubeadm's), a self-signed CA serving as itself (`openssl req
//! -x509`), a pinned self-signed leaf, a chain through an intermediate; and a client CA whose
//! certificates the server accepts as credentials.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::server::WebPkiClientVerifier;
use std::sync::Arc;

/// How the serving certificate is made, and so what the kubeconfig must trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Serving {
    /// A CA signs the serving certificate; the kubeconfig trusts the CA.
    #[default]
    CaSigned,
    /// One self-signed certificate with `CA:TRUE` serves and is the trusted CA.
    SelfSignedCa,
    /// One self-signed certificate with `CA:FALSE` serves and is pinned as the trusted CA.
    PinnedLeaf,
    /// A root signs an intermediate that signs the serving certificate; the server sends the
    /// intermediate, the kubeconfig trusts the root.
    ViaIntermediate,
}

pub struct TestCa {
    pub ca_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
}

/// The server side of one TLS setup.
pub struct ServerTls {
    /// What the kubeconfig's `certificate-authority-data` holds.
    pub trust_pem: String,
    pub server_config: Arc<rustls::ServerConfig>,
    pub client_ca: ClientCa,
}

/// A CA for client certificates: the server takes a certificate it signed as a credential.
pub struct ClientCa {
    params: CertificateParams,
    key: KeyPair,
    pub der: Vec<u8>,
}

impl ClientCa {
    fn new() -> Self {
        let key = KeyPair::generate().unwrap();
        let params = ca_params("infermesh test client CA");
        let der = params.self_signed(&key).unwrap().der().to_vec();
        Self { params, key, der }
    }

    /// A client certificate (PEM) for the key in `key_pkcs8_pem`, named `user`.
    pub fn issue(&self, key_pkcs8_pem: &str, user: &str) -> String {
        let subject = KeyPair::from_pem(key_pkcs8_pem).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let issuer = Issuer::new(self.params.clone(), &self.key);
        params.signed_by(&subject, &issuer).unwrap().pem()
    }
}

fn ca_params(common_name: &str) -> CertificateParams {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params
}

fn serving_params(names: &[String]) -> CertificateParams {
    let mut params = CertificateParams::new(names.to_vec()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params
}

/// A fresh CA and a serving certificate for `127.0.0.1` and `localhost` signed by it.
pub fn make_ca(common_name: &str) -> TestCa {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let server = make(Serving::CaSigned, &names, common_name);
    TestCa {
        ca_pem: server.trust_pem,
        server_config: server.server_config,
    }
}

/// A TLS setup of the given shape for `names` (host names and IPs of the serving certificate).
pub fn make(serving: Serving, names: &[String], ca_name: &str) -> ServerTls {
    let server_key = KeyPair::generate().unwrap();
    let (chain, trust_pem) = match serving {
        Serving::CaSigned => {
            let ca_key = KeyPair::generate().unwrap();
            let ca = ca_params(ca_name);
            let ca_cert = ca.self_signed(&ca_key).unwrap();
            let issuer = Issuer::new(ca, ca_key);
            let leaf = serving_params(names)
                .signed_by(&server_key, &issuer)
                .unwrap();
            (vec![der(leaf.der()), der(ca_cert.der())], ca_cert.pem())
        }
        Serving::SelfSignedCa => {
            let mut params = serving_params(names);
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.extended_key_usages = Vec::new();
            let cert = params.self_signed(&server_key).unwrap();
            (vec![der(cert.der())], cert.pem())
        }
        Serving::PinnedLeaf => {
            let cert = serving_params(names).self_signed(&server_key).unwrap();
            (vec![der(cert.der())], cert.pem())
        }
        Serving::ViaIntermediate => {
            let root_key = KeyPair::generate().unwrap();
            let root = ca_params(ca_name);
            let root_cert = root.self_signed(&root_key).unwrap();
            let root_issuer = Issuer::new(root, root_key);
            let intermediate_key = KeyPair::generate().unwrap();
            let intermediate = ca_params("infermesh test intermediate CA");
            let intermediate_cert = intermediate
                .signed_by(&intermediate_key, &root_issuer)
                .unwrap();
            let intermediate_issuer = Issuer::new(intermediate, intermediate_key);
            let leaf = serving_params(names)
                .signed_by(&server_key, &intermediate_issuer)
                .unwrap();
            (
                vec![der(leaf.der()), der(intermediate_cert.der())],
                root_cert.pem(),
            )
        }
    };
    let client_ca = ClientCa::new();
    let mut client_roots = RootCertStore::empty();
    client_roots
        .add(CertificateDer::from(client_ca.der.clone()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .allow_unauthenticated()
            .build()
            .unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    let mut server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(chain, key)
        .unwrap();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    ServerTls {
        trust_pem,
        server_config: Arc::new(server_config),
        client_ca,
    }
}

fn der(bytes: &[u8]) -> CertificateDer<'static> {
    CertificateDer::from(bytes.to_vec())
}
