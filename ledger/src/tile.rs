//! C2SP `tlog-tiles` hash tiles: paths, and reading tree hashes out of stored tiles.
//!
//! A tile at level `L` holds up to 256 consecutive hashes of tree level `8·L` (tile height 8),
//! 32 bytes each, concatenated. A full tile has 256; the partial tile of the tree's right edge
//! has `W` (1..=255) and lives at its own path (`.p/W`), so every path is written once and never
//! changes. Levels `8·L+1 .. 8·L+7` are not stored: they are recomputed from the level `8·L`
//! hashes inside one tile.

use std::collections::HashMap;
use std::fmt;

use crate::hash::{HASH_SIZE, Hash, perfect_root};
use crate::proof::HashReader;
use crate::LedgerError;

/// Tile height: each tile spans 8 tree levels (the C2SP `tlog-tiles` value).
pub const TILE_HEIGHT: u8 = 8;
/// Hashes in a full tile: `2^TILE_HEIGHT`.
pub const TILE_WIDTH: u16 = 1 << TILE_HEIGHT;

/// One hash tile: its level, its index along the level, and how many hashes it holds.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Tile {
    /// Tile level `L`: the tile holds hashes of tree level `8·L`.
    pub level: u8,
    /// Index `N` of the tile along its level.
    pub index: u64,
    /// Number of hashes, 1..=256; 256 is a full tile, fewer a partial one (`.p/W`).
    pub width: u16,
}

impl Tile {
    /// Whether the tile holds all 256 hashes.
    pub fn is_full(&self) -> bool {
        self.width == TILE_WIDTH
    }

    /// Its C2SP path, e.g. `tile/0/x001/x234/067` or `tile/1/005.p/17`.
    pub fn path(&self) -> String {
        let mut path = format!("tile/{}/{}", self.level, encode_index(self.index));
        if !self.is_full() {
            path.push_str(&format!(".p/{}", self.width));
        }
        path
    }

    /// Parses a hash-tile path. Only canonical paths are accepted (what [`Tile::path`] writes).
    ///
    /// `tile/entries/...` (the data tiles) is refused with [`LedgerError::EntriesNotStored`]:
    /// auditlog keeps leaf data in its event store, not in entry bundles.
    pub fn parse_path(path: &str) -> Result<Self, LedgerError> {
        let rest = path.strip_prefix("tile/").ok_or(LedgerError::Malformed("tile path must start with tile/"))?;
        let (level_text, rest) = rest.split_once('/').ok_or(LedgerError::Malformed("tile path has no index"))?;
        if level_text == "entries" {
            return Err(LedgerError::EntriesNotStored);
        }
        let level = parse_decimal(level_text).filter(|l| *l < 64).ok_or(LedgerError::Malformed("tile level"))?;
        let (index_text, width) = match rest.split_once(".p/") {
            Some((index_text, width_text)) => {
                let width = parse_decimal(width_text)
                    .filter(|w| (1..u64::from(TILE_WIDTH)).contains(w))
                    .ok_or(LedgerError::Malformed("partial tile width must be 1..255"))?;
                (index_text, width as u16)
            }
            None => (rest, TILE_WIDTH),
        };
        let index = decode_index(index_text).ok_or(LedgerError::Malformed("tile index"))?;
        Ok(Self { level: level as u8, index, width })
    }

    /// The tile (with its width at `tree_size`) that holds the complete subtree hash at tree
    /// `level`, index `n`, and the range of its entries that hash to it; `None` when that
    /// subtree is not complete at `tree_size`.
    pub fn for_hash(level: u8, n: u64, tree_size: u64) -> Option<(Self, std::ops::Range<usize>)> {
        let tile_level = level / TILE_HEIGHT;
        let depth = u32::from(level % TILE_HEIGHT);
        let first = n.checked_shl(depth).filter(|f| f >> depth == n)?;
        let index = first >> TILE_HEIGHT;
        let complete = tree_size.checked_shr(u32::from(tile_level) * u32::from(TILE_HEIGHT)).unwrap_or(0);
        let available = complete.saturating_sub(index << TILE_HEIGHT).min(u64::from(TILE_WIDTH));
        let start = (first & (u64::from(TILE_WIDTH) - 1)) as usize;
        let end = start + (1usize << depth);
        if (end as u64) > available {
            return None;
        }
        let tile = Self { level: tile_level, index, width: available as u16 };
        Some((tile, start..end))
    }
}

impl fmt::Display for Tile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.path())
    }
}

/// `1234067` → `x001/x234/067`: groups of three digits, all but the last prefixed with `x`.
fn encode_index(mut n: u64) -> String {
    let mut path = format!("{:03}", n % 1000);
    while n >= 1000 {
        n /= 1000;
        path = format!("x{:03}/{path}", n % 1000);
    }
    path
}

fn decode_index(text: &str) -> Option<u64> {
    let groups: Vec<&str> = text.split('/').collect();
    let (last, leading) = groups.split_last()?;
    let mut n: u64 = 0;
    for group in leading {
        let digits = group.strip_prefix('x')?;
        n = n.checked_mul(1000)?.checked_add(three_digits(digits)?)?;
    }
    n = n.checked_mul(1000)?.checked_add(three_digits(last)?)?;
    // Canonical only: no `x000/` groups in front, so each tile has exactly one path.
    (encode_index(n) == text).then_some(n)
}

fn three_digits(text: &str) -> Option<u64> {
    (text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok())?
}

fn parse_decimal(text: &str) -> Option<u64> {
    let canonical = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    canonical.then(|| text.parse().ok())?
}

/// The hashes in a tile's data (a multiple of 32 bytes).
pub fn tile_hashes(data: &[u8]) -> Result<Vec<Hash>, LedgerError> {
    if !data.len().is_multiple_of(HASH_SIZE) {
        return Err(LedgerError::Malformed("tile data is not a multiple of 32 bytes"));
    }
    data.chunks(HASH_SIZE).map(Hash::from_slice).collect()
}

/// Reads complete subtree hashes from tiles fetched beforehand (the store is async, proofs are
/// not): ask [`crate::proof::inclusion_tiles`] / [`crate::proof::consistency_tiles`] which tiles
/// to fetch, put them here, then run the proof.
///
/// `tree_size` is the size the tiles were fetched for (normally the stored tree's current size,
/// whose partial tiles exist); any smaller tree's hashes can be read through it, since a
/// complete subtree never changes.
#[derive(Debug, Clone)]
pub struct TileHashReader {
    tree_size: u64,
    tiles: HashMap<Tile, Vec<u8>>,
}

impl TileHashReader {
    /// A reader over no tiles yet, for a tree of `tree_size` leaves.
    pub fn new(tree_size: u64) -> Self {
        Self { tree_size, tiles: HashMap::new() }
    }

    /// Adds a tile's data; a length that does not match the tile's width is an error.
    pub fn insert(&mut self, tile: Tile, data: Vec<u8>) -> Result<(), LedgerError> {
        if data.len() != usize::from(tile.width) * HASH_SIZE {
            return Err(LedgerError::Malformed("tile data length does not match its width"));
        }
        self.tiles.insert(tile, data);
        Ok(())
    }
}

impl HashReader for TileHashReader {
    fn read_hash(&self, level: u8, n: u64) -> Result<Hash, LedgerError> {
        let (tile, range) = Tile::for_hash(level, n, self.tree_size).ok_or(LedgerError::OutOfRange("hash is not complete in this tree"))?;
        let data = self.tiles.get(&tile).ok_or_else(|| LedgerError::MissingTile(tile.path()))?;
        let hashes = tile_hashes(&data[range.start * HASH_SIZE..range.end * HASH_SIZE])?;
        Ok(perfect_root(&hashes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_round_trip_in_c2sp_form() {
        let cases = [
            ("tile/0/000", Tile { level: 0, index: 0, width: 256 }),
            ("tile/0/x001/x234/067", Tile { level: 0, index: 1_234_067, width: 256 }),
            ("tile/1/005.p/17", Tile { level: 1, index: 5, width: 17 }),
            ("tile/3/x123/x456/078.p/2", Tile { level: 3, index: 123_456_078, width: 2 }),
            ("tile/0/x001/000", Tile { level: 0, index: 1000, width: 256 }),
        ];
        for (path, tile) in cases {
            assert_eq!(tile.path(), path);
            assert_eq!(Tile::parse_path(path).ok(), Some(tile), "{path}");
        }
    }

    #[test]
    fn non_canonical_paths_are_refused() {
        for bad in [
            "tile/0/1", "tile/0/x000/001", "tile/00/001", "tile/0/001.p/0", "tile/0/001.p/256",
            "tile/0/001.p/07", "tile/64/000", "tile/-1/000", "tile/0/123/456", "tiles/0/000",
            "tile/0/x1234/000", "tile/0/000/", "tile/8/0/000",
        ] {
            assert!(Tile::parse_path(bad).is_err(), "{bad} accepted");
        }
        assert!(matches!(Tile::parse_path("tile/entries/000"), Err(LedgerError::EntriesNotStored)));
    }

    #[test]
    fn hash_location_follows_tree_size() {
        // Leaf 300 at size 301: tile 0/1, partial of width 45, entry 44.
        let (tile, range) = Tile::for_hash(0, 300, 301).expect("complete");
        assert_eq!((tile.path(), range), ("tile/0/001.p/45".to_string(), 44..45));
        // The level-8 hash 0 needs leaves 0..256: inside tile 1/000 once 256 leaves exist.
        let (tile, range) = Tile::for_hash(8, 0, 600).expect("complete");
        assert_eq!((tile.path(), range), ("tile/1/000.p/2".to_string(), 0..1));
        // Level 3 hash 1 spans leaves 8..16: incomplete at size 15.
        assert!(Tile::for_hash(3, 1, 15).is_none());
        let (tile, range) = Tile::for_hash(3, 1, 16).expect("complete");
        assert_eq!((tile.path(), range), ("tile/0/000.p/16".to_string(), 8..16));
    }
}
