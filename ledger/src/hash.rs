//! RFC 6962 / RFC 9162 hashing: SHA-256 with domain separation between leaves and nodes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

use crate::LedgerError;

/// Size of a hash in bytes.
pub const HASH_SIZE: usize = 32;

/// A SHA-256 hash: a leaf hash, an interior node hash or a tree root.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Hash(pub [u8; HASH_SIZE]);

impl Hash {
    /// The hash as standard base64 (RFC 4648 §4, padded), as in checkpoints and proofs.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// Parses a standard base64 hash; anything but exactly 32 bytes is an error.
    pub fn from_base64(text: &str) -> Result<Self, LedgerError> {
        let bytes = STANDARD
            .decode(text)
            .map_err(|_| LedgerError::Malformed("hash is not standard base64"))?;
        Self::from_slice(&bytes)
    }

    /// The hash in `bytes`, which must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, LedgerError> {
        let array: [u8; HASH_SIZE] = bytes
            .try_into()
            .map_err(|_| LedgerError::Malformed("hash is not 32 bytes"))?;
        Ok(Self(array))
    }
}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hash({})", self.to_base64())
    }
}

impl fmt::Display for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// The leaf hash of `data`: `SHA-256(0x00 || data)` (Go's `tlog.RecordHash`).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    Hash(h.finalize().into())
}

/// The interior node hash of two children: `SHA-256(0x01 || left || right)`.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left.0);
    h.update(right.0);
    Hash(h.finalize().into())
}

/// The root of the empty tree: `SHA-256("")` (RFC 6962 §2.1).
pub fn empty_root() -> Hash {
    Hash(Sha256::digest([]).into())
}

/// The root of a complete (power-of-two sized) run of hashes, combined pairwise.
pub(crate) fn perfect_root(hashes: &[Hash]) -> Hash {
    debug_assert!(hashes.len().is_power_of_two());
    let mut level: Vec<Hash> = hashes.to_vec();
    while level.len() > 1 {
        level = level.chunks(2).map(|p| node_hash(&p[0], &p[1])).collect();
    }
    level[0]
}

/// The RFC 6962 root (MTH) of any run of leaf hashes, computed in memory.
///
/// For an offline rebuild or a check of a full export; the processor uses
/// [`crate::TreeState`], which never holds all leaves.
pub fn root_of(leaf_hashes: &[Hash]) -> Hash {
    match leaf_hashes.len() {
        0 => empty_root(),
        1 => leaf_hashes[0],
        n => {
            let k = largest_power_of_two_below(n as u64) as usize;
            node_hash(&root_of(&leaf_hashes[..k]), &root_of(&leaf_hashes[k..]))
        }
    }
}

/// The largest power of two strictly less than `n` (`n >= 2`), RFC 6962's split point.
pub(crate) fn largest_power_of_two_below(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_point_is_largest_power_of_two_below() {
        assert_eq!(largest_power_of_two_below(2), 1);
        assert_eq!(largest_power_of_two_below(3), 2);
        assert_eq!(largest_power_of_two_below(4), 2);
        assert_eq!(largest_power_of_two_below(5), 4);
        assert_eq!(largest_power_of_two_below(1 << 40), 1 << 39);
        assert_eq!(largest_power_of_two_below((1 << 40) + 1), 1 << 40);
    }

    #[test]
    fn base64_round_trip_and_rejects_wrong_length() {
        let h = leaf_hash(b"x");
        assert_eq!(Hash::from_base64(&h.to_base64()).ok(), Some(h));
        assert!(Hash::from_base64("AAAA").is_err());
        assert!(Hash::from_base64("not base64!").is_err());
    }
}
