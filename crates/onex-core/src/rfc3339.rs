//! RFC 3339 timestamps written digit by digit into a string the caller owns, exactly as
//! chrono's `to_rfc3339_opts(_, true)` writes them, without its formatter or a string of their
//! own (chrono's was most of the cost of a stamp line, and a header of every bus message).

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};

/// How much of the second's fraction to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fraction {
    /// None, or milli-, micro- or nanoseconds, whichever shows it exactly (`AutoSi`).
    Auto,
    /// Always six digits (`Micros`).
    Micros,
}

/// Appends `ts` as `to_rfc3339_opts(fraction, true)` writes it. Years outside 0..=9999 and
/// leap seconds take chrono's own path.
pub fn write(out: &mut String, ts: &DateTime<Utc>, fraction: Fraction) {
    let (year, nanos) = (ts.year(), ts.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        let format = match fraction {
            Fraction::Auto => SecondsFormat::AutoSi,
            Fraction::Micros => SecondsFormat::Micros,
        };
        out.push_str(&ts.to_rfc3339_opts(format, true));
        return;
    }
    push_digits(out, year.unsigned_abs(), 4);
    for (separator, value) in
        [('-', ts.month()), ('-', ts.day()), ('T', ts.hour()), (':', ts.minute()), (':', ts.second())]
    {
        out.push(separator);
        push_digits(out, value, 2);
    }
    match (fraction, nanos) {
        (Fraction::Micros, n) => push_fraction(out, n / 1_000, 6),
        (Fraction::Auto, 0) => {}
        (Fraction::Auto, n) if n % 1_000_000 == 0 => push_fraction(out, n / 1_000_000, 3),
        (Fraction::Auto, n) if n % 1_000 == 0 => push_fraction(out, n / 1_000, 6),
        (Fraction::Auto, n) => push_fraction(out, n, 9),
    }
    out.push('Z');
}

fn push_fraction(out: &mut String, value: u32, width: u32) {
    out.push('.');
    push_digits(out, value, width);
}

/// `value` in decimal, zero-padded to `width` digits (`value` has at most `width`).
fn push_digits(out: &mut String, value: u32, width: u32) {
    for place in (0..width).rev() {
        out.push(char::from(b'0' + (value / 10u32.pow(place) % 10) as u8));
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, SecondsFormat, Utc};
    use proptest::prelude::*;

    use super::{Fraction, write};

    fn written(ts: &DateTime<Utc>, fraction: Fraction) -> String {
        let mut out = String::new();
        write(&mut out, ts, fraction);
        out
    }

    proptest! {
        /// The hand-written timestamp is exactly chrono's, whatever the instant and fraction.
        #[test]
        fn timestamps_are_written_as_chrono_writes_them(
            seconds in -70_000_000_000i64..300_000_000_000,
            nanos in prop_oneof![Just(0u32), (0u32..1000).prop_map(|m| m * 1_000_000), (0u32..1_000_000).prop_map(|u| u * 1_000), 0u32..2_000_000_000],
        ) {
            let ts: DateTime<Utc> = DateTime::from_timestamp(seconds, nanos).unwrap_or_default();
            prop_assert_eq!(written(&ts, Fraction::Auto), ts.to_rfc3339_opts(SecondsFormat::AutoSi, true));
            prop_assert_eq!(written(&ts, Fraction::Micros), ts.to_rfc3339_opts(SecondsFormat::Micros, true));
        }
    }
}
