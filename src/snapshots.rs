//! The last snapshot JPEG of each printer, kept on disk under
//! `<storage.data_dir>/snapshots/` for the status page and the API instead
//! of in memory (a JPEG can be several MB, and a farm has many printers).
//! Blocking calls: run them on a blocking thread.

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// Where the snapshots live.
#[derive(Debug, Clone)]
pub struct Snapshots {
    dir: PathBuf,
}

impl Snapshots {
    /// The snapshots of the bridge whose data directory is `data_dir`.
    pub fn new(data_dir: &Path) -> Snapshots {
        Snapshots {
            dir: data_dir.join("snapshots"),
        }
    }

    /// A slug is `[a-z0-9_-]`, so it is a safe file name; anything else
    /// is refused rather than trusted.
    fn file(&self, slug: &str) -> Option<PathBuf> {
        crate::slug::is_valid(slug).then(|| self.dir.join(format!("{slug}.jpg")))
    }

    /// Replaces the printer's snapshot, atomically (a reader never sees
    /// half a JPEG).
    pub fn write(&self, slug: &str, jpeg: &[u8]) -> std::io::Result<()> {
        let Some(path) = self.file(slug) else {
            return Err(std::io::Error::other("not a printer slug"));
        };
        std::fs::create_dir_all(&self.dir)?;
        let tmp = path.with_extension("jpg.tmp");
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(jpeg)?;
        drop(f);
        std::fs::rename(&tmp, &path)
    }

    /// The printer's snapshot, if one is kept.
    pub fn read(&self, slug: &str) -> Option<Bytes> {
        let path = self.file(slug)?;
        std::fs::read(path).ok().map(Bytes::from)
    }

    /// Forgets the printer's snapshot (a removed printer).
    pub fn remove(&self, slug: &str) {
        if let Some(path) = self.file(slug) {
            let _ = std::fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_read_replaced_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path());
        assert_eq!(s.read("ender3"), None);
        s.write("ender3", b"\xff\xd8one").unwrap();
        s.write("ender3", b"\xff\xd8two").unwrap();
        assert_eq!(s.read("ender3").unwrap().as_ref(), b"\xff\xd8two");
        s.remove("ender3");
        assert_eq!(s.read("ender3"), None);
    }

    #[test]
    fn only_slugs_name_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = Snapshots::new(dir.path());
        for bad in ["../x", "a/b", "", ".", "a.jpg"] {
            assert!(s.write(bad, b"x").is_err(), "{bad}");
            assert_eq!(s.read(bad), None);
        }
    }
}
