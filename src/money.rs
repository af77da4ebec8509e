//! Minor units ↔ the decimal strings providers speak. Integers only: no float ever touches
//! an amount.

/// Shaped like an ISO 4217 code: three uppercase ASCII letters.
pub fn is_currency_code(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

/// Digits after the decimal point for `currency` (ISO 4217; the zero-decimal ones the
/// providers here use).
pub fn exponent(currency: &str) -> u32 {
    match currency {
        "JPY" | "KRW" | "HUF" | "TWD" | "CLP" | "ISK" | "VND" => 0,
        _ => 2,
    }
}

/// `1999, "USD"` → `"19.99"`; `15000, "KRW"` → `"15000"`.
pub fn to_decimal(amount: u64, currency: &str) -> String {
    match exponent(currency) {
        0 => amount.to_string(),
        e => {
            let unit = 10u64.pow(e);
            format!(
                "{}.{:0width$}",
                amount / unit,
                amount % unit,
                width = e as usize
            )
        }
    }
}

/// The inverse; `None` for anything that is not an exact amount in that currency.
pub fn from_decimal(text: &str, currency: &str) -> Option<u64> {
    let e = exponent(currency) as usize;
    let (whole, frac) = match text.split_once('.') {
        Some((w, f)) => (w, f),
        None => (text, ""),
    };
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // "19.990" is 19.99; "19.991" is not an amount in cents.
    let frac = frac.trim_end_matches('0');
    if frac.len() > e {
        return None;
    }
    let whole: u64 = whole.parse().ok()?;
    let frac_value: u64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<e$}").parse().ok()?
    };
    whole
        .checked_mul(10u64.pow(e as u32))?
        .checked_add(frac_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(to_decimal(1999, "USD"), "19.99");
        assert_eq!(to_decimal(5, "EUR"), "0.05");
        assert_eq!(to_decimal(1500, "JPY"), "1500");
        assert_eq!(to_decimal(15000, "KRW"), "15000");
        assert_eq!(from_decimal("19.99", "USD"), Some(1999));
        assert_eq!(from_decimal("19.9", "USD"), Some(1990));
        assert_eq!(from_decimal("19", "USD"), Some(1900));
        assert_eq!(from_decimal("19.990", "USD"), Some(1999));
        assert_eq!(from_decimal("1500", "JPY"), Some(1500));
        assert_eq!(from_decimal("1500.00", "JPY"), Some(1500));
        assert_eq!(from_decimal("19.991", "USD"), None);
        assert_eq!(from_decimal("1500.5", "JPY"), None);
        assert_eq!(from_decimal("-1", "USD"), None);
        assert_eq!(from_decimal("1e3", "USD"), None);
        assert_eq!(from_decimal("", "USD"), None);
        assert_eq!(from_decimal("99999999999999999999", "USD"), None);
    }
}
