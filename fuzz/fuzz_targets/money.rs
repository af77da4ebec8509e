//! Money: minor units ↔ decimal strings. Every amount round-trips through its decimal
//! form, and whatever text parses is an amount that prints back to a parse of itself.
#![no_main]

use cinegate::money::{from_decimal, is_currency_code, to_decimal};
use libfuzzer_sys::fuzz_target;

const CURRENCIES: [&str; 6] = ["USD", "EUR", "JPY", "KRW", "GBP", "HUF"];

fuzz_target!(|data: &[u8]| {
    let Some((amount, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let Some((&pick, text)) = rest.split_first() else {
        return;
    };
    let amount = u64::from_le_bytes(*amount);
    let currency = CURRENCIES[usize::from(pick) % CURRENCIES.len()];
    assert!(is_currency_code(currency));
    let decimal = to_decimal(amount, currency);
    assert_eq!(from_decimal(&decimal, currency), Some(amount), "{decimal}");

    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let _ = is_currency_code(text);
    if let Some(value) = from_decimal(text, currency) {
        assert!(!text.is_empty() && !text.starts_with('.'), "{text:?}");
        assert!(text.bytes().all(|b| b.is_ascii_digit() || b == b'.'));
        assert_eq!(
            from_decimal(&to_decimal(value, currency), currency),
            Some(value)
        );
    }
});
