//! Segment bytes for the `/hls/` handler: whole files read in one go and kept in a
//! bounded in-memory cache (`playback.segment_cache_bytes`, weighed in bytes), so a hot
//! segment is sent from shared memory with no per-request read or copy in user space;
//! a Range request is a slice of the same buffer. Packages never change once written,
//! so entries never go stale (a deleted or repackaged film's files are under new paths).

use std::path::{Path, PathBuf};

use actix_web::web::Bytes;
use quick_cache::sync::Cache;
use quick_cache::Weighter;

#[derive(Clone)]
struct ByteWeighter;

impl Weighter<PathBuf, Bytes> for ByteWeighter {
    fn weight(&self, _key: &PathBuf, value: &Bytes) -> u64 {
        value.len() as u64
    }
}

pub struct SegmentCache {
    cache: Option<Cache<PathBuf, Bytes, ByteWeighter>>,
    max_entry: u64,
}

impl SegmentCache {
    /// `capacity` in bytes; 0 turns caching off (every request reads the file).
    pub fn new(capacity: u64) -> Self {
        let cache = (capacity > 0).then(|| {
            // About 2 MB per 6 s segment at 2.8 Mb/s.
            let items = (capacity / (2 * 1024 * 1024)).max(16) as usize;
            Cache::with_weighter(items, capacity, ByteWeighter)
        });
        Self {
            cache,
            // One huge file must not flush the whole cache.
            max_entry: capacity / 8,
        }
    }

    pub async fn get(&self, path: &Path) -> std::io::Result<Bytes> {
        if let Some(hit) = self.cache.as_ref().and_then(|c| c.get(path)) {
            return Ok(hit);
        }
        let bytes = Bytes::from(tokio::fs::read(path).await?);
        if let Some(cache) = &self.cache {
            if bytes.len() as u64 <= self.max_entry {
                cache.insert(path.to_path_buf(), bytes.clone());
            }
        }
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn serves_and_bounds_memory() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let a = dir.path().join("a.ts");
        std::fs::write(&a, vec![7u8; 1000])?;
        let cache = SegmentCache::new(16_000);
        assert_eq!(cache.get(&a).await?.len(), 1000);
        // A cached entry survives the file's removal: it is served from memory.
        std::fs::remove_file(&a)?;
        assert_eq!(cache.get(&a).await?.len(), 1000);
        let big = dir.path().join("big.ts");
        std::fs::write(&big, vec![1u8; 10_000])?;
        assert_eq!(cache.get(&big).await?.len(), 10_000);
        std::fs::remove_file(&big)?;
        assert!(
            cache.get(&big).await.is_err(),
            "entries over 1/8 of the cache are not kept"
        );
        Ok(())
    }
}
