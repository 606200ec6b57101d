//! One run of one check: connect (TCP, or HTTP(S) over hyper and rustls), compare, and say in
//! words what was wrong. Nothing here logs the URL: it may hold a password or a token.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::{self, client::danger, CertificateError, RootCertStore};

use super::cert;
use super::config::{CheckConfig, Target};

/// The most of a body read to look for `expect_body`.
pub const MAX_BODY: usize = 64 * 1024;

/// What one run found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    pub ok: bool,
    pub status_code: Option<u16>,
    pub latency_ms: Option<f64>,
    pub error: Option<String>,
    pub cert_not_after_unix_ms: Option<u64>,
}

/// An https check's TLS client and the verifier that keeps the leaf certificate.
type TlsClient = (Arc<rustls::ClientConfig>, Arc<Recording>);

/// What a check keeps between runs: its TLS client (built once) and the leaf certificate the
/// last handshake was shown.
#[derive(Debug)]
pub struct Prober {
    config: CheckConfig,
    tls: Result<Option<TlsClient>, String>,
}

impl Prober {
    pub fn new(config: CheckConfig) -> Self {
        let tls = match &config.target {
            Target::Http { tls: true, .. } => tls_client(config.ca_file.as_deref()).map(Some),
            _ => Ok(None),
        };
        Self { config, tls }
    }

    pub fn config(&self) -> &CheckConfig {
        &self.config
    }

    /// Runs the check once, within its timeout.
    pub async fn run(&self) -> Outcome {
        let started = Instant::now();
        let timeout = self.config.timeout;
        let mut outcome = match tokio::time::timeout(timeout, self.attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => Outcome {
                error: Some(format!("timed out after {}", seconds(timeout))),
                cert_not_after_unix_ms: self.leaf_not_after(),
                ..Outcome::default()
            },
        };
        if outcome.ok || outcome.status_code.is_some() {
            outcome.latency_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
        }
        outcome
    }

    fn leaf_not_after(&self) -> Option<u64> {
        let (_, recording) = self.tls.as_ref().ok()?.as_ref()?;
        recording.not_after()
    }

    async fn attempt(&self) -> Outcome {
        let fail = |error: String| Outcome {
            error: Some(error),
            ..Outcome::default()
        };
        match &self.config.target {
            Target::Tcp { host, port } => match connect(host, *port).await {
                Ok(_) => Outcome {
                    ok: true,
                    ..Outcome::default()
                },
                Err(e) => fail(e),
            },
            Target::Http {
                tls,
                host,
                port,
                path,
                ..
            } => {
                let tcp = match connect(host, *port).await {
                    Ok(tcp) => tcp,
                    Err(e) => return fail(e),
                };
                if !tls {
                    return self.exchange(tcp, host, *port, path).await;
                }
                let (client, recording) = match &self.tls {
                    Ok(Some(c)) => c,
                    Ok(None) => return fail("no TLS client for an https check".into()),
                    Err(e) => return fail(e.clone()),
                };
                recording.clear();
                let name = match ServerName::try_from(host.clone()) {
                    Ok(name) => name,
                    Err(_) => return fail(format!("{host:?} is not a host name for TLS")),
                };
                let connector = tokio_rustls::TlsConnector::from(client.clone());
                match connector.connect(name, tcp).await {
                    Ok(stream) => {
                        let mut outcome = self.exchange(stream, host, *port, path).await;
                        outcome.cert_not_after_unix_ms = recording.not_after();
                        outcome
                    }
                    Err(e) => Outcome {
                        error: Some(tls_error(&e, host, *port, recording.not_after())),
                        cert_not_after_unix_ms: recording.not_after(),
                        ..Outcome::default()
                    },
                }
            }
        }
    }

    /// One `GET` over an open connection; the status and, if asked, the body are compared.
    async fn exchange<S>(&self, stream: S, host: &str, port: u16, path: &str) -> Outcome
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let fail = |error: String, status: Option<u16>| Outcome {
            error: Some(error),
            status_code: status,
            ..Outcome::default()
        };
        let (mut sender, conn) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => {
                    return fail(
                        format!("HTTP handshake with {host}:{port} failed: {e}"),
                        None,
                    )
                }
            };
        let conn = tokio::spawn(async move {
            let _ = conn.await;
        });
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::USER_AGENT, "fleetdeck-agent")
            .header(hyper::header::CONNECTION, "close")
            .body(Empty::<Bytes>::new());
        let request = match request {
            Ok(r) => r,
            Err(e) => return fail(format!("cannot build the request: {e}"), None),
        };
        let outcome = async {
            let response = match sender.send_request(request).await {
                Ok(r) => r,
                Err(e) => return fail(format!("no HTTP answer from {host}:{port}: {e}"), None),
            };
            let status = response.status().as_u16();
            let status_ok = match self.config.expect_status {
                Some(expected) => status == expected,
                None => (200..400).contains(&status),
            };
            if !status_ok {
                let expected = self
                    .config
                    .expect_status
                    .map_or("2xx or 3xx".to_owned(), |s| s.to_string());
                return fail(format!("HTTP {status}, expected {expected}"), Some(status));
            }
            let Some(needle) = &self.config.expect_body else {
                return Outcome {
                    ok: true,
                    status_code: Some(status),
                    ..Outcome::default()
                };
            };
            let mut body = response.into_body();
            let mut seen: Vec<u8> = Vec::new();
            while seen.len() < MAX_BODY {
                match body.frame().await {
                    Some(Ok(frame)) => {
                        if let Some(data) = frame.data_ref() {
                            let room = MAX_BODY - seen.len();
                            seen.extend_from_slice(&data[..data.len().min(room)]);
                        }
                    }
                    Some(Err(e)) => {
                        return fail(format!("reading the body failed: {e}"), Some(status))
                    }
                    None => break,
                }
            }
            if contains(&seen, needle.as_bytes()) {
                Outcome {
                    ok: true,
                    status_code: Some(status),
                    ..Outcome::default()
                }
            } else {
                let within = if seen.len() >= MAX_BODY {
                    " (in its first 64 KiB)"
                } else {
                    ""
                };
                fail(
                    format!("body does not contain {needle:?}{within}"),
                    Some(status),
                )
            }
        }
        .await;
        conn.abort();
        outcome
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

/// `5 s`, `1.5 s`.
fn seconds(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{s:.0} s")
    } else {
        format!("{s:.1} s")
    }
}

async fn connect(host: &str, port: u16) -> Result<TcpStream, String> {
    let shown = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    TcpStream::connect((host, port))
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::ConnectionRefused => format!("connection refused to {shown}"),
            _ => format!("cannot connect to {shown}: {e}"),
        })
}

fn tls_error(e: &std::io::Error, host: &str, port: u16, not_after: Option<u64>) -> String {
    let inner = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>());
    match inner {
        Some(rustls::Error::InvalidCertificate(c)) => match c {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                match not_after {
                    Some(t) => format!("certificate expired on {}", cert::date(t)),
                    None => "certificate expired".to_owned(),
                }
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate is not valid yet (is this host's clock right?)".to_owned()
            }
            CertificateError::UnknownIssuer => {
                "certificate not trusted: unknown issuer (for a private CA, set ca_file)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!("certificate is not valid for {host}")
            }
            other => format!("certificate invalid: {other:?}"),
        },
        Some(other) => format!("TLS with {host}:{port} failed: {other}"),
        None => format!("TLS with {host}:{port} failed: {e}"),
    }
}

/// A verifier that verifies as webpki does and keeps the leaf certificate it was shown, so an
/// expired certificate's date can be named and a valid one's reported.
#[derive(Debug)]
struct Recording {
    inner: Arc<rustls::client::WebPkiServerVerifier>,
    leaf: Mutex<Option<Vec<u8>>>,
}

impl Recording {
    fn clear(&self) {
        *self.leaf.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn not_after(&self) -> Option<u64> {
        let leaf = self.leaf.lock().unwrap_or_else(|p| p.into_inner());
        leaf.as_deref().and_then(cert::not_after_unix_ms)
    }
}

impl danger::ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<danger::ServerCertVerified, rustls::Error> {
        *self.leaf.lock().unwrap_or_else(|p| p.into_inner()) = Some(end_entity.to_vec());
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A TLS client trusting the webpki roots, or only the CAs in `ca_file`.
fn tls_client(ca_file: Option<&std::path::Path>) -> Result<TlsClient, String> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
            for c in certs {
                let c = c.map_err(|e| {
                    format!("ca_file {}: not PEM certificates: {e}", path.display())
                })?;
                roots.add(c).map_err(|e| {
                    format!("ca_file {}: not a CA certificate: {e}", path.display())
                })?;
            }
            if roots.is_empty() {
                return Err(format!(
                    "ca_file {} holds no certificate: give a PEM file of CA certificates",
                    path.display()
                ));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let inner = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| format!("cannot build the certificate verifier: {e}"))?;
    let recording = Arc::new(Recording {
        inner,
        leaf: Mutex::new(None),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(recording.clone())
        .with_no_client_auth();
    // Every run does a full handshake: a resumed session shows no certificate, so its expiry
    // would vanish from the result, and a renewed (or replaced) certificate would go unseen.
    let mut config = config;
    config.resumption = rustls::client::Resumption::disabled();
    Ok((Arc::new(config), recording))
}
