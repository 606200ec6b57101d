//! A certificate pinned by the SHA-256 of its DER (`tls_fingerprint = "sha256:..."`), and the
//! rustls client config that trusts exactly that certificate: on a private network without
//! Tailscale, or with a self-signed certificate, the pin is the trust, as a host key is for SSH.
//! The handshake's signature is still verified against the pinned certificate's key, so only
//! the holder of its private key can answer; names and validity dates are not checked (the pin
//! names one certificate; replace the pin to rotate it).

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The SHA-256 of a certificate's DER. Shown and parsed as `sha256:` and 64 hex digits; parsing
/// also takes upper case and the colons `openssl x509 -fingerprint -sha256` prints.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// The fingerprint of a certificate in DER.
    pub fn of_der(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// Parses `sha256:HEX`; the error says what the form is.
    pub fn parse(text: &str) -> Result<Self, String> {
        let form = "use \"sha256:\" and the 64 hex digits of the certificate's SHA-256 \
                    (openssl x509 -in CERT.pem -noout -fingerprint -sha256)";
        let text = text.trim();
        let hex = text
            .get(..7)
            .filter(|p| p.eq_ignore_ascii_case("sha256:"))
            .map(|_| &text[7..])
            .ok_or_else(|| format!("{text:?} is not a certificate fingerprint: {form}"))?;
        let digits: Vec<u8> = hex.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 || !digits.iter().all(u8::is_ascii_hexdigit) {
            return Err(format!(
                "{text:?} is not a SHA-256 fingerprint (64 hex digits after \"sha256:\"): {form}"
            ));
        }
        let mut out = [0u8; 32];
        for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
            // Both are ASCII hex digits (checked above), so the text is valid and parses.
            let pair = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            *byte = u8::from_str_radix(pair, 16).map_err(|e| e.to_string())?;
        }
        Ok(Self(out))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sha256:")?;
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::parse(s)
    }
}

/// The server presented another certificate than the pinned one.
#[derive(Debug, thiserror::Error)]
#[error(
    "certificate pin mismatch: the server presented a certificate with fingerprint {presented}, \
     but tls_fingerprint pins {pinned}; if the server's certificate was replaced on purpose, \
     pin the new one"
)]
pub struct PinMismatch {
    pub presented: Fingerprint,
    pub pinned: Fingerprint,
}

/// Trusts exactly the certificate whose fingerprint is pinned, and checks the handshake's
/// signature with its key.
#[derive(Debug)]
struct PinnedVerifier {
    pin: Fingerprint,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for PinnedVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of_der(end_entity);
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::Other(rustls::OtherError(Arc::new(
                PinMismatch {
                    presented,
                    pinned: self.pin,
                },
            ))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// A rustls client config (for reqwest's `use_preconfigured_tls`) that accepts only the
/// certificate `pin` names.
pub fn pinned_client_config(pin: Fingerprint) -> rustls::ClientConfig {
    let provider = crate::provider();
    let verifier = PinnedVerifier {
        pin,
        algorithms: provider.signature_verification_algorithms,
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        // ring's default provider supports the safe default versions (TLS 1.2 and 1.3).
        .expect("ring supports TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn fingerprints_parse_and_print() {
        let fp = Fingerprint::parse(&format!("sha256:{HEX}")).expect("valid");
        assert_eq!(fp.to_string(), format!("sha256:{HEX}"));
        assert_eq!(fp, Fingerprint::of_der(b"test"));
        let colons: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_uppercase())
            .collect();
        assert_eq!(
            Fingerprint::parse(&format!("SHA256:{}", colons.join(":"))),
            Ok(fp)
        );
        for bad in [
            "",
            HEX,
            "sha1:abcd",
            "sha256:",
            &format!("sha256:{}", &HEX[..62]),
            &format!("sha256:{HEX}00"),
            &format!("sha256:{}zz", &HEX[..62]),
            "sha256:é",
        ] {
            let e = Fingerprint::parse(bad).expect_err(bad);
            assert!(e.contains("sha256:"), "{e}");
        }
    }

    #[test]
    fn a_mismatch_names_both_fingerprints() {
        let presented = Fingerprint::of_der(b"a");
        let pinned = Fingerprint::of_der(b"b");
        let msg = PinMismatch { presented, pinned }.to_string();
        assert!(msg.contains(&presented.to_string()), "{msg}");
        assert!(msg.contains(&pinned.to_string()), "{msg}");
        assert!(msg.contains("tls_fingerprint"), "{msg}");
    }
}
