//! Unix-millisecond times as UTC text, without a date crate: the one calendar conversion the
//! CLI, the console and the broker's OpenRouter-shaped answers share.

/// `2025-01-31 14:05:09` (UTC).
pub fn utc(ms: i64) -> String {
    let (y, m, d, rem) = split(ms);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2025-01-31T14:05:09.123Z` (RFC 3339, UTC, milliseconds).
pub fn rfc3339(ms: i64) -> String {
    let (y, m, d, rem) = split(ms);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms.rem_euclid(1000)
    )
}

/// Year, month, day and the second of that day.
fn split(ms: i64) -> (i64, i64, i64, i64) {
    let secs = ms.div_euclid(1000);
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    (y, m, d, secs.rem_euclid(86_400))
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian, UTC).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// A subtitle cue time: `HH:MM:SS,mmm` (SRT, `separator` `,`) or `HH:MM:SS.mmm` (WebVTT, `.`).
pub fn cue_timestamp(seconds: f64, separator: char) -> String {
    let ms = (seconds.max(0.0) * 1000.0).round() as u64;
    format!(
        "{:02}:{:02}:{:02}{separator}{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_rfc3339() {
        assert_eq!(utc(0), "1970-01-01 00:00:00");
        assert_eq!(utc(1_738_332_309_000), "2025-01-31 14:05:09");
        assert_eq!(utc(1_763_711_999_123), "2025-11-21 07:59:59");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_763_711_999_123), "2025-11-21T07:59:59.123Z");
        assert_eq!(utc(-1), "1969-12-31 23:59:59");
    }
}
