//! Days in the configured time zone (`analytics.timezone`): which day an instant falls on,
//! and the civil dates, ISO weeks and months that reports are bucketed by. A day is a
//! number, days since 1970-01-01 in that zone, so a rollup key is four bytes.

use jiff::tz::TimeZone;

/// The zone rules of `analytics.timezone` (jiff reads the system's tzdb).
#[derive(Debug, Clone)]
pub struct Calendar {
    zone: TimeZone,
    name: String,
}

/// The zone name is not in the system's time zone database.
#[derive(Debug, thiserror::Error)]
#[error("unknown time zone {name:?} (an IANA name such as \"UTC\" or \"Asia/Seoul\"): {message}")]
pub struct UnknownZone {
    pub name: String,
    pub message: String,
}

const DAY: i64 = 86_400;

impl Calendar {
    pub fn new(name: &str) -> Result<Self, UnknownZone> {
        let zone = TimeZone::get(name).map_err(|e| UnknownZone {
            name: name.to_string(),
            message: e.to_string(),
        })?;
        Ok(Self {
            zone,
            name: name.to_string(),
        })
    }

    pub fn utc() -> Self {
        Self {
            zone: TimeZone::UTC,
            name: "UTC".into(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The day Unix second `at` falls on in this zone.
    pub fn day_of(&self, at: i64) -> i32 {
        let offset = jiff::Timestamp::from_second(at)
            .map(|ts| i64::from(self.zone.to_offset(ts).seconds()))
            .unwrap_or(0);
        (at + offset).div_euclid(DAY) as i32
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i32;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i32 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number: (year, month 1–12, day 1–31).
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `YYYY-MM-DD` (exactly: four digits, two, two, and a date that exists) → day number.
pub fn parse_date(text: &str) -> Option<i32> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |s: &str| -> Option<u32> {
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())
            .flatten()
    };
    let (y, m, d) = (
        digits(&text[..4])?,
        digits(&text[5..7])?,
        digits(&text[8..])?,
    );
    if !(1..=12).contains(&m) || d == 0 {
        return None;
    }
    let day = days_from_civil(y as i32, m, d);
    // A date past its month's end (02-30) comes back as another date.
    (civil_from_days(day) == (y as i32, m, d)).then_some(day)
}

/// `YYYY-MM-DD` of a day number.
pub fn format_day(day: i32) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The month (`year × 12 + month − 1`) a day is in.
pub fn month_of(day: i32) -> i32 {
    let (y, m, _) = civil_from_days(day);
    y * 12 + m as i32 - 1
}

/// The first day of a month number.
pub fn first_of_month(month: i32) -> i32 {
    days_from_civil(month.div_euclid(12), month.rem_euclid(12) as u32 + 1, 1)
}

/// The Monday starting the ISO week of `day` (1970-01-01 was a Thursday).
pub fn week_start(day: i32) -> i32 {
    day - (day + 3).rem_euclid(7)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for day in -800..40_000 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn only_real_dates_parse() {
        assert_eq!(parse_date("1970-01-02"), Some(1));
        assert_eq!(
            parse_date("2024-02-29").map(format_day).as_deref(),
            Some("2024-02-29")
        );
        for bad in [
            "2023-02-29",
            "2026-13-01",
            "2026-1-01",
            "2026-01-00",
            "x026-01-01",
            "2026-01-01T00",
            "+026-01-01",
        ] {
            assert_eq!(parse_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn weeks_start_on_monday_and_months_on_the_first() {
        let monday = parse_date("2026-12-07").unwrap_or_default();
        assert_eq!(week_start(monday), monday);
        assert_eq!(week_start(monday + 6), monday);
        assert_eq!(week_start(monday - 1), monday - 7);
        let m = month_of(monday);
        assert_eq!(format_day(first_of_month(m)), "2026-12-01");
        assert_eq!(format_day(first_of_month(m + 1)), "2027-01-01");
    }

    #[test]
    fn days_follow_the_zone() -> Result<(), UnknownZone> {
        // 2026-12-06T20:00:00Z is already the 7th in Seoul (UTC+9).
        let at = 1_796_587_200;
        assert_eq!(format_day(Calendar::utc().day_of(at)), "2026-12-06");
        assert_eq!(
            format_day(Calendar::new("Asia/Seoul")?.day_of(at)),
            "2026-12-07"
        );
        assert!(Calendar::new("Mars/Olympus").is_err());
        Ok(())
    }
}
