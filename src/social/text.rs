//! Comment text: plain text, NFC-normalised, 1–2000 characters, no control characters other
//! than line breaks and tabs. It is stored and returned as data; any HTML view escapes it.

use unicode_normalization::UnicodeNormalization;

pub const MAX_CHARS: usize = 2000;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    #[error("the comment is empty")]
    Empty,
    #[error("the comment is longer than {MAX_CHARS} characters ({0})")]
    TooLong(usize),
    #[error("the comment contains a control character (U+{0:04X})")]
    ControlCharacter(u32),
}

/// The stored form of a comment body, or why it is refused.
pub fn comment_body(input: &str) -> Result<String, TextError> {
    let text: String = input.nfc().collect();
    let text = text.trim();
    if let Some(c) = text
        .chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
    {
        return Err(TextError::ControlCharacter(c as u32));
    }
    let n = text.chars().count();
    if n == 0 {
        return Err(TextError::Empty);
    }
    if n > MAX_CHARS {
        return Err(TextError::TooLong(n));
    }
    Ok(text.to_string())
}

/// Whether `body` contains one of the moderation `words` (case-insensitive, whole words).
pub fn matches_word_list(body: &str, words: &[String]) -> bool {
    if words.is_empty() {
        return false;
    }
    let lowered = body.to_lowercase();
    let tokens: Vec<&str> = lowered
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .collect();
    words.iter().any(|w| {
        let w = w.trim().to_lowercase();
        !w.is_empty() && tokens.iter().any(|t| *t == w)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_normalised_and_bounded() {
        // "é" as e + combining acute becomes the single precomposed character.
        assert_eq!(comment_body(" Cafe\u{301} ").as_deref(), Ok("Caf\u{e9}"));
        assert_eq!(comment_body("   "), Err(TextError::Empty));
        assert_eq!(comment_body("a\u{7}b"), Err(TextError::ControlCharacter(7)));
        assert_eq!(
            comment_body("line one\nline two").as_deref(),
            Ok("line one\nline two")
        );
        assert!(comment_body(&"가".repeat(MAX_CHARS)).is_ok());
        assert_eq!(
            comment_body(&"가".repeat(MAX_CHARS + 1)),
            Err(TextError::TooLong(MAX_CHARS + 1))
        );
        // Markup is data, kept verbatim.
        assert_eq!(
            comment_body("<script>alert(1)</script>").as_deref(),
            Ok("<script>alert(1)</script>")
        );
    }

    #[test]
    fn word_list_matches_whole_words_case_insensitively() {
        let words = vec!["spoiler".to_string()];
        assert!(matches_word_list("Big SPOILER ahead", &words));
        assert!(!matches_word_list("spoilers are fine here", &words));
        assert!(!matches_word_list("anything", &[]));
    }
}
