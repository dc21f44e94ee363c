//! The network side: accepting connections, TLS, and handing each request to the intake.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::intake::{Body, Intake};

/// Answers one request. The handler runs in a task of its own, so a request
/// is processed (and recorded) to the end even if its client goes away, and a
/// panic in it becomes a bare 500 instead of killing the connection silently.
async fn respond(
    intake: Arc<Intake>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible> {
    match tokio::spawn(intake.handle(req, peer)).await {
        Ok(response) => Ok(response),
        Err(_) => {
            eprintln!("mock_intake: request handler panicked");
            let mut response = Response::new(Body::default());
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            Ok(response)
        }
    }
}

/// The server side of `--tls-cert`/`--tls-key`: a certificate chain and its key, from PEM.
pub(crate) fn tls_acceptor(cert: &str, key: &str) -> Result<TlsAcceptor, String> {
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {cert}: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("--tls-key {key}: {e}"))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| format!("TLS setup: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves one connection: over TLS when `tls` is set and the client opens with a TLS
/// handshake record (first byte 0x16), else as plain HTTP.
async fn serve_connection(
    http: http1::Builder,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    intake: Arc<Intake>,
    peer: SocketAddr,
) {
    let mut first = [0u8; 1];
    let handshake = match tls {
        Some(acceptor) if matches!(stream.peek(&mut first).await, Ok(1) if first[0] == 0x16) => {
            match acceptor.accept(stream).await {
                Ok(tls_stream) => {
                    return serve_http(http, TokioIo::new(tls_stream), intake, peer).await;
                }
                Err(e) => e,
            }
        }
        _ => return serve_http(http, TokioIo::new(stream), intake, peer).await,
    };
    // Clients that refuse the certificate are what the TLS tests check for.
    if !intake.config.quiet {
        eprintln!("mock_intake: TLS handshake with {peer} failed: {handshake}");
    }
}

/// Answers the HTTP/1.1 requests of one connection until it closes.
async fn serve_http<I>(http: http1::Builder, io: I, intake: Arc<Intake>, peer: SocketAddr)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let quiet = intake.config.quiet;
    let service = service_fn(move |req| respond(Arc::clone(&intake), req, peer));
    if let Err(e) = http.serve_connection(io, service).await {
        // Unparsable requests (hyper answered 400) and clients that hung up are routine.
        if !quiet && !e.is_parse() && !e.is_incomplete_message() {
            eprintln!("mock_intake: cannot send response: {e}");
        }
    }
}

/// Accepts connections forever, serving each one (HTTP/1.1, keep-alive) in its own task.
pub(crate) async fn serve(listener: TcpListener, intake: Arc<Intake>, tls: Option<TlsAcceptor>) {
    let mut http = http1::Builder::new();
    // A client may shut down its write side once its request is sent and still get the answer.
    // No timer is set, so idle keep-alive connections are kept until the client closes them.
    http.half_close(true);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("mock_intake: accept error: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = serve_connection(http.clone(), stream, tls.clone(), Arc::clone(&intake), peer);
        tokio::spawn(conn);
    }
}
