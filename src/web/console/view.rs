//! What the console's templates print, made from domain records: money as money, times
//! as UTC dates, sizes in MB/GB. Plain strings, so templates only print (and escape).

use crate::money;

/// `1200` `"USD"` → `"12.00 USD"`; `15000` `"KRW"` → `"15000 KRW"`.
pub fn money(amount: i64, currency: &str) -> String {
    let sign = if amount < 0 { "−" } else { "" };
    format!(
        "{sign}{} {currency}",
        money::to_decimal(amount.unsigned_abs(), currency)
    )
}

/// Unix seconds → `2026-12-06 22:31 UTC`.
pub fn time(at: i64) -> String {
    let days = at.div_euclid(86_400);
    let secs = at.rem_euclid(86_400);
    let (y, m, d) = crate::analytics::calendar::civil_from_days(days as i32);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        (secs % 3600) / 60
    )
}

/// Bytes → `"1.2 GB"`, `"340 MB"`, `"12 kB"`.
pub fn size(bytes: u64) -> String {
    const K: f64 = 1000.0;
    let b = bytes as f64;
    if b >= K * K * K {
        format!("{:.1} GB", b / (K * K * K))
    } else if b >= K * K {
        format!("{:.0} MB", b / (K * K))
    } else if b >= K {
        format!("{:.0} kB", b / K)
    } else {
        format!("{bytes} B")
    }
}

/// Seconds → `"1:02:03"` or `"2:03"`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_times_and_sizes_read_as_people_write_them() {
        assert_eq!(money(1200, "USD"), "12.00 USD");
        assert_eq!(money(-1200, "USD"), "−12.00 USD");
        assert_eq!(money(15000, "KRW"), "15000 KRW");
        assert_eq!(time(0), "1970-01-01 00:00 UTC");
        assert_eq!(time(1_796_500_000), "2026-12-05 19:46 UTC");
        assert_eq!(time(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(size(1_234_000_000), "1.2 GB");
        assert_eq!(size(340_000_000), "340 MB");
        assert_eq!(duration(3723.0), "1:02:03");
        assert_eq!(duration(62.4), "1:02");
    }
}
