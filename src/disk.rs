//! The disk-space guard: uploads and packaging are refused while the file system holding
//! `media_dir` would have less than `disk.min_free_bytes` free, so the disk never fills
//! under the store (sled) or a half-written package. `statvfs(2)` through rustix; the
//! figure is what an unprivileged writer may use (`f_bavail`), not the root reserve.

use std::path::Path;

use crate::config::Config;

/// A write refused for space: what is free, the floor, and what the write would add.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not enough disk space: {free} bytes free on the media file system, {needed} more \
     needed, and at least {floor} must stay free (disk.min_free_bytes); free some space \
     or lower the floor"
)]
pub struct LowSpace {
    pub free: u64,
    pub floor: u64,
    pub needed: u64,
}

/// Bytes an unprivileged process may still write on the file system holding `path`. A
/// path not created yet is measured at its nearest existing ancestor.
pub fn free_bytes(path: &Path) -> std::io::Result<u64> {
    // A relative media_dir ("media") whose ancestors are all missing ends at ".".
    let mut at = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    loop {
        match rustix::fs::statvfs(at) {
            Ok(s) => return Ok(s.f_bavail.saturating_mul(s.f_frsize)),
            Err(rustix::io::Errno::NOENT) => {
                at = match at.parent() {
                    Some(parent) if !parent.as_os_str().is_empty() => parent,
                    Some(_) if at.is_relative() => Path::new("."),
                    _ => return Err(rustix::io::Errno::NOENT.into()),
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Whether `needed` more bytes can be written under `media_dir` and still leave the
/// configured floor free. A file system that cannot be measured is not refused here (the
/// write itself will say what is wrong); it is logged.
pub fn ensure_room(config: &Config, needed: u64) -> Result<(), LowSpace> {
    let free = match free_bytes(&config.media_dir) {
        Ok(free) => free,
        Err(e) => {
            tracing::warn!(error = %e, dir = %config.media_dir.display(), "could not measure free disk space");
            return Ok(());
        }
    };
    check(free, config.disk.min_free_bytes, needed)
}

/// The rule itself: `free − needed ≥ floor`.
pub fn check(free: u64, floor: u64, needed: u64) -> Result<(), LowSpace> {
    if free.checked_sub(needed).is_some_and(|left| left >= floor) {
        Ok(())
    } else {
        Err(LowSpace {
            free,
            floor,
            needed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_must_stay_free_after_the_write() {
        assert!(check(10, 4, 6).is_ok());
        assert_eq!(
            check(10, 4, 7),
            Err(LowSpace {
                free: 10,
                floor: 4,
                needed: 7
            })
        );
        assert!(check(3, 4, 0).is_err());
        assert!(check(5, 4, u64::MAX).is_err());
    }

    #[test]
    fn a_path_not_created_yet_is_measured_at_its_parent() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let free = free_bytes(&dir.path().join("not/yet/there"))?;
        assert!(free > 0);
        Ok(())
    }
}
