//! A point-in-time copy of the whole store, and a fresh store made from one (backup and
//! restore).
//!
//! `Store::snapshot` closes the write gate (`gate`) and reads every tree while it is
//! closed, so the copy holds every transaction whole or not at all: an order captured
//! and its purchase granted are never split. Reads go on meanwhile; writes wait until the
//! copy is written (to a file, never to memory: a store can be big). sled 0.34's own
//! `Db::export` walks the trees one after the other with writers running, which is not a
//! snapshot.
//!
//! The format is ours, so it can carry what sled's export does not: the next event id
//! (`Db::generate_id` restarts at zero in a fresh database, and the event log's keys must
//! keep growing for its consumers' cursors). Layout, integers big-endian:
//!
//! ```text
//! "cinegate-store\n" · u32 format (1) · u32 schema · u64 next event id
//! then per tree:   1 · u32 name length · name
//!   per record:    2 · u32 key length · key · u32 value length · value
//! then:            0 · u64 records in all
//! ```

use std::io::{self, BufRead, Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use super::{Result, Store, StoreError};

const MAGIC: &[u8] = b"cinegate-store\n";
const FORMAT: u32 = 1;
const TREE: u8 = 1;
const RECORD: u8 = 2;
const END: u8 = 0;
/// `meta` key of the first event id a restored store gives out (`with_event_id`).
/// Trees a snapshot leaves out.
const LEFT_OUT: &[&[u8]] = &[b"uploads"];
pub(crate) const EVENT_ID_FLOOR: &str = "event_id_floor";

/// What a snapshot copied, and how long writers waited for it.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct SnapshotStats {
    pub trees: u64,
    pub records: u64,
    pub schema: u32,
    /// How long the write gate was closed (writes waited at most this long).
    pub writes_paused: Duration,
}

/// Why a snapshot could not be written or read back.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("writing the store snapshot: {0}")]
    Write(io::Error),
    #[error("the store snapshot is unreadable: {0}")]
    Format(String),
    #[error("the store snapshot has schema {found}; this cinegate reads up to {}: upgrade cinegate first", super::SCHEMA_VERSION)]
    NewerSchema { found: u32 },
    #[error("{0} is not empty; a store is only restored into an empty directory")]
    NotEmpty(String),
}

impl From<sled::Error> for SnapshotError {
    fn from(e: sled::Error) -> Self {
        SnapshotError::Store(StoreError::Sled(e))
    }
}

fn put_bytes(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let len = u32::try_from(bytes.len()).map_err(|_| io::Error::other("record over 4 GiB"))?;
    out.write_all(&len.to_be_bytes())?;
    out.write_all(bytes)
}

impl Store {
    /// Writes every tree, as of one moment, to `out` (buffer it; it is written while the
    /// gate is closed, so a slow `out` pauses writers longer).
    pub fn snapshot(
        &self,
        out: &mut impl Write,
    ) -> std::result::Result<SnapshotStats, SnapshotError> {
        let started = Instant::now();
        let _closed = self.gate.exclusive();
        let schema = self.schema_version()?;
        let next_event = self.event_id_floor + self.db.generate_id()? + 1;
        let w = |e| SnapshotError::Write(e);
        out.write_all(MAGIC).map_err(w)?;
        out.write_all(&FORMAT.to_be_bytes()).map_err(w)?;
        out.write_all(&schema.to_be_bytes()).map_err(w)?;
        out.write_all(&next_event.to_be_bytes()).map_err(w)?;
        let (mut trees, mut records) = (0u64, 0u64);
        let mut names = self.db.tree_names();
        names.sort();
        for name in names {
            // sled's default tree holds nothing of ours; `uploads` is the state of
            // uploads in flight, whose bytes a backup does not carry (`backup`).
            if name.starts_with(b"__sled__") || LEFT_OUT.contains(&name.as_ref()) {
                continue;
            }
            let tree = self.db.open_tree(&name)?;
            out.write_all(&[TREE]).map_err(w)?;
            put_bytes(out, &name).map_err(w)?;
            trees += 1;
            for kv in tree.iter() {
                let (k, v) = kv?;
                out.write_all(&[RECORD]).map_err(w)?;
                put_bytes(out, &k).map_err(w)?;
                put_bytes(out, &v).map_err(w)?;
                records += 1;
            }
        }
        out.write_all(&[END]).map_err(w)?;
        out.write_all(&records.to_be_bytes()).map_err(w)?;
        out.flush().map_err(w)?;
        Ok(SnapshotStats {
            trees,
            records,
            schema,
            writes_paused: started.elapsed(),
        })
    }

    /// The schema version in `meta` (this binary's for a store without one).
    pub fn schema_version(&self) -> Result<u32> {
        match self.meta.get("schema_version")? {
            None => Ok(super::SCHEMA_VERSION),
            Some(v) => {
                v.as_ref()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: "meta",
                        message: "schema_version".into(),
                    })
            }
        }
    }
}

fn read_exact<const N: usize>(
    input: &mut impl Read,
) -> std::result::Result<[u8; N], SnapshotError> {
    let mut buf = [0u8; N];
    input
        .read_exact(&mut buf)
        .map_err(|e| SnapshotError::Format(format!("cut short ({e})")))?;
    Ok(buf)
}

fn read_bytes(input: &mut impl Read) -> std::result::Result<Vec<u8>, SnapshotError> {
    let len = u32::from_be_bytes(read_exact(input)?) as usize;
    let mut buf = Vec::new();
    input
        .take(len as u64)
        .read_to_end(&mut buf)
        .map_err(|e| SnapshotError::Format(e.to_string()))?;
    if buf.len() != len {
        return Err(SnapshotError::Format("cut short inside a record".into()));
    }
    Ok(buf)
}

/// The header of a snapshot: its schema version, read without importing anything.
pub fn snapshot_schema(input: &mut impl Read) -> std::result::Result<u32, SnapshotError> {
    let magic: [u8; 15] = read_exact(input)?;
    if magic != MAGIC {
        return Err(SnapshotError::Format(
            "not a cinegate store snapshot".into(),
        ));
    }
    let format = u32::from_be_bytes(read_exact(input)?);
    if format != FORMAT {
        return Err(SnapshotError::Format(format!(
            "snapshot format {format}, this cinegate reads {FORMAT}"
        )));
    }
    Ok(u32::from_be_bytes(read_exact(input)?))
}

/// Makes a new sled database in `dir` (absent or empty) from a snapshot. It is left at
/// the snapshot's schema: `Store::open` migrates it like any older store. Returns the
/// records written.
pub fn import(dir: &Path, input: &mut impl BufRead) -> std::result::Result<u64, SnapshotError> {
    if dir.exists()
        && std::fs::read_dir(dir)
            .map_err(SnapshotError::Write)?
            .next()
            .is_some()
    {
        return Err(SnapshotError::NotEmpty(dir.display().to_string()));
    }
    let schema = snapshot_schema(input)?;
    if schema > super::SCHEMA_VERSION {
        return Err(SnapshotError::NewerSchema { found: schema });
    }
    let next_event = u64::from_be_bytes(read_exact(input)?);
    let db = sled::Config::new().path(dir).open()?;
    let mut tree: Option<sled::Tree> = None;
    let mut batch = sled::Batch::default();
    let mut pending = 0usize;
    let mut records = 0u64;
    loop {
        let [tag] = read_exact(input)?;
        match tag {
            TREE | END => {
                if let Some(t) = tree.take() {
                    t.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
                if tag == END {
                    break;
                }
                tree = Some(db.open_tree(read_bytes(input)?)?);
            }
            RECORD => {
                let Some(t) = &tree else {
                    return Err(SnapshotError::Format("a record before any tree".into()));
                };
                batch.insert(read_bytes(input)?, read_bytes(input)?);
                records += 1;
                pending += 1;
                if pending >= 10_000 {
                    t.apply_batch(std::mem::take(&mut batch))?;
                    pending = 0;
                }
            }
            other => return Err(SnapshotError::Format(format!("unknown tag {other}"))),
        }
    }
    let total = u64::from_be_bytes(read_exact(input)?);
    if total != records {
        return Err(SnapshotError::Format(format!(
            "{records} records read, the snapshot says {total}"
        )));
    }
    db.open_tree("meta")?
        .insert(EVENT_ID_FLOOR, &next_event.to_be_bytes())?;
    db.flush()?;
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;

    /// sled lets go of a database's lock from its flusher thread, a moment after the
    /// last handle is dropped — several seconds later on a loaded 2-core machine (5 s was
    /// once not enough while a release build ran beside the tests).
    fn open_when_free(dir: &Path) -> anyhow::Result<sled::Db> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sled::open(dir) {
                // sled reports the lock as an `Other` error whose text holds the OS error
                // (EWOULDBLOCK), so the kind alone never matched and the wait never waited.
                Err(sled::Error::Io(e))
                    if Instant::now() < deadline
                        && (e.kind() == io::ErrorKind::WouldBlock
                            || e.to_string().contains("could not acquire lock")) =>
                {
                    std::thread::sleep(Duration::from_millis(20))
                }
                other => return Ok(other?),
            }
        }
    }

    #[test]
    fn a_snapshot_imports_into_an_equal_store_and_event_ids_keep_growing() -> anyhow::Result<()> {
        let store = Store::temporary()?;
        store.users.insert(b"u1", b"{\"a\":1}".to_vec())?;
        store.films.insert(b"f1", b"{}".to_vec())?;
        let last = store.append_event(
            1,
            crate::store::events::Event::FilmPublished {
                film: uuid::Uuid::nil(),
            },
        )?;
        let mut bytes = Vec::new();
        let stats = store.snapshot(&mut bytes)?;
        assert!(stats.records >= 4, "{stats:?}");
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("store");
        let n = import(&target, &mut &bytes[..])?;
        assert_eq!(n, stats.records);
        drop(open_when_free(&target)?);
        let restored = Store::open(&target)?;
        assert_eq!(
            restored.users.get(b"u1")?.as_deref(),
            Some(&b"{\"a\":1}"[..])
        );
        assert!(restored.films.contains_key(b"f1")?);
        let next = restored.append_event(
            2,
            crate::store::events::Event::FilmPublished {
                film: uuid::Uuid::nil(),
            },
        )?;
        assert!(
            next > last,
            "a restored store gave out event id {next} after {last}"
        );
        // Into a non-empty directory: refused.
        assert!(matches!(
            import(&target, &mut &bytes[..]),
            Err(SnapshotError::NotEmpty(_))
        ));
        Ok(())
    }

    #[test]
    fn a_cut_snapshot_is_refused() -> anyhow::Result<()> {
        let store = Store::temporary()?;
        store.users.insert(b"u1", b"{}".to_vec())?;
        let mut bytes = Vec::new();
        store.snapshot(&mut bytes)?;
        bytes.truncate(bytes.len() - 3);
        let dir = tempfile::tempdir()?;
        let err = import(&dir.path().join("s"), &mut &bytes[..]).err();
        assert!(matches!(err, Some(SnapshotError::Format(_))), "{err:?}");
        Ok(())
    }

    /// Two trees written together in every transaction, by a writer that never stops:
    /// every snapshot holds them equal. Without the gate (sled's `export`, or a walk of
    /// the trees one by one) the second tree is read later than the first and runs ahead.
    #[test]
    fn a_snapshot_never_splits_a_transaction() -> anyhow::Result<()> {
        use crate::store::Transact;
        let store = Store::temporary()?;
        let done = Arc::new(AtomicBool::new(false));
        let writer = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    let _ = (&store.orders, &store.purchases).transaction(|(o, p)| {
                        o.insert(&i.to_be_bytes(), b"o".to_vec())?;
                        p.insert(&i.to_be_bytes(), b"p".to_vec())?;
                        Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                    });
                }
                done.store(true, Ordering::Relaxed);
            })
        };
        while store.orders.is_empty() {
            std::thread::yield_now();
        }
        let mut taken = 0;
        let mut mid_way = 0;
        while !done.load(Ordering::Relaxed) || taken < 3 {
            let mut bytes = Vec::new();
            store.snapshot(&mut bytes)?;
            let dir = tempfile::tempdir()?;
            import(&dir.path().join("s"), &mut &bytes[..])?;
            let db = open_when_free(&dir.path().join("s"))?;
            let (o, p) = (
                db.open_tree("orders")?.len(),
                db.open_tree("purchases")?.len(),
            );
            assert_eq!(
                o, p,
                "the snapshot split a transaction: {o} orders, {p} purchases"
            );
            taken += 1;
            if o > 0 && o < 20_000 {
                mid_way += 1;
            }
        }
        let _ = writer.join();
        // The test means something only if some snapshots fell while the writer ran.
        assert!(mid_way > 0, "no snapshot was taken while the writer ran");
        Ok(())
    }

    /// How long writes wait for a snapshot of a store with many records (printed; run
    /// with `--nocapture`). The bound is loose: it catches a snapshot that holds the gate
    /// for something other than reading and writing the records.
    #[test]
    fn writes_pause_for_a_snapshot_of_many_records_briefly() -> anyhow::Result<()> {
        let store = Store::temporary()?;
        let value = vec![b'x'; 200];
        for i in 0..100_000u64 {
            store.progress.insert(i.to_be_bytes(), value.clone())?;
        }
        let dir = tempfile::tempdir()?;
        let mut file = io::BufWriter::new(std::fs::File::create(dir.path().join("snap"))?);
        let stats = store.snapshot(&mut file)?;
        println!(
            "snapshot of {} records: writes paused {:?}",
            stats.records, stats.writes_paused
        );
        assert!(stats.records >= 100_000);
        assert!(stats.writes_paused < Duration::from_secs(20), "{stats:?}");
        Ok(())
    }
}
