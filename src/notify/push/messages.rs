//! What a push says, per event and language. Short: a lock screen shows about a line.

/// A notification's visible text.
#[derive(Debug, Clone, PartialEq)]
pub struct Text {
    pub title: String,
    pub body: String,
}

/// What happened to the recipient, as far as a notification tells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// A purchase was captured: the film is theirs.
    Unlocked,
    /// A purchase (or a tip) was refunded.
    Refunded { tip: bool },
    /// A new film was published (to viewers who asked for it).
    NewFilm,
}

/// The text of `kind` about the film `title` (`None`: the film is gone) in `lang`.
pub fn text(kind: Kind, lang: &str, title: Option<&str>) -> Text {
    let ko = lang == "ko";
    let film = title.map(clip);
    let (t, b) = match (kind, ko) {
        (Kind::Unlocked, false) => (
            "Film unlocked".to_string(),
            match film {
                Some(f) => format!("“{f}” is yours to watch."),
                None => "Your film is yours to watch.".into(),
            },
        ),
        (Kind::Unlocked, true) => (
            "영화가 열렸어요".to_string(),
            match film {
                Some(f) => format!("‘{f}’ 전체를 볼 수 있어요."),
                None => "구매한 영화를 볼 수 있어요.".into(),
            },
        ),
        (Kind::Refunded { tip }, false) => (
            "Refund issued".to_string(),
            match (film, tip) {
                (Some(f), false) => format!("Your purchase of “{f}” was refunded."),
                (Some(f), true) => format!("Your tip for “{f}” was refunded."),
                (None, _) => "Your payment was refunded.".into(),
            },
        ),
        (Kind::NewFilm, false) => (
            "New film".to_string(),
            match film {
                Some(f) => format!("“{f}” is out. Watch the preview."),
                None => "A new film is out.".into(),
            },
        ),
        (Kind::NewFilm, true) => (
            "새 영화".to_string(),
            match film {
                Some(f) => format!("‘{f}’ 공개! 미리보기를 볼 수 있어요."),
                None => "새 영화가 공개되었어요.".into(),
            },
        ),
        (Kind::Refunded { tip }, true) => (
            "환불되었어요".to_string(),
            match (film, tip) {
                (Some(f), false) => format!("‘{f}’ 구매가 환불되었어요."),
                (Some(f), true) => format!("‘{f}’ 후원금이 환불되었어요."),
                (None, _) => "결제가 환불되었어요.".into(),
            },
        ),
    };
    Text { title: t, body: b }
}

/// A title cut to 60 characters (APNs allows 4 KB per payload; a lock screen far less).
fn clip(title: &str) -> String {
    const MAX: usize = 60;
    if title.chars().count() <= MAX {
        title.to_string()
    } else {
        let mut s: String = title.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts_name_the_film_in_either_language() {
        let t = text(Kind::Unlocked, "en", Some("Big Buck Bunny"));
        assert_eq!(t.title, "Film unlocked");
        assert!(t.body.contains("Big Buck Bunny"));
        let t = text(Kind::Refunded { tip: true }, "ko", Some("토끼"));
        assert!(t.body.contains("후원금") && t.body.contains("토끼"));
        assert_eq!(text(Kind::NewFilm, "en", Some("B")).title, "New film");
        assert!(text(Kind::NewFilm, "ko", None).body.contains("새 영화"));
        let long = "x".repeat(200);
        let t = text(Kind::Unlocked, "en", Some(&long));
        assert!(t.body.chars().count() < 90);
    }
}
