//! A small tmpfs for a bridge's `storage.data_dir`, so a test can fill the
//! disk and free it again. Mounting needs root (CAP_SYS_ADMIN); where the
//! machine does not allow it the caller decides: skip locally, fail under CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A mounted tmpfs, unmounted (lazily, so a killed bridge's open files do
/// not keep it) on drop.
pub struct Tmpfs {
    dir: PathBuf,
    filler: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `bytes` on a fresh directory, or says why not.
    pub fn mount(bytes: u64) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap().keep();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700")])
            .arg("tmpfs")
            .arg(&dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let data = dir.join("data");
        std::fs::create_dir(&data).unwrap();
        Ok(Tmpfs {
            filler: dir.join("filler"),
            dir,
        })
    }

    /// The directory to give the bridge (inside the mount).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// Writes a file until the filesystem has no byte left; returns how
    /// many bytes it took.
    pub fn fill(&self) -> u64 {
        let mut f = std::fs::File::create(&self.filler).unwrap();
        let mut written = 0;
        for chunk in [1 << 20, 64 << 10, 4 << 10, 512, 1] {
            let block = vec![0xA5u8; chunk];
            while f.write_all(&block).is_ok() {
                written += chunk as u64;
            }
        }
        // A write_all that failed may have written part of its block: the
        // count is a lower bound.
        written
    }

    /// Deletes the filler: the space is back.
    pub fn free(&self) {
        std::fs::remove_file(&self.filler).unwrap();
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}

/// The tmpfs, or: a panic under CI (a test that cannot run fails there),
/// `None` with a loud note elsewhere.
pub fn mount_or_fail_in_ci(bytes: u64, what: &str) -> Option<Tmpfs> {
    match Tmpfs::mount(bytes) {
        Ok(t) => Some(t),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{what} needs a tmpfs (run as root): {why}")
        }
        Err(why) => {
            eprintln!("NOTE: {what} SKIPPED, it needs a tmpfs (run as root): {why}");
            None
        }
    }
}
