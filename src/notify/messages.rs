//! The mails notifications send, written in the recipient's language (en, ko) and
//! rendered once, when their event is routed, into a text and an HTML part
//! (`templates/mail/message.{txt,html}`; askama escapes every value in the HTML).

use askama::Template;

use crate::store::outbox::{Delivery, Language};

/// One mail's content before rendering.
#[derive(Debug, Clone, Default)]
pub struct Mail {
    pub subject: String,
    pub heading: String,
    pub paragraphs: Vec<String>,
    /// Label, value.
    pub rows: Vec<(String, String)>,
    /// Label, URL.
    pub link: Option<(String, String)>,
    pub footer: Vec<String>,
}

#[derive(Template)]
#[template(path = "mail/message.txt")]
struct TextPart<'a> {
    m: &'a Mail,
}

#[derive(Template)]
#[template(path = "mail/message.html")]
struct HtmlPart<'a> {
    m: &'a Mail,
    lang: &'a str,
}

impl Mail {
    /// The e-mail delivery of this mail to `to`; `unsubscribe` for mail that is not
    /// transactional. `None` if a template failed (logged).
    pub fn to(&self, to: &str, lang: Language, unsubscribe: Option<String>) -> Option<Delivery> {
        let text = TextPart { m: self }.render();
        let html = HtmlPart {
            m: self,
            lang: lang.as_str(),
        }
        .render();
        match (text, html) {
            (Ok(text), Ok(html)) => Some(Delivery::Email {
                to: to.to_string(),
                subject: self.subject.clone(),
                text,
                html,
                list_unsubscribe: unsubscribe,
            }),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "a mail template failed to render");
                None
            }
        }
    }
}

/// `1999, "USD"` → `"19.99 USD"`.
pub fn amount(minor: u64, currency: &str) -> String {
    format!("{} {currency}", crate::money::to_decimal(minor, currency))
}

/// What a payment mail says about its order.
pub struct Payment<'a> {
    pub film_title: &'a str,
    pub amount: u64,
    pub currency: &'a str,
    pub provider: &'a str,
    pub order: uuid::Uuid,
    pub film_url: String,
}

fn payment_rows(lang: Language, p: &Payment<'_>) -> Vec<(String, String)> {
    let labels = match lang {
        Language::En => ["Film", "Amount", "Paid with", "Order"],
        Language::Ko => ["영화", "금액", "결제 수단", "주문 번호"],
    };
    vec![
        (labels[0].into(), p.film_title.into()),
        (labels[1].into(), amount(p.amount, p.currency)),
        (labels[2].into(), p.provider.into()),
        (labels[3].into(), p.order.to_string()),
    ]
}

fn transactional_footer(lang: Language) -> Vec<String> {
    vec![match lang {
        Language::En => "You receive this mail because of a payment on your account.".into(),
        Language::Ko => "계정의 결제와 관련하여 보내 드리는 메일입니다.".into(),
    }]
}

/// A mail about one of the payer's payments: its subject, heading and paragraph, the
/// payment's rows, a link to the film when there is one to follow, and the footer saying why
/// it was sent.
fn payment_mail(
    lang: Language,
    p: &Payment<'_>,
    (subject, heading, para): (String, String, String),
    link: Option<&str>,
) -> Mail {
    Mail {
        subject,
        heading,
        paragraphs: vec![para],
        rows: payment_rows(lang, p),
        link: link.map(|l| (l.to_string(), p.film_url.clone())),
        footer: transactional_footer(lang),
    }
}

/// A purchase receipt.
pub fn receipt(lang: Language, p: &Payment<'_>) -> Mail {
    let (subject, heading, para, link) = match lang {
        Language::En => (
            format!("Your receipt: {}", p.film_title),
            "Thank you for your purchase".to_string(),
            format!("You can now watch «{}» in full.", p.film_title),
            "Watch the film",
        ),
        Language::Ko => (
            format!("영수증: {}", p.film_title),
            "구매해 주셔서 감사합니다".to_string(),
            format!("이제 «{}» 전체를 보실 수 있습니다.", p.film_title),
            "영화 보기",
        ),
    };
    payment_mail(lang, p, (subject, heading, para), Some(link))
}

/// A refund notice.
pub fn refund(lang: Language, p: &Payment<'_>) -> Mail {
    let (subject, heading, para) = match lang {
        Language::En => (
            format!("Refund: {}", p.film_title),
            "Your payment was refunded".to_string(),
            "The amount below goes back to you through the provider you paid with; it may take a few days to show.".to_string(),
        ),
        Language::Ko => (
            format!("환불: {}", p.film_title),
            "결제가 환불되었습니다".to_string(),
            "아래 금액은 결제하신 수단으로 환불되며, 반영까지 며칠이 걸릴 수 있습니다.".to_string(),
        ),
    };
    payment_mail(lang, p, (subject, heading, para), None)
}

/// The thank-you for a paid tip.
pub fn tip_thanks(lang: Language, p: &Payment<'_>) -> Mail {
    let (subject, heading, para, link) = match lang {
        Language::En => (
            format!("Thank you for supporting {}", p.film_title),
            "Thank you for your tip".to_string(),
            format!("Your tip goes to the people who made «{}».", p.film_title),
            "Back to the film",
        ),
        Language::Ko => (
            format!("«{}»을(를) 후원해 주셔서 감사합니다", p.film_title),
            "후원해 주셔서 감사합니다".to_string(),
            format!(
                "보내 주신 후원금은 «{}»을(를) 만든 분들께 전해집니다.",
                p.film_title
            ),
            "영화로 돌아가기",
        ),
    };
    payment_mail(lang, p, (subject, heading, para), Some(link))
}

/// "A new film is published", for viewers who opted in (carries `List-Unsubscribe`).
pub fn new_film(lang: Language, title: &str, film_url: &str, unsubscribe_url: &str) -> Mail {
    let (subject, heading, para, link, footer) = match lang {
        Language::En => (
            format!("New film: {title}"),
            format!("«{title}» is out"),
            "A new film was just published. The preview is free to watch.".to_string(),
            "Watch the preview",
            format!("You receive this because you asked for new-film mail. Unsubscribe: {unsubscribe_url}"),
        ),
        Language::Ko => (
            format!("새 영화: {title}"),
            format!("«{title}» 공개"),
            "새 영화가 공개되었습니다. 미리보기는 무료입니다.".to_string(),
            "미리보기 보기",
            format!("새 영화 알림을 신청하셔서 보내 드리는 메일입니다. 수신 거부: {unsubscribe_url}"),
        ),
    };
    Mail {
        subject,
        heading,
        paragraphs: vec![para],
        rows: Vec::new(),
        link: Some((link.into(), film_url.into())),
        footer: vec![footer],
    }
}

/// An alert to the admins (always in English: the console is).
pub fn admin_alert(
    subject: String,
    paragraph: String,
    rows: Vec<(&str, String)>,
    console_url: String,
) -> Mail {
    Mail {
        heading: subject.clone(),
        subject: format!("[cinegate] {subject}"),
        paragraphs: vec![paragraph],
        rows: rows.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        link: Some(("Open the console".into(), console_url)),
        footer: vec!["You receive this as an administrator of this cinegate server.".into()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payment() -> Payment<'static> {
        Payment {
            film_title: "<Night & Day>",
            amount: 1999,
            currency: "USD",
            provider: "dev",
            order: uuid::Uuid::nil(),
            film_url: "http://127.0.0.1:8080/films/x".into(),
        }
    }

    #[test]
    fn a_receipt_has_both_parts_with_the_payment_and_escapes_html(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let d = receipt(Language::En, &payment()).to("a@example.com", Language::En, None);
        let Some(Delivery::Email {
            text,
            html,
            subject,
            ..
        }) = d
        else {
            return Err("no mail".into());
        };
        assert_eq!(subject, "Your receipt: <Night & Day>");
        for part in [&text, &html] {
            assert!(part.contains("19.99 USD") && part.contains("dev"));
            assert!(part.contains(&uuid::Uuid::nil().to_string()));
        }
        assert!(text.contains("Film: <Night & Day>"));
        assert!(
            !html.contains("<Night") && !html.contains("Night & Day"),
            "{html}"
        );
        assert!(html.contains("lang=\"en\""));
        let ko = receipt(Language::Ko, &payment()).to("a@example.com", Language::Ko, None);
        let Some(Delivery::Email { text, html, .. }) = ko else {
            return Err("no mail".into());
        };
        assert!(text.contains("금액: 19.99 USD") && html.contains("lang=\"ko\""));
        Ok(())
    }

    #[test]
    fn amounts_use_the_currency_exponent() {
        assert_eq!(amount(15000, "KRW"), "15000 KRW");
        assert_eq!(amount(500, "EUR"), "5.00 EUR");
    }
}
