//! The `tcp` probe (a connection opened within `timeout`, warn/crit on its time) and
//! the `tls` probe (days until the server's certificate expires).
//!
//! TLS is done in-process with rustls, already in the tree through ureq, rather than by
//! shelling out to `openssl s_client` (not on every host, and its output is for people).
//! Its verifier accepts any certificate, since the point is to report on an expired or
//! self-signed one rather than refuse the handshake, but it still checks the
//! handshake's signatures with the provider's algorithms, so the certificate read is
//! the one the server holds the key of. The notAfter is read with x509-parser, the
//! rusticata parser, which is well kept and made for exactly this.

use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use super::config::ProbeConfig;
use super::run::{perf_secs, secs, timeout_of, Perf, ProbeResult};
use super::Status;
use crate::instance::Ostler;

/// `host:port` resolved, then a connection to the first address that takes one.
fn connect(address: &str, timeout: Duration) -> Result<TcpStream, String> {
    let addrs: Vec<SocketAddr> = address
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {address}: {e}"))?
        .collect();
    let mut last = format!("{address} resolves to no address");
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                last = format!(
                    "no connection to {address} within {}",
                    humantime::format_duration(timeout)
                );
            }
            Err(e) => last = format!("connecting to {address}: {e}"),
        }
    }
    Err(last)
}

fn address_of(probe: &ProbeConfig) -> Option<&str> {
    probe.address.as_ref().map(|a| a.get_ref().as_str())
}

pub(super) fn check_tcp(probe: &ProbeConfig) -> ProbeResult {
    let Some(address) = address_of(probe) else {
        return ProbeResult::new(Status::Unknown, "no `address` to connect to");
    };
    let thresholds = probe.thresholds();
    let started = Instant::now();
    let connected = connect(address, timeout_of(probe));
    let elapsed = started.elapsed();
    let perf = Perf::new("time", perf_secs(elapsed), "s")
        .judged(&thresholds)
        .bounded(Some(0.0), None);
    match connected {
        Ok(_) => ProbeResult::new(
            thresholds.status(elapsed.as_secs_f64()),
            format!("connected to {address} in {}", secs(elapsed)),
        )
        .with_perf(perf),
        Err(why) => ProbeResult::new(Status::Critical, why).with_perf(perf),
    }
}

/// Accepts any certificate (expired, self-signed, another name's) but checks the
/// handshake signatures: what the probe reports on is what the server holds.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
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
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
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
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The server's own certificate (DER), after a handshake within `timeout`.
fn peer_certificate(address: &str, name: &str, timeout: Duration) -> Result<Vec<u8>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_string())
        .map_err(|e| format!("`{name}` is not a server name: {e}"))?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), server_name)
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let started = Instant::now();
    let mut sock = connect(address, timeout)?;
    let left = timeout
        .saturating_sub(started.elapsed())
        .max(Duration::from_millis(1));
    let _ = sock.set_read_timeout(Some(left));
    let _ = sock.set_write_timeout(Some(left));
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(|e| {
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) {
                format!(
                    "no TLS handshake with {address} within {}",
                    humantime::format_duration(timeout)
                )
            } else {
                format!("TLS handshake with {address}: {e}")
            }
        })?;
    }
    conn.peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| format!("{address} sent no certificate"))
}

pub(super) fn check_tls(ostler: &Ostler, probe: &ProbeConfig) -> ProbeResult {
    let Some(address) = address_of(probe) else {
        return ProbeResult::new(Status::Unknown, "no `address` to connect to");
    };
    let name = match &probe.server_name {
        Some(n) => n.get_ref().clone(),
        None => address
            .rsplit_once(':')
            .map_or(address, |(h, _)| h)
            .trim_matches(|c| c == '[' || c == ']')
            .to_string(),
    };
    let der = match peer_certificate(address, &name, timeout_of(probe)) {
        Ok(der) => der,
        Err(why) => return ProbeResult::new(Status::Critical, why),
    };
    let cert = match x509_parser::parse_x509_certificate(&der) {
        Ok((_, cert)) => cert,
        Err(e) => {
            return ProbeResult::new(
                Status::Unknown,
                format!("the certificate {address} sent cannot be read: {e}"),
            )
        }
    };
    let not_after = cert.validity().not_after.timestamp();
    let now = ostler.clock.now().as_second();
    let days = ((not_after - now) as f64 / 86_400.0).floor();
    let thresholds = probe.thresholds();
    let expires = jiff::Timestamp::from_second(not_after)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| not_after.to_string());
    let subject = cert.subject().to_string();
    let summary = if days < 0.0 {
        format!(
            "the certificate of {name} ({subject}) expired {} days ago ({expires})",
            -days
        )
    } else {
        format!("the certificate of {name} ({subject}) expires in {days} days ({expires})")
    };
    ProbeResult::new(thresholds.status(days), summary)
        .with_perf(Perf::new("days", days, "").judged(&thresholds))
}
