//! Webhook signatures: HMAC-SHA256 over `"<timestamp>.<body>"`, sent as
//! `X-Onex-Signature: sha256=<hex>` with `X-Onex-Timestamp: <unix seconds>`, and
//! [`verify_signature`] for receivers (constant-time, with a replay window).

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The signature header: `sha256=<64 lowercase hex digits>`.
pub const SIGNATURE_HEADER: &str = "x-onex-signature";
/// The timestamp header: Unix seconds, as signed.
pub const TIMESTAMP_HEADER: &str = "x-onex-timestamp";
/// The delivery id header: the same for every attempt of one delivery (receivers dedupe on it).
pub const DELIVERY_HEADER: &str = "x-onex-delivery";
/// The event name header, when the delivery names one.
pub const EVENT_HEADER: &str = "x-onex-event";

const PREFIX: &str = "sha256=";

type HmacSha256 = Hmac<Sha256>;

/// Why a signature is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The timestamp header is not Unix seconds.
    #[error("X-Onex-Timestamp is not a Unix time in seconds")]
    MalformedTimestamp,
    /// The signature header is not `sha256=<64 hex digits>`.
    #[error("X-Onex-Signature is not `sha256=<64 hex digits>`")]
    MalformedSignature,
    /// The timestamp is further from now than the tolerance (a replay, or a skewed clock).
    #[error("the timestamp {timestamp} is more than {tolerance_secs} s away from now ({now})")]
    OutsideTolerance {
        /// The signed timestamp.
        timestamp: u64,
        /// The receiver's time.
        now: u64,
        /// The window.
        tolerance_secs: u64,
    },
    /// The signature is not that of this body and timestamp under this secret.
    #[error("the signature does not match")]
    Mismatch,
    /// The secret cannot key an HMAC (never happens with HMAC-SHA256, which takes any length).
    #[error("the secret cannot be used as an HMAC key")]
    InvalidKey,
}

/// Signs with one secret; the key schedule is computed once. Debug never shows the key.
#[derive(Clone)]
pub struct Signer {
    keyed: HmacSha256,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Signer(<redacted>)")
    }
}

impl Signer {
    /// A signer keyed with `secret`.
    pub fn new(secret: &[u8]) -> Result<Self, SignatureError> {
        Ok(Self { keyed: HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::InvalidKey)? })
    }

    /// The `X-Onex-Signature` value for `body` sent at `timestamp` (Unix seconds).
    pub fn sign(&self, timestamp: u64, body: &[u8]) -> String {
        let mut mac = self.keyed.clone();
        update(&mut mac, timestamp.to_string().as_bytes(), body);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 64);
        out.push_str(PREFIX);
        for byte in digest.iter() {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0xf)]));
        }
        out
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn update(mac: &mut HmacSha256, timestamp: &[u8], body: &[u8]) {
    mac.update(timestamp);
    mac.update(b".");
    mac.update(body);
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// The 32 bytes of a `sha256=<hex>` header.
fn parse_signature(header: &str) -> Result<[u8; 32], SignatureError> {
    let hex = header.trim().strip_prefix(PREFIX).ok_or(SignatureError::MalformedSignature)?.as_bytes();
    if hex.len() != 64 {
        return Err(SignatureError::MalformedSignature);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let (hi, lo) = (hex_value(pair[0]), hex_value(pair[1]));
        *byte = (hi.ok_or(SignatureError::MalformedSignature)? << 4) | lo.ok_or(SignatureError::MalformedSignature)?;
    }
    Ok(out)
}

/// Checks a delivery as a receiver: `timestamp_header` and `signature_header` as received,
/// `body` the raw request body, `now_unix` the receiver's clock. Refuses malformed headers, a
/// timestamp more than `tolerance_secs` away from now (replays), and a signature that does not
/// match (compared in constant time).
pub fn verify_signature(
    secret: &[u8],
    timestamp_header: &str,
    signature_header: &str,
    body: &[u8],
    now_unix: u64,
    tolerance_secs: u64,
) -> Result<(), SignatureError> {
    let timestamp_text = timestamp_header.trim();
    if timestamp_text.is_empty() || !timestamp_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SignatureError::MalformedTimestamp);
    }
    let timestamp: u64 = timestamp_text.parse().map_err(|_| SignatureError::MalformedTimestamp)?;
    if timestamp.abs_diff(now_unix) > tolerance_secs {
        return Err(SignatureError::OutsideTolerance { timestamp, now: now_unix, tolerance_secs });
    }
    let expected = parse_signature(signature_header)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| SignatureError::InvalidKey)?;
    update(&mut mac, timestamp_text.as_bytes(), body);
    mac.verify_slice(&expected).map_err(|_| SignatureError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a-signing-secret-of-some-length";

    #[test]
    fn signatures_verify_and_anything_changed_is_refused() {
        let signer = Signer::new(SECRET).unwrap();
        let sig = signer.sign(1_700_000_000, b"{\"a\":1}");
        assert!(sig.starts_with("sha256=") && sig.len() == 71, "{sig}");
        assert_eq!(verify_signature(SECRET, "1700000000", &sig, b"{\"a\":1}", 1_700_000_010, 300), Ok(()));
        let upper = format!("sha256={}", sig[7..].to_ascii_uppercase());
        assert_eq!(verify_signature(SECRET, "1700000000", &upper, b"{\"a\":1}", 1_700_000_000, 300), Ok(()));
        let refused = |ts: &str, sig: &str, body: &[u8], secret: &[u8]| {
            verify_signature(secret, ts, sig, body, 1_700_000_000, 300).unwrap_err()
        };
        assert_eq!(refused("1700000000", &sig, b"{\"a\":2}", SECRET), SignatureError::Mismatch);
        assert_eq!(refused("1700000001", &sig, b"{\"a\":1}", SECRET), SignatureError::Mismatch);
        assert_eq!(refused("1700000000", &sig, b"{\"a\":1}", b"another-secret"), SignatureError::Mismatch);
        assert_eq!(refused("-5", &sig, b"", SECRET), SignatureError::MalformedTimestamp);
        assert_eq!(refused("1700000000", "sha1=00", b"", SECRET), SignatureError::MalformedSignature);
        assert_eq!(
            refused("1700000000", &format!("{}zz", &sig[..69]), b"", SECRET),
            SignatureError::MalformedSignature
        );
        assert!(matches!(refused("1699999000", &sig, b"", SECRET), SignatureError::OutsideTolerance { .. }));
        assert!(matches!(refused("1700001000", &sig, b"", SECRET), SignatureError::OutsideTolerance { .. }));
    }

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Known answer from an independent implementation:
        // `printf '42.body' | openssl dgst -sha256 -hmac Jefe`.
        let expected = "sha256=cce60cde3cabb06e668630097083ddb8602a32f9d5b03438673b1b591864096a";
        assert_eq!(Signer::new(b"Jefe").unwrap().sign(42, b"body"), expected);
        assert_eq!(format!("{:?}", Signer::new(b"Jefe").unwrap()), "Signer(<redacted>)");
    }
}
