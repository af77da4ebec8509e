//! E-mail over SMTP (lettre over tokio-rustls): one connection per message, so a failure
//! belongs to one delivery. SMTP's answer decides the outcome: 2xx delivered, 4xx (and a
//! refused connection, a timeout, a TLS or network failure) retried, 5xx failed for good.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::{Delivery, NotifyError, Outcome, Sender};
use crate::config::{Config, SmtpConfig};

/// The SMTP sender, when `[smtp]` is configured (`smtp.host` set).
pub fn sender(config: &Config) -> Result<Option<Arc<dyn Sender>>, NotifyError> {
    if config.smtp.host.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(SmtpSender::new(&config.smtp)?)))
}

pub struct SmtpSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl SmtpSender {
    pub fn new(c: &SmtpConfig) -> Result<Self, NotifyError> {
        let bad = |key: &'static str, e: &dyn std::fmt::Display| NotifyError::Config {
            key,
            message: e.to_string(),
        };
        let builder = match c.security.as_str() {
            "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)
                .map_err(|e| bad("smtp.host", &e))?,
            "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)
                .map_err(|e| bad("smtp.host", &e))?,
            // Config::validate allows it for loopback hosts only.
            _ => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
        };
        let mut builder = builder.port(c.port).timeout(Some(c.timeout));
        if !c.user.is_empty() {
            builder = builder.credentials(Credentials::new(c.user.clone(), c.password.0.clone()));
        }
        let from = c.from.parse().map_err(|e| bad("smtp.from", &e))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

/// The message of an e-mail delivery: both parts, and the unsubscribe headers (RFC 2369,
/// RFC 8058 one-click) on mail that is not transactional.
pub fn message(from: &Mailbox, delivery: &Delivery) -> Result<Message, String> {
    let Delivery::Email {
        to,
        subject,
        text,
        html,
        list_unsubscribe,
    } = delivery
    else {
        return Err("not an e-mail".into());
    };
    let to: Mailbox = to.parse().map_err(|e| format!("recipient {to:?}: {e}"))?;
    let mut builder = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(subject.as_str());
    if let Some(url) = list_unsubscribe {
        let name = |n: &str| HeaderName::new_from_ascii(n.to_string()).map_err(|e| e.to_string());
        builder = builder
            .raw_header(HeaderValue::new(
                name("List-Unsubscribe")?,
                format!("<{url}>"),
            ))
            .raw_header(HeaderValue::new(
                name("List-Unsubscribe-Post")?,
                "List-Unsubscribe=One-Click".into(),
            ));
    }
    builder
        .multipart(
            MultiPart::alternative()
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_PLAIN)
                        .body(text.clone()),
                )
                .singlepart(
                    SinglePart::builder()
                        .header(ContentType::TEXT_HTML)
                        .body(html.clone()),
                ),
        )
        .map_err(|e| e.to_string())
}

/// What an SMTP error means for the delivery.
fn outcome_of(e: &lettre::transport::smtp::Error) -> Outcome {
    let reason = e.to_string();
    if e.is_permanent() {
        Outcome::Failed { reason }
    } else {
        // 4xx, refused connections, timeouts, TLS and network failures: try again.
        Outcome::Retry {
            after: None,
            reason,
        }
    }
}

impl Sender for SmtpSender {
    fn send<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Outcome> {
        Box::pin(async move {
            let message = match message(&self.from, delivery) {
                Ok(m) => m,
                Err(reason) => return Outcome::Failed { reason },
            };
            match self.transport.send(message).await {
                Ok(_) => Outcome::Delivered,
                Err(e) => outcome_of(&e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_has_both_parts_and_unsubscribe_headers_when_asked(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let from: Mailbox = "cinegate <films@example.com>".parse()?;
        let d = Delivery::Email {
            to: "viewer@example.com".into(),
            subject: "새 영화".into(),
            text: "plain".into(),
            html: "<p>html</p>".into(),
            list_unsubscribe: Some("https://films.example.com/unsubscribe?token=abc".into()),
        };
        let raw = String::from_utf8(message(&from, &d)?.formatted())?;
        assert!(raw.contains("List-Unsubscribe: <https://films.example.com/unsubscribe?token=abc>"));
        assert!(raw.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
        assert!(raw.contains("text/plain") && raw.contains("text/html"));
        let plain = Delivery::Email {
            to: "viewer@example.com".into(),
            subject: "receipt".into(),
            text: "t".into(),
            html: "h".into(),
            list_unsubscribe: None,
        };
        let raw = String::from_utf8(message(&from, &plain)?.formatted())?;
        assert!(!raw.contains("List-Unsubscribe"));
        Ok(())
    }
}
