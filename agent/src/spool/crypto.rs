//! Encryption at rest of event payloads (PRODUCT §4): ChaCha20-Poly1305 with a 32-byte key
//! read from a file only the service user can read.
//!
//! * The key file holds either exactly 32 raw bytes, or 64 hexadecimal characters (either
//!   case; surrounding whitespace such as a final newline is ignored). `head -c 32
//!   /dev/urandom > spool.key` and `openssl rand -hex 32 > spool.key` both make one.
//! * On unix the file must not be readable, writable or executable by group or others
//!   (`mode & 0o077 == 0`); otherwise the spool refuses to open.
//! * Every record gets a fresh random 96-bit nonce (the OS generator), stored in front of the
//!   ciphertext. The associated data is the record's seq and event id, so a record moved to
//!   another seq or given another id does not decrypt.
//! * The meta keyspace keeps a *key check value*: a constant sealed with the key. Opening with
//!   another key fails on it, before any record is touched, so a wrong key never quarantines
//!   good records.

use std::path::Path;

use chacha20poly1305::aead::{Aead, AeadInPlace, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, KeyInit, Nonce};

use super::SpoolError;

const NONCE_LEN: usize = 12;
/// Bytes a sealed payload has more than its plaintext: the nonce and the tag.
pub const SEAL_OVERHEAD: usize = NONCE_LEN + 16;
/// Nonces drawn from the OS generator at once (one system call for a whole batch).
const NONCES_PER_DRAW: usize = 256;
const KEY_CHECK_PLAINTEXT: &[u8] = b"tallyman spool key check v1";
const KEY_CHECK_AAD: &[u8] = b"tallyman spool key check";
/// Longest key file read (64 hex characters and generous whitespace).
const MAX_KEY_FILE: u64 = 256;

/// The spool's cipher.
pub struct Cipher(ChaCha20Poly1305);

impl std::fmt::Debug for Cipher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cipher(..)")
    }
}

/// Why a payload could not be sealed or opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("the operating system's random generator failed")]
    Random,
    #[error("the record does not decrypt (damaged, or written with another key)")]
    Decrypt,
}

fn aad(seq: u64, id: &[u8; 16]) -> [u8; 24] {
    let mut a = [0u8; 24];
    a[..8].copy_from_slice(&seq.to_be_bytes());
    a[8..].copy_from_slice(id);
    a
}

impl Cipher {
    pub fn new(key: &[u8; 32]) -> Cipher {
        Cipher(ChaCha20Poly1305::new(Key::from_slice(key)))
    }

    /// Read and check the key file.
    pub fn from_key_file(path: &Path) -> Result<Cipher, SpoolError> {
        let read_err = |source| SpoolError::ReadKey {
            path: path.to_path_buf(),
            source,
        };
        let meta = std::fs::metadata(path).map_err(read_err)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(SpoolError::KeyPermissions {
                    path: path.to_path_buf(),
                    mode,
                });
            }
        }
        if !meta.is_file() || meta.len() > MAX_KEY_FILE {
            return Err(SpoolError::KeyFormat {
                path: path.to_path_buf(),
                len: meta.len(),
            });
        }
        let bytes = std::fs::read(path).map_err(read_err)?;
        let key = parse_key(&bytes).ok_or(SpoolError::KeyFormat {
            path: path.to_path_buf(),
            len: bytes.len() as u64,
        })?;
        Ok(Cipher::new(&key))
    }

    /// `nonce | ciphertext` of `plain` for the record (`seq`, `id`).
    #[cfg(test)]
    pub fn seal(&self, seq: u64, id: &[u8; 16], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.seal_with(&aad(seq, id), plain)
    }

    /// Append `nonce | ciphertext | tag` of `plain` to `out`, for the record (`seq`, `id`).
    pub fn seal_into(
        &self,
        seq: u64,
        id: &[u8; 16],
        nonce: [u8; NONCE_LEN],
        plain: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), CryptoError> {
        out.extend_from_slice(&nonce);
        let start = out.len();
        out.extend_from_slice(plain);
        let Some(buf) = out.get_mut(start..) else {
            return Err(CryptoError::Decrypt);
        };
        let tag = self
            .0
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad(seq, id), buf)
            .map_err(|_| CryptoError::Decrypt)?;
        out.extend_from_slice(&tag);
        Ok(())
    }

    /// The plaintext of a sealed record payload.
    pub fn open(&self, seq: u64, id: &[u8; 16], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        self.open_with(&aad(seq, id), sealed)
    }

    fn seal_with(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).map_err(|_| CryptoError::Random)?;
        let ct = self
            .0
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
            .map_err(|_| CryptoError::Decrypt)?;
        let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    fn open_with(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let (nonce, ct) = sealed
            .split_at_checked(NONCE_LEN)
            .ok_or(CryptoError::Decrypt)?;
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| CryptoError::Decrypt)
    }

    /// A new key check value for this key.
    pub fn key_check(&self) -> Result<Vec<u8>, CryptoError> {
        self.seal_with(KEY_CHECK_AAD, KEY_CHECK_PLAINTEXT)
    }

    /// Whether `stored` was made by [`Cipher::key_check`] with this key.
    pub fn matches(&self, stored: &[u8]) -> bool {
        self.open_with(KEY_CHECK_AAD, stored)
            .is_ok_and(|p| p == KEY_CHECK_PLAINTEXT)
    }
}

/// Random nonces, drawn from the OS generator in bulk.
#[derive(Debug, Default)]
pub struct Nonces {
    buf: Vec<u8>,
    at: usize,
}

impl Nonces {
    pub fn next(&mut self) -> Result<[u8; NONCE_LEN], CryptoError> {
        if self.at + NONCE_LEN > self.buf.len() {
            self.buf.resize(NONCE_LEN * NONCES_PER_DRAW, 0);
            getrandom::fill(&mut self.buf).map_err(|_| CryptoError::Random)?;
            self.at = 0;
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(
            self.buf
                .get(self.at..self.at + NONCE_LEN)
                .unwrap_or(&[0; NONCE_LEN]),
        );
        self.at += NONCE_LEN;
        Ok(n)
    }
}

/// 32 raw bytes, or 64 hex characters with optional surrounding whitespace.
fn parse_key(bytes: &[u8]) -> Option<[u8; 32]> {
    if let Ok(raw) = <[u8; 32]>::try_from(bytes) {
        return Some(raw);
    }
    let text = bytes.trim_ascii();
    if text.len() != 64 {
        return None;
    }
    let mut key = [0u8; 32];
    for (slot, pair) in key.iter_mut().zip(text.chunks_exact(2)) {
        let hi = hex_digit(*pair.first()?)?;
        let lo = hex_digit(*pair.get(1)?)?;
        *slot = (hi << 4) | lo;
    }
    Some(key)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_forms() {
        assert_eq!(parse_key(&[7u8; 32]), Some([7u8; 32]));
        let hex = "00112233445566778899aabbccddeeff00112233445566778899AABBCCDDEEFF\n";
        let key = parse_key(hex.as_bytes()).unwrap();
        assert_eq!(key[0], 0x00);
        assert_eq!(key[15], 0xff);
        assert_eq!(key[31], 0xff);
        assert_eq!(parse_key(b"abc"), None);
        assert_eq!(parse_key(&[b'g'; 64]), None);
        assert_eq!(parse_key(&[7u8; 33]), None);
    }

    #[test]
    fn seal_open_and_associated_data() {
        let c = Cipher::new(&[1; 32]);
        let sealed = c.seal(5, &[9; 16], b"envelope").unwrap();
        assert_eq!(c.open(5, &[9; 16], &sealed).unwrap(), b"envelope");
        assert_eq!(c.open(6, &[9; 16], &sealed), Err(CryptoError::Decrypt));
        assert_eq!(c.open(5, &[8; 16], &sealed), Err(CryptoError::Decrypt));
        assert_eq!(
            c.open(5, &[9; 16], &sealed[..10]),
            Err(CryptoError::Decrypt)
        );
        // A fresh nonce every time.
        assert_ne!(sealed, c.seal(5, &[9; 16], b"envelope").unwrap());
        // In place, with nonces drawn in bulk: the same format.
        let mut nonces = Nonces::default();
        let mut out = Vec::new();
        c.seal_into(5, &[9; 16], nonces.next().unwrap(), b"envelope", &mut out)
            .unwrap();
        assert_eq!(out.len(), b"envelope".len() + SEAL_OVERHEAD);
        assert_eq!(c.open(5, &[9; 16], &out).unwrap(), b"envelope");
        let seen: std::collections::HashSet<[u8; 12]> =
            (0..600).map(|_| nonces.next().unwrap()).collect();
        assert_eq!(seen.len(), 600);
        let other = Cipher::new(&[2; 32]);
        assert_eq!(other.open(5, &[9; 16], &sealed), Err(CryptoError::Decrypt));
        let check = c.key_check().unwrap();
        assert!(c.matches(&check));
        assert!(!other.matches(&check));
    }
}
