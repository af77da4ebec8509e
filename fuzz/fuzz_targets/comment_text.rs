//! Comment text rules: an accepted body is NFC, trimmed, 1–2000 characters, free of control
//! characters other than line breaks and tabs, and accepted again unchanged; a refusal
//! names a real reason. The moderation word list finds a plain ASCII word that is there.
#![no_main]

use cinegate::social::text::{comment_body, matches_word_list, TextError, MAX_CHARS};
use libfuzzer_sys::fuzz_target;
use unicode_normalization::is_nfc;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match comment_body(input) {
        Ok(body) => {
            let n = body.chars().count();
            assert!((1..=MAX_CHARS).contains(&n), "{n}");
            assert!(is_nfc(&body), "{body:?}");
            assert_eq!(body.trim(), body);
            assert!(!body
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'));
            assert_eq!(comment_body(&body).as_deref(), Ok(body.as_str()));
        }
        Err(TextError::TooLong(n)) => assert!(n > MAX_CHARS),
        Err(TextError::ControlCharacter(c)) => {
            assert!(char::from_u32(c).is_some_and(|c| c.is_control() && c != '\n' && c != '\t'));
        }
        Err(TextError::Empty) => assert!(input.trim().is_empty(), "{input:?}"),
    }

    let words: Vec<String> = input
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(3)
        .map(str::to_string)
        .collect();
    let found = matches_word_list(input, &words);
    // A word bounded by ASCII punctuation or spaces on both sides is one the list must find.
    let whole = words.iter().any(|w| {
        input
            .split(|c: char| c.is_ascii_punctuation() || c.is_ascii_whitespace())
            .any(|t| t == w)
    });
    if whole {
        assert!(found, "{input:?} {words:?}");
    }
});
