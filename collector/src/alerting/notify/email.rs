//! Email: one message per alert over SMTP (lettre on rustls), STARTTLS or implicit TLS, with an
//! optional login (the password from a 0600 file) and an optional extra root certificate for a
//! private relay. Plain-text and HTML bodies carry the same content as the other formats: the
//! message, the why lines, and a crash's last log lines.

use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{text, Delivery, RetryPolicy};
use crate::alerting::rules::{Alert, AlertKind};

/// One attempt's whole dialogue with the server, at most.
const SEND_DEADLINE: Duration = Duration::from_secs(30);

/// How the connection is secured. Never plain: alerts carry log lines and hostnames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS (port 587); refused if the server cannot.
    StartTls,
    /// TLS from the first byte (port 465).
    Tls,
}

/// An SMTP channel's settings. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Smtp {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: Option<String>,
    pub password: Option<String>,
    pub from: Mailbox,
    pub to: Vec<Mailbox>,
    /// An extra trusted root (PEM), for a relay with a private CA.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for Smtp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Smtp")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("to", &self.to.len())
            .finish()
    }
}

impl Smtp {
    /// `smtp://host:port (starttls)`: where, never who or the password.
    pub fn target(&self) -> String {
        let tls = match self.tls {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
        };
        format!("smtp://{}:{} ({tls})", self.host, self.port)
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
        let mut params = TlsParameters::builder(self.host.clone());
        if let Some(pem) = &self.ca_pem {
            let ca = Certificate::from_pem(pem)
                .map_err(|e| format!("the channel's ca_file is not a PEM certificate: {e}"))?;
            params = params.add_root_certificate(ca);
        }
        let params = params
            .build_rustls()
            .map_err(|e| format!("cannot set up TLS for {}: {e}", self.host))?;
        let tls = match self.tls {
            SmtpTls::StartTls => Tls::Required(params),
            SmtpTls::Tls => Tls::Wrapper(params),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(Duration::from_secs(20)));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            // PLAIN or LOGIN, whichever the server offers (lettre's order).
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

/// The subject line: severity, then what happened.
pub fn subject(alert: &Alert) -> String {
    let tag = match alert.kind {
        AlertKind::Recovery => "RESOLVED".to_owned(),
        AlertKind::FlapEnded => "SETTLED".to_owned(),
        _ => alert.severity.as_str().to_uppercase(),
    };
    // One line: a subject cannot hold a line break.
    let message: String = alert
        .message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    format!("[Fleetdeck {tag}] {}", text::cut(&message, 200))
}

/// The plain-text body: the message, why, and the last log lines.
pub fn plain(alert: &Alert) -> String {
    let mut out = format!("{}\n", alert.message);
    for line in text::why_lines(alert) {
        out.push_str(&line);
        out.push('\n');
    }
    let lines = text::last_lines(alert);
    if !lines.is_empty() {
        out.push_str("\nLast log lines:\n");
        for line in lines {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str(&format!(
        "\nHost: {}\nApp: {}\nSeverity: {}\n",
        alert.host,
        alert.app.as_deref().unwrap_or("-"),
        alert.severity.as_str()
    ));
    out
}

/// The HTML body: the same content, escaped, the log lines in a `<pre>`.
pub fn html(alert: &Alert) -> String {
    let e = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    let mut out = format!(
        "<html><body>\n<p><strong>{}</strong></p>\n",
        e(&alert.message)
    );
    let why = text::why_lines(alert);
    if !why.is_empty() {
        out.push_str("<ul>\n");
        for line in why {
            out.push_str(&format!("<li>{}</li>\n", e(&line)));
        }
        out.push_str("</ul>\n");
    }
    let lines = text::last_lines(alert);
    if !lines.is_empty() {
        out.push_str("<p>Last log lines:</p>\n<pre>");
        for line in lines {
            out.push_str(&e(line));
            out.push('\n');
        }
        out.push_str("</pre>\n");
    }
    out.push_str(&format!(
        "<p>Host: {}<br>App: {}<br>Severity: {}</p>\n</body></html>\n",
        e(&alert.host),
        e(alert.app.as_deref().unwrap_or("-")),
        alert.severity.as_str()
    ));
    out
}

fn message(smtp: &Smtp, alert: &Alert) -> Result<Message, String> {
    let mut builder = Message::builder()
        .from(smtp.from.clone())
        .subject(subject(alert));
    for to in &smtp.to {
        builder = builder.to(to.clone());
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(plain(alert)),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html(alert)),
                ),
        )
        .map_err(|e| format!("cannot build the message: {e}"))
}

/// Sends `alert` to the channel's recipients, retrying a failed attempt with backoff until
/// `retry.attempts` are spent. The result's status is the server's reply code.
pub async fn send(smtp: &Smtp, alert: &Alert, retry: &RetryPolicy) -> Delivery {
    let built = smtp
        .transport()
        .and_then(|t| message(smtp, alert).map(|m| (t, m)));
    let (transport, message) = match built {
        Ok(parts) => parts,
        Err(e) => {
            return Delivery {
                attempts: 0,
                last_status: None,
                result: Err(e),
            }
        }
    };
    let mut attempts = 0;
    let mut delay = retry.first_delay;
    loop {
        attempts += 1;
        // A server that stops answering mid-dialogue must not hold a delivery for ever.
        let outcome =
            match tokio::time::timeout(SEND_DEADLINE, transport.send(message.clone())).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    let error = format!(
                        "SMTP to {}: no answer within {SEND_DEADLINE:?}",
                        smtp.target()
                    );
                    if attempts >= retry.attempts {
                        return Delivery {
                            attempts,
                            last_status: None,
                            result: Err(error),
                        };
                    }
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(retry.max_delay);
                    continue;
                }
            };
        match outcome {
            Ok(response) => {
                let code = u16::from(response.code().severity as u8) * 100
                    + u16::from(response.code().category as u8) * 10
                    + u16::from(response.code().detail as u8);
                return Delivery {
                    attempts,
                    last_status: Some(code),
                    result: Ok(code),
                };
            }
            Err(e) => {
                let status = e.status().map(|c| {
                    u16::from(c.severity as u8) * 100
                        + u16::from(c.category as u8) * 10
                        + u16::from(c.detail as u8)
                });
                // lettre's errors name the server and the reply, never the password.
                let error = format!("SMTP to {}: {e}", smtp.target());
                // A permanent refusal (5xx) will not change by trying again.
                if attempts >= retry.attempts || e.is_permanent() {
                    return Delivery {
                        attempts,
                        last_status: status,
                        result: Err(error),
                    };
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(retry.max_delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerting::notify::tests_support::crash_alert;

    #[test]
    fn both_bodies_carry_the_message_why_and_last_lines_escaped() {
        let mut alert = crash_alert(3, 20);
        alert.message = "web on vm-1 failed <script>".into();
        let (p, h) = (plain(&alert), html(&alert));
        assert!(p.starts_with("web on vm-1 failed <script>\n"), "{p}");
        assert!(p.contains("Last log lines:"), "{p}");
        assert!(p.contains("out of memory <boom>"), "{p}");
        assert!(h.contains("web on vm-1 failed &lt;script&gt;"), "{h}");
        assert!(h.contains("out of memory &lt;boom&gt;"), "{h}");
        assert!(!h.contains("<script>") && !h.contains("<boom>"), "{h}");
        assert!(subject(&alert).starts_with("[Fleetdeck CRITICAL] web on vm-1 failed"));
        let mut recovered = alert.clone();
        recovered.kind = AlertKind::Recovery;
        recovered.message = "web on vm-1 recovered\nafter 5 s".into();
        let s = subject(&recovered);
        assert!(
            s.starts_with("[Fleetdeck RESOLVED]") && !s.contains('\n'),
            "{s}"
        );
    }
}
