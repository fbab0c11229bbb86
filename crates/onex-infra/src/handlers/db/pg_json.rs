//! PostgreSQL values, as the server sends them in binary, turned into JSON: integers and floats
//! as numbers, `numeric` as an exact decimal string, text and uuid as strings, timestamps as
//! RFC 3339 / ISO 8601 strings, json/jsonb as JSON, bytea as base64, arrays (of any dimension)
//! as nested arrays, NULL as null.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{NaiveDate, NaiveDateTime, NaiveTime, SecondsFormat, TimeDelta};
use serde_json::{Number, Value as Json};
use sqlx::postgres::{PgTypeInfo, PgTypeKind, PgValueFormat, PgValueRef};
use sqlx::{TypeInfo, ValueRef};

/// Why a value could not be turned into JSON.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Unconvertible {
    /// A type without a JSON mapping (its name).
    Type(String),
    /// Bytes that do not fit their type (a server or protocol fault).
    Malformed(&'static str),
}

type Converted = Result<Json, Unconvertible>;

/// The JSON of one column value.
pub(crate) fn value_to_json(value: PgValueRef<'_>) -> Converted {
    if value.is_null() {
        return Ok(Json::Null);
    }
    let bytes = value.as_bytes().map_err(|_| Unconvertible::Malformed("value"))?;
    if value.format() == PgValueFormat::Text {
        // Never produced by `sqlx::query` (results are binary); kept as the server's text.
        return Ok(Json::String(String::from_utf8_lossy(bytes).into_owned()));
    }
    let ty = value.type_info();
    let oid = ty.oid().map_or(0, |o| o.0);
    decode(bytes, oid, Some(&*ty))
}

/// Decodes `bytes` of type `oid`; `ty` (when known) resolves types that are not built in:
/// enums are text, domains their base type, custom arrays arrays of their element.
fn decode(bytes: &[u8], oid: u32, ty: Option<&PgTypeInfo>) -> Converted {
    if let Some(json) = scalar(bytes, oid) {
        return json;
    }
    if is_builtin_array(oid) {
        return array(bytes, None);
    }
    let Some(ty) = ty.filter(|t| t.oid().is_some_and(|o| o.0 >= FIRST_NORMAL_OID)) else {
        return Err(Unconvertible::Type(ty.map_or_else(|| format!("oid {oid}"), |t| t.name().to_owned())));
    };
    match ty.kind() {
        PgTypeKind::Enum(_) => text(bytes),
        PgTypeKind::Domain(base) => decode(bytes, base.oid().map_or(0, |o| o.0), Some(base)),
        PgTypeKind::Array(element) => array(bytes, Some(element)),
        _ => Err(Unconvertible::Type(ty.name().to_owned())),
    }
}

/// The first OID PostgreSQL assigns to user-created objects; types below it are built in and
/// resolved by sqlx without a catalogue lookup.
const FIRST_NORMAL_OID: u32 = 16_384;

/// The built-in array types whose elements [`scalar`] decodes.
fn is_builtin_array(oid: u32) -> bool {
    matches!(
        oid,
        199 | 1000
            | 1001
            | 1002
            | 1003
            | 1005
            | 1007
            | 1009
            | 1014
            | 1015
            | 1016
            | 1021
            | 1022
            | 1028
            | 1115
            | 1182
            | 1183
            | 1185
            | 1231
            | 2951
            | 3807
    )
}

/// A built-in scalar type's JSON; `None` when `oid` is not one.
fn scalar(bytes: &[u8], oid: u32) -> Option<Converted> {
    Some(match oid {
        16 => fixed::<1>(bytes).map(|[b]| Json::Bool(b != 0)),
        17 => Ok(Json::String(BASE64.encode(bytes))),
        18 | 19 | 25 | 705 | 1042 | 1043 => text(bytes),
        20 => fixed(bytes).map(|b| Json::from(i64::from_be_bytes(b))),
        21 => fixed(bytes).map(|b| Json::from(i16::from_be_bytes(b))),
        23 => fixed(bytes).map(|b| Json::from(i32::from_be_bytes(b))),
        26 => fixed(bytes).map(|b| Json::from(u32::from_be_bytes(b))),
        // The shortest decimal of the f32 (1.1, not 1.100000023841858).
        700 => fixed(bytes).map(|b| float(f32::from_be_bytes(b).to_string().parse().unwrap_or(f64::NAN))),
        701 => fixed(bytes).map(|b| float(f64::from_be_bytes(b))),
        1700 => numeric(bytes).map(Json::String),
        2950 => fixed::<16>(bytes).map(|b| Json::String(uuid::Uuid::from_bytes(b).hyphenated().to_string())),
        114 => serde_json::from_slice(bytes).map_err(|_| Unconvertible::Malformed("json")),
        3802 => match bytes.split_first() {
            Some((1, json)) => serde_json::from_slice(json).map_err(|_| Unconvertible::Malformed("jsonb")),
            _ => Err(Unconvertible::Malformed("jsonb version")),
        },
        1082 => fixed(bytes).map(|b| date(i32::from_be_bytes(b))),
        1083 => fixed(bytes).map(|b| time(i64::from_be_bytes(b))),
        1114 => fixed(bytes).map(|b| timestamp(i64::from_be_bytes(b), false)),
        1184 => fixed(bytes).map(|b| timestamp(i64::from_be_bytes(b), true)),
        _ => return None,
    })
}

fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], Unconvertible> {
    bytes.try_into().map_err(|_| Unconvertible::Malformed("fixed-size value"))
}

fn text(bytes: &[u8]) -> Converted {
    std::str::from_utf8(bytes).map(|s| Json::String(s.to_owned())).map_err(|_| Unconvertible::Malformed("text"))
}

/// A float as a number; NaN and the infinities (which JSON lacks) as PostgreSQL spells them.
fn float(x: f64) -> Json {
    Number::from_f64(x).map_or_else(
        || {
            Json::String(
                if x.is_nan() {
                    "NaN"
                } else if x > 0.0 {
                    "Infinity"
                } else {
                    "-Infinity"
                }
                .to_owned(),
            )
        },
        Json::Number,
    )
}

/// 2000-01-01, PostgreSQL's epoch for dates and timestamps.
fn pg_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(2000, 1, 1).unwrap_or_default().and_time(NaiveTime::MIN)
}

/// `YYYY-MM-DD` of a day count since 2000-01-01; `infinity`/`-infinity` as such.
fn date(days: i32) -> Json {
    let text = match days {
        i32::MAX => "infinity".to_owned(),
        i32::MIN => "-infinity".to_owned(),
        days => pg_epoch()
            .date()
            .checked_add_signed(TimeDelta::days(i64::from(days)))
            .map_or_else(|| format!("{days} days after 2000-01-01"), |d| d.format("%Y-%m-%d").to_string()),
    };
    Json::String(text)
}

/// `HH:MM:SS[.ffffff]` of microseconds since midnight.
fn time(micros: i64) -> Json {
    let time = NaiveTime::MIN + TimeDelta::microseconds(micros);
    let text = if micros == 86_400_000_000 { "24:00:00".to_owned() } else { time.format("%H:%M:%S%.f").to_string() };
    Json::String(text)
}

/// A timestamp of microseconds since 2000-01-01: RFC 3339 in UTC (`Z`) for timestamptz, ISO
/// 8601 without offset for timestamp.
fn timestamp(micros: i64, with_zone: bool) -> Json {
    let text = match micros {
        i64::MAX => "infinity".to_owned(),
        i64::MIN => "-infinity".to_owned(),
        micros => match pg_epoch().checked_add_signed(TimeDelta::microseconds(micros)) {
            Some(at) if with_zone => at.and_utc().to_rfc3339_opts(SecondsFormat::AutoSi, true),
            Some(at) => at.format("%Y-%m-%dT%H:%M:%S%.f").to_string(),
            None => format!("{micros} µs after 2000-01-01"),
        },
    };
    Json::String(text)
}

/// A `numeric` as its exact decimal text (as PostgreSQL prints it, to its display scale).
///
/// Wire format: digit count, weight (of the first base-10000 digit), sign, display scale,
/// then the base-10000 digits, all big-endian 16-bit.
pub(crate) fn numeric(bytes: &[u8]) -> Result<String, Unconvertible> {
    let malformed = Unconvertible::Malformed("numeric");
    let word = |i: usize| bytes.get(i * 2..i * 2 + 2).map(|b| u16::from_be_bytes([b[0], b[1]]));
    let (Some(ndigits), Some(weight), Some(sign), Some(dscale)) = (word(0), word(1), word(2), word(3)) else {
        return Err(malformed);
    };
    let weight = i64::from(weight as i16);
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".to_owned()),
        0xD000 => return Ok("Infinity".to_owned()),
        0xF000 => return Ok("-Infinity".to_owned()),
        _ => return Err(malformed),
    }
    let digits: Vec<u16> = (0..usize::from(ndigits)).map(|i| word(4 + i)).collect::<Option<_>>().ok_or(malformed)?;
    let digit = |i: i64| usize::try_from(i).ok().and_then(|i| digits.get(i)).copied().unwrap_or(0);
    let mut out = String::with_capacity(usize::from(ndigits) * 4 + 8);
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        out.push_str(&digit(0).to_string());
        for i in 1..=weight {
            out.push_str(&format!("{:04}", digit(i)));
        }
    }
    if dscale > 0 {
        out.push('.');
        let start = out.len();
        let mut i = weight + 1;
        while out.len() - start < usize::from(dscale) {
            out.push_str(&format!("{:04}", digit(i)));
            i += 1;
        }
        out.truncate(start + usize::from(dscale));
    }
    Ok(out)
}

/// A one- or more-dimensional array: header (dimensions, null flag, element OID, then each
/// dimension's length and lower bound), then every element as length + bytes (-1 for NULL).
fn array(bytes: &[u8], element: Option<&PgTypeInfo>) -> Converted {
    let mut reader = Reader(bytes);
    let dims = reader.i32()?;
    let _has_nulls = reader.i32()?;
    let element_oid = reader.i32()? as u32;
    let mut lengths = Vec::with_capacity(usize::try_from(dims).unwrap_or(0));
    for _ in 0..dims {
        lengths.push(usize::try_from(reader.i32()?).map_err(|_| Unconvertible::Malformed("array length"))?);
        let _lower_bound = reader.i32()?;
    }
    if lengths.is_empty() {
        return Ok(Json::Array(Vec::new()));
    }
    nested(&mut reader, &lengths, element_oid, element)
}

fn nested(reader: &mut Reader<'_>, lengths: &[usize], oid: u32, element: Option<&PgTypeInfo>) -> Converted {
    let (&len, inner) = lengths.split_first().ok_or(Unconvertible::Malformed("array"))?;
    let mut items = Vec::with_capacity(len.min(4096));
    for _ in 0..len {
        items.push(if inner.is_empty() {
            match reader.i32()? {
                -1 => Json::Null,
                n => {
                    let n = usize::try_from(n).map_err(|_| Unconvertible::Malformed("array element"))?;
                    decode(reader.take(n)?, oid, element)?
                }
            }
        } else {
            nested(reader, inner, oid, element)?
        });
    }
    Ok(Json::Array(items))
}

/// Reads big-endian fields off a byte slice.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Unconvertible> {
        if self.0.len() < n {
            return Err(Unconvertible::Malformed("array"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn i32(&mut self) -> Result<i32, Unconvertible> {
        fixed(self.take(4)?).map(i32::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        for w in [digits.len() as u16, weight as u16, sign, dscale].into_iter().chain(digits.iter().copied()) {
            out.extend_from_slice(&w.to_be_bytes());
        }
        out
    }

    #[test]
    fn numerics_print_exactly() {
        let n = numeric_bytes(4, 0, 9, &[1234, 5678, 9012, 3456, 7890, 1234, 5678, 9000]);
        assert_eq!(numeric(&n).unwrap(), "12345678901234567890.123456789");
        assert_eq!(numeric(&numeric_bytes(-1, 0x4000, 3, &[50])).unwrap(), "-0.005");
        assert_eq!(numeric(&numeric_bytes(-2, 0, 6, &[1200])).unwrap(), "0.000012");
        assert_eq!(numeric(&numeric_bytes(1, 0, 2, &[1])).unwrap(), "10000.00");
        assert_eq!(numeric(&numeric_bytes(0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(numeric(&numeric_bytes(0, 0xC000, 0, &[])).unwrap(), "NaN");
        assert!(numeric(&[0, 1]).is_err());
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(date(0), "2000-01-01");
        assert_eq!(date(-1), "1999-12-31");
        assert_eq!(date(i32::MAX), "infinity");
        assert_eq!(timestamp(1_500_000, true), "2000-01-01T00:00:01.500Z");
        assert_eq!(timestamp(1_000_000, false), "2000-01-01T00:00:01");
        assert_eq!(time(3_723_000_001), "01:02:03.000001");
    }

    #[test]
    fn arrays_nest_and_keep_nulls() {
        // int4[][] {{1,NULL},{3,4}}
        let mut b = Vec::new();
        for v in [2i32, 1, 23, 2, 1, 2, 1] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for v in [Some(1i32), None, Some(3), Some(4)] {
            match v {
                Some(v) => {
                    b.extend_from_slice(&4i32.to_be_bytes());
                    b.extend_from_slice(&v.to_be_bytes());
                }
                None => b.extend_from_slice(&(-1i32).to_be_bytes()),
            }
        }
        assert_eq!(array(&b, None).unwrap(), serde_json::json!([[1, null], [3, 4]]));
        assert_eq!(array(&b[..b.len() - 1], None), Err(Unconvertible::Malformed("array")));
    }

    #[test]
    fn floats_without_json_numbers_are_named() {
        assert_eq!(float(f64::NAN), "NaN");
        assert_eq!(float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(scalar(&1.1f32.to_be_bytes(), 700).unwrap().unwrap(), serde_json::json!(1.1));
    }
}
