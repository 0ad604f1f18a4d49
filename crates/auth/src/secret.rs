//! Random secrets, their hashes, and the PKCE S256 check (RFC 7636).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// `N` random bytes from the operating system.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], String> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| format!("no randomness: {e}"))?;
    Ok(buf)
}

/// A 256-bit random secret, base64url, after `prefix` (`bat_`, `brt_`, ...). The prefix makes a
/// leaked secret recognisable to scanners and in logs.
pub fn random_secret(prefix: &str) -> Result<String, String> {
    Ok(format!("{prefix}{}", URL_SAFE_NO_PAD.encode(random_bytes::<32>()?)))
}

/// A short random id in hex (`2 * N` characters).
pub fn random_id<const N: usize>() -> Result<String, String> {
    Ok(hex(&random_bytes::<N>()?))
}

/// Lower-case hex. Built by table rather than `format!` per byte: the hub hashes a presented
/// token on every request, and formatting was most of that cost.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Hex SHA-256 of a secret: what the store keeps instead of the secret. Every secret hashed this
/// way carries 256 random bits, so a plain (unsalted, fast) hash is enough: there is nothing to
/// guess.
pub fn sha256_hex(secret: &str) -> String {
    hex(&Sha256::digest(secret.as_bytes()))
}

/// Hex SHA-256 of `salt || secret` (the owner secret, which a person pastes).
pub fn salted_hash(salt: &str, secret: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt.as_bytes());
    h.update(b"\0");
    h.update(secret.as_bytes());
    hex(&h.finalize())
}

/// Equality whose time does not depend on where the inputs differ (only on their lengths,
/// which are public here: hashes and fixed-size tokens), from `subtle`.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    subtle::ConstantTimeEq::ct_eq(a, b).into()
}

/// `BASE64URL(SHA256(verifier))`, the S256 code challenge of a verifier.
pub fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Whether `s` is a well-formed S256 challenge: 43 base64url characters (a SHA-256 digest).
pub fn valid_challenge(s: &str) -> bool {
    s.len() == 43 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `verifier` is well formed (43 to 128 of `[A-Za-z0-9-._~]`, RFC 7636 §4.1) and hashes
/// to `challenge`.
pub fn verify_pkce(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && ct_eq(s256(verifier).as_bytes(), challenge.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// AS-02: the RFC 7636 appendix B vector.
    #[test]
    fn as02_pkce_rfc7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert_eq!(s256(verifier), challenge);
        assert!(valid_challenge(challenge));
        assert!(verify_pkce(verifier, challenge));
        // One character off, too short, bad characters, or the challenge itself as verifier.
        assert!(!verify_pkce("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXj", challenge));
        assert!(!verify_pkce("short", &s256("short")));
        let spaced = "dBjftJeZ4CVP mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        assert!(!verify_pkce(spaced, &s256(spaced)));
        assert!(!verify_pkce(challenge, challenge));
        assert!(!valid_challenge("plain-challenge"));
        assert!(!valid_challenge(&format!("{}=", &challenge[..42])));
    }

    #[test]
    fn secrets_and_hashes() {
        let a = random_secret("bat_").unwrap();
        let b = random_secret("bat_").unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("bat_") && a.len() == 4 + 43);
        assert_eq!(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_ne!(salted_hash("s1", "x"), salted_hash("s2", "x"));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"ab"));
        assert_eq!(random_id::<6>().unwrap().len(), 12);
    }
}
