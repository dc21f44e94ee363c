//! TLS for the HTTP client: which server certificates are trusted, and the ureq connector that
//! speaks rustls with that choice.
//!
//! ureq 3's own `TlsConfig` takes root certificates but no certificate verifier, so the agent
//! is built with this module's [`TlsConnector`] in place of ureq's rustls connector (the same
//! steps: TCP or CONNECT proxy first, then the TLS handshake).
//!
//! | options | server certificates trusted |
//! |---|---|
//! | neither | the system's CA bundle (rustls-platform-verifier); Mozilla's roots without one |
//! | `tls_ca_file` | chains to the system's bundle or the file, *or* is itself a certificate of the file (see [`CaFileVerifier`]) |
//! | `tls_verify off` | any (handshake signatures are still checked) |

use crate::config::options::Config;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::{WebPkiServerVerifier, verify_server_name};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, OtherError,
    RootCertStore, SignatureScheme, StreamOwned,
};
use std::io::{Read, Write};
use std::sync::{Arc, OnceLock};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, Transport,
    TransportAdapter,
};

/// What the instance trusts, for the start-up log line. Cheap: the verifier itself (which
/// parses every root) is made at the first TLS connection, so Init and plain-HTTP instances
/// do not pay for it.
pub(crate) fn trust_note(cfg: &Config) -> &'static str {
    if !cfg.tls_verify {
        "none: tls_verify is off"
    } else if cfg.tls_ca_file.is_some() {
        "system CA bundle and tls_ca_file"
    } else if rustls_native_certs::load_native_certs().certs.is_empty() {
        "bundled Mozilla roots (no system CA bundle found)"
    } else {
        "system CA bundle"
    }
}

/// The TLS settings of an instance, from its [`Config`].
#[derive(Clone, Debug)]
struct Settings {
    verify: bool,
    /// The certificates of `tls_ca_file` (DER), read once at Init; `None` without the option.
    ca_certs: Option<Vec<CertificateDer<'static>>>,
}

/// The rustls client configuration for `settings`.
fn client_config(settings: &Settings) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = verifier(settings, &provider)?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn verifier(
    settings: &Settings,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    if !settings.verify {
        return Ok(Arc::new(NoVerification(
            provider.signature_verification_algorithms,
        )));
    }
    let Some(listed) = &settings.ca_certs else {
        if rustls_native_certs::load_native_certs().certs.is_empty() {
            let roots = RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            return webpki_verifier(roots, provider);
        }
        let v = rustls_platform_verifier::Verifier::new(provider.clone())
            .map_err(|e| format!("TLS setup: {e}"))?;
        return Ok(Arc::new(v));
    };
    let listed = listed.clone();
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    roots.add_parsable_certificates(listed.iter().cloned());
    let inner = webpki_verifier(roots, provider)?;
    Ok(Arc::new(CaFileVerifier { inner, listed }))
}

fn webpki_verifier(
    roots: RootCertStore,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(v)
}

/// Full WebPKI verification, and one exception: a server certificate that is itself one of the
/// certificates of `tls_ca_file` is trusted even though it is marked `CA:TRUE` (as
/// `openssl req -x509` makes them), which WebPKI refuses as `CaUsedAsEndEntity`. OpenSSL, curl
/// and Vector accept such a certificate; the user listed it, so it is pinned.
///
/// The exception applies only when that is the one complaint: webpki checks an end-entity
/// certificate's validity period before its basic constraints, so an expired or not yet valid
/// certificate is still refused. The host name is then checked against the certificate, and
/// handshake signatures are always checked.
#[derive(Debug)]
pub(crate) struct CaFileVerifier {
    inner: Arc<dyn ServerCertVerifier>,
    listed: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for CaFileVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let err = match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(ok) => return Ok(ok),
            Err(e) => e,
        };
        if !is_ca_used_as_end_entity(&err) || !self.listed.iter().any(|c| c == end_entity) {
            return Err(err);
        }
        verify_server_name(&ParsedCertificate::try_from(end_entity)?, server_name)?;
        Ok(ServerCertVerified::assertion())
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

/// Whether rustls refused a certificate only because it is a CA's (`CaUsedAsEndEntity`).
fn is_ca_used_as_end_entity(err: &rustls::Error) -> bool {
    match err {
        rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(e))) => matches!(
            e.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}

/// `tls_verify off`: any server certificate is accepted; the handshake's signatures are still
/// checked with the provider's algorithms, so the peer must hold the certificate's key.
#[derive(Debug)]
struct NoVerification(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// The last step of the agent's connector chain: wraps an `https` connection in rustls with
/// the instance's [`ClientConfig`] (ureq's own rustls connector cannot take a verifier).
#[derive(Debug)]
pub(crate) struct TlsConnector {
    settings: Settings,
    /// Made at the first TLS connection, then shared by all (a failure is not kept).
    config: OnceLock<Arc<ClientConfig>>,
}

impl TlsConnector {
    /// A connector trusting what `cfg`'s TLS options say (see the module documentation).
    pub(crate) fn new(cfg: &Config) -> TlsConnector {
        TlsConnector {
            settings: Settings {
                verify: cfg.tls_verify,
                ca_certs: cfg.tls_ca_file.is_some().then(|| {
                    cfg.tls_ca_certs
                        .0
                        .iter()
                        .map(|der| CertificateDer::from(der.clone()))
                        .collect()
                }),
            },
            config: OnceLock::new(),
        }
    }

    fn config(&self) -> Result<Arc<ClientConfig>, ureq::Error> {
        if let Some(c) = self.config.get() {
            return Ok(c.clone());
        }
        let made =
            client_config(&self.settings).map_err(|e| ureq::Error::Io(std::io::Error::other(e)))?;
        Ok(self.config.get_or_init(|| made).clone())
    }
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(host.to_string())
            .map_err(|_| ureq::Error::Tls("invalid server name for TLS"))?;
        let mut conn = ClientConnection::new(self.config()?, name)?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        conn.complete_io(&mut sock)?;
        let buffers = LazyBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TlsTransport {
            buffers,
            stream: StreamOwned { conn, sock },
        })))
    }
}

/// An HTTP connection inside TLS, made by [`TlsConnector`].
pub(crate) struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTransport").finish_non_exhaustive()
    }
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        self.stream.write_all(output)?;
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        let amount = self.stream.read(input)?;
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}
