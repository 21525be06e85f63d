//! Small durable-file helpers shared by the embedded backends: atomic rewrites (write, fsync,
//! rename, fsync the directory), directory fsync, and the format-version file every embedded
//! data directory carries.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::Path;

/// Name of the format-version file of an embedded data directory.
pub const FORMAT_FILE: &str = "FORMAT";

/// Makes the entries of `dir` (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `path` with `bytes` atomically and durably: a crash leaves the old or the new
/// content, never a mix.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    match path.parent() {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Checks (or, in a new directory, writes) the format file of `dir`: a line
/// `<kind> <version>`. A directory of another kind or a newer version is refused with an
/// error naming the file; an older version is accepted (readers keep reading old formats).
/// Returns the version the directory has.
pub fn check_format(dir: &Path, kind: &str, version: u32) -> Result<u32, String> {
    let path = dir.join(FORMAT_FILE);
    let ctx = |e: io::Error| format!("{}: {e}", path.display());
    fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            write_atomic(&path, format!("{kind} {version}\n").as_bytes()).map_err(ctx)?;
            return Ok(version);
        }
        Err(e) => return Err(ctx(e)),
    };
    let (found_kind, found) = text
        .trim()
        .rsplit_once(' ')
        .and_then(|(k, v)| Some((k, v.parse::<u32>().ok()?)))
        .ok_or_else(|| format!("{} is not a format file (expected \"{kind} <version>\")", path.display()))?;
    if found_kind != kind {
        return Err(format!("{} says this directory holds {found_kind:?}, expected {kind:?}", path.display()));
    }
    if found > version {
        return Err(format!(
            "{} has format version {found}, newer than the supported {version}: upgrade auditlog",
            path.display()
        ));
    }
    Ok(found)
}

/// Records that `dir` now holds format `version` of `kind` (before anything of that version
/// is written there), so an older binary refuses the directory instead of misreading it.
pub fn upgrade_format(dir: &Path, kind: &str, version: u32) -> Result<(), String> {
    let path = dir.join(FORMAT_FILE);
    write_atomic(&path, format!("{kind} {version}\n").as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_files_are_written_then_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(check_format(dir.path(), "kind", 2), Ok(2));
        assert_eq!(check_format(dir.path(), "kind", 2), Ok(2));
        assert_eq!(check_format(dir.path(), "kind", 3), Ok(2), "older formats are read");
        let newer = check_format(dir.path(), "kind", 1).expect_err("newer format refused");
        assert!(newer.contains("FORMAT") && newer.contains("newer"), "{newer}");
        assert!(check_format(dir.path(), "other", 2).is_err());
        upgrade_format(dir.path(), "kind", 3).expect("upgrade");
        assert_eq!(check_format(dir.path(), "kind", 3), Ok(3));
        fs::write(dir.path().join(FORMAT_FILE), "garbage").expect("write");
        assert!(check_format(dir.path(), "kind", 2).expect_err("garbage refused").contains("FORMAT"));
    }
}
