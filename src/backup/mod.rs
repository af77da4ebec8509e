//! Backup and restore of a whole installation: the store (a point-in-time snapshot), the
//! keys, and the film packages (manifests, posters, and segments unless without media).
//!
//! Taking a backup is two steps because of sled's one-process lock. The snapshot is made
//! by whoever holds the store: the running server (over the operator socket,
//! `ops::store_snapshot`) or the CLI when no server runs. It is written as a 0600 file in
//! the data root (`snapshot_to_file`), never held in memory and never streamed under the
//! write gate to a reader that may be slow. The archive itself is then written by the
//! CLI, as the operator's user, to the path the operator named (`write_archive`): the
//! server (sandboxed, its own user) could not write there, and the CLI — which only the
//! server's user or root may run against the socket — can read the data root and keys
//! anyway, so streaming the films through the socket would copy every byte twice for
//! nothing.
//!
//! Left out, on purpose: `uploads/` (sources and half-written uploads) and the store's
//! `uploads` tree (in-flight tus state whose bytes are not in the archive: a client
//! resuming one after a restore starts again); package directories still being written
//! (`films/{film}/.pkg-…partial…`, any name starting with `.`); the operator socket.

pub mod archive;

use std::fs;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::store::snapshot::{self, SnapshotError, SnapshotStats};
use crate::store::{Store, SCHEMA_VERSION};
use archive::{ArchiveError, Manifest};

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{what}: {error}")]
    Io { what: String, error: io::Error },
    #[error("{0}")]
    Archive(#[from] ArchiveError),
    #[error("{0}")]
    Snapshot(#[from] SnapshotError),
    #[error("{} is not empty; restore only into an empty (or absent) directory — move it away first", .0.display())]
    NotEmpty(PathBuf),
    #[error("the backup has store schema {found}; this cinegate reads up to {SCHEMA_VERSION}: install a newer cinegate to restore it")]
    NewerSchema { found: u32 },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> BackupError {
    let what = what.into();
    move |error| BackupError::Io { what, error }
}

/// Writes a snapshot of `store` to a new 0600 file in `dir` and syncs it. The caller
/// removes the file when the archive is written.
pub fn snapshot_to_file(
    store: &Store,
    dir: &Path,
) -> Result<(PathBuf, SnapshotStats), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    remove_stale_snapshots(dir);
    let path = dir.join(format!(".backup-{}.snapshot", uuid::Uuid::now_v7()));
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err(format!("creating {}", path.display())))?;
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let stats = store.snapshot(&mut out)?;
        let file = out
            .into_inner()
            .map_err(|e| SnapshotError::Write(e.into_error()))?;
        file.sync_all().map_err(SnapshotError::Write)?;
        Ok::<_, BackupError>(stats)
    })();
    match written {
        Ok(stats) => Ok((path, stats)),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Snapshot files a backup killed half-way left behind (a day old: no backup still
/// running takes that long to archive its snapshot).
fn remove_stale_snapshots(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(86_400));
        if name.starts_with(".backup-") && name.ends_with(".snapshot") && old {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// A file to archive: its archive path, where it is, its size.
struct Source {
    path: String,
    file: PathBuf,
    size: u64,
}

/// Every regular file under `root`, as `prefix/relative`, skipping names starting with
/// `.` (temporary and partial files) and anything `keep` refuses. Symlinks are skipped.
fn walk(
    root: &Path,
    prefix: &str,
    keep: &dyn Fn(&Path) -> bool,
    out: &mut Vec<Source>,
) -> Result<(), BackupError> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(format!("reading {}", root.display()))(e)),
    };
    let mut entries: Vec<_> = entries
        .collect::<Result<_, _>>()
        .map_err(io_err(format!("reading {}", root.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with('.') {
            continue;
        }
        let file = entry.path();
        let meta = entry
            .metadata()
            .map_err(io_err(format!("reading {}", file.display())))?;
        let path = format!("{prefix}/{name}");
        if meta.is_dir() {
            walk(&file, &path, keep, out)?;
        } else if meta.is_file() && keep(&file) {
            out.push(Source {
                path,
                file,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

/// What a backup wrote.
#[derive(Debug, Clone)]
pub struct Written {
    pub entries: usize,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

/// Whether a file under `films/` is a segment (left out without media).
fn is_segment(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "ts")
}

/// The bytes `write_archive` will read, for a progress bar.
pub fn planned_bytes(
    config: &Config,
    snapshot: &Path,
    with_media: bool,
) -> Result<u64, BackupError> {
    Ok(sources(config, snapshot, with_media)?
        .iter()
        .map(|s| s.size)
        .sum())
}

fn sources(config: &Config, snapshot: &Path, with_media: bool) -> Result<Vec<Source>, BackupError> {
    let size = fs::metadata(snapshot)
        .map_err(io_err(format!("reading {}", snapshot.display())))?
        .len();
    let mut out = vec![Source {
        path: archive::SNAPSHOT.into(),
        file: snapshot.to_path_buf(),
        size,
    }];
    walk(&config.keys_dir, "keys", &|_| true, &mut out)?;
    walk(
        &config.films_dir(),
        "media/films",
        &|p| with_media || !is_segment(p),
        &mut out,
    )?;
    Ok(out)
}

/// Writes the archive to `out` (through `out.partial`, synced, renamed, mode 0600):
/// the snapshot file, the keys, the packages. `progress` gets the bytes read so far.
pub fn write_archive(
    config: &Config,
    snapshot: &Path,
    schema: u32,
    with_media: bool,
    out: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<Written, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let sources = sources(config, snapshot, with_media)?;
    let partial = partial_path(out);
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(io_err(format!("creating {}", partial.display())))?;
    let result = (|| {
        let mut w = archive::Writer::new(BufWriter::with_capacity(1 << 20, file));
        let mut done = 0;
        for s in &sources {
            let f =
                fs::File::open(&s.file).map_err(io_err(format!("reading {}", s.file.display())))?;
            w.add(&s.path, s.size, BufReader::with_capacity(1 << 20, f))
                .map_err(io_err(format!("archiving {}", s.file.display())))?;
            done += s.size;
            progress(done);
        }
        let manifest = Manifest {
            format: archive::FORMAT,
            cinegate_version: env!("CARGO_PKG_VERSION").into(),
            schema_version: schema,
            created_at: jiff::Timestamp::now().to_string(),
            with_media,
            entries: vec![],
        };
        let what = || io_err(format!("writing {}", partial.display()));
        let buffered = w.finish(manifest).map_err(what())?;
        let file = buffered.into_inner().map_err(|e| what()(e.into_error()))?;
        // A copy that may already be on disk keeps the mode it was given at creation.
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .map_err(what())?;
        file.sync_all().map_err(what())?;
        let bytes_out = file.metadata().map_err(what())?.len();
        fs::rename(&partial, out).map_err(io_err(format!("renaming to {}", out.display())))?;
        sync_parent(out);
        Ok(Written {
            entries: sources.len(),
            bytes_in: done,
            bytes_out,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&partial);
    }
    result
}

fn partial_path(p: &Path) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(".partial");
    PathBuf::from(s)
}

fn sync_parent(p: &Path) {
    let parent = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = fs::File::open(parent) {
        let _ = d.sync_all();
    }
}

/// What a restore put back.
#[derive(Debug, Clone)]
pub struct Restored {
    pub manifest_created_at: String,
    pub schema_version: u32,
    pub files: usize,
    pub records: u64,
    /// Films whose segments were not in the archive (`--without-media`), unpublished by
    /// the restore: their `films/{film}/` must be copied back, then they are published
    /// again.
    pub films_without_media: Vec<String>,
}

/// Whether `dir` is absent or an empty directory; else the refusal naming it.
fn must_be_empty(dir: &Path) -> Result<(), BackupError> {
    match fs::read_dir(dir) {
        Ok(mut e) => match e.next() {
            None => Ok(()),
            Some(_) => Err(BackupError::NotEmpty(dir.to_path_buf())),
        },
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(format!("reading {}", dir.display()))(e)),
    }
}

/// A directory beside `target` that is removed unless `keep` is called.
struct Staging {
    dir: PathBuf,
    kept: bool,
}

impl Staging {
    fn beside(target: &Path) -> Result<Self, BackupError> {
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let parent = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(io_err(format!("creating {}", parent.display())))?;
        let dir = parent.join(format!(".{name}.restore-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        make_dir(&dir)?;
        Ok(Self { dir, kept: false })
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.kept {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

fn make_dir(dir: &Path) -> Result<(), BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io_err(format!("creating {}", dir.display())))
}

/// Restores `file` into the configured data root and keys directory, both absent or
/// empty. The archive is verified whole first (`archive::verify`); then extracted into
/// directories beside the targets, the store imported there, and both renamed into
/// place. On any refusal or failure nothing is left behind.
pub fn restore(
    config: &Config,
    file: &Path,
    say: &mut dyn FnMut(&str),
) -> Result<Restored, BackupError> {
    must_be_empty(&config.media_dir)?;
    must_be_empty(&config.keys_dir)?;
    say("verifying the archive");
    let manifest = archive::verify(
        archive::open(file).map_err(io_err(format!("opening {}", file.display())))?,
    )?;
    if manifest.schema_version > SCHEMA_VERSION {
        return Err(BackupError::NewerSchema {
            found: manifest.schema_version,
        });
    }
    say("extracting");
    let mut media = Staging::beside(&config.media_dir)?;
    let mut keys = Staging::beside(&config.keys_dir)?;
    let listed: std::collections::BTreeMap<_, _> = manifest
        .entries
        .iter()
        .map(|e| (e.path.clone(), e))
        .collect();
    let snapshot_file = media.dir.join(".restore.snapshot");
    let mut ar = archive::open(file).map_err(io_err(format!("opening {}", file.display())))?;
    let mut files = 0;
    for entry in ar.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let path = entry
            .path()
            .map_err(ArchiveError::Read)?
            .to_string_lossy()
            .into_owned();
        if path == archive::MANIFEST {
            continue;
        }
        // Verified already; checked again because the file could have changed since.
        archive::check_path(Path::new(&path))?;
        let want = listed
            .get(&path)
            .ok_or_else(|| ArchiveError::Extra(path.clone()))?;
        let dest = if path == archive::SNAPSHOT {
            snapshot_file.clone()
        } else {
            archive::target(&path, &media.dir, &keys.dir).ok_or_else(|| ArchiveError::Unsafe {
                path: path.clone(),
                why: "not a place a cinegate backup writes to",
            })?
        };
        if let Some(parent) = dest.parent() {
            make_dir(parent)?;
        }
        write_entry(&mut entry, &dest, &path, want)?;
        files += 1;
    }
    say("importing the store");
    let records = {
        let f = fs::File::open(&snapshot_file).map_err(io_err("reading the store snapshot"))?;
        snapshot::import(
            &media.dir.join("store"),
            &mut BufReader::with_capacity(1 << 20, f),
        )?
    };
    fs::remove_file(&snapshot_file).map_err(io_err("removing the store snapshot"))?;
    for d in ["films", "uploads"] {
        make_dir(&media.dir.join(d))?;
    }
    let films_without_media = if manifest.with_media {
        vec![]
    } else {
        withdraw_films_without_media(&media.dir.join("store"))?
    };
    // Into place: the keys first, then the data root, whose arrival is what makes the
    // restore visible to a server started next.
    place(&mut keys, &config.keys_dir)?;
    if let Err(e) = place(&mut media, &config.media_dir) {
        let _ = fs::remove_dir_all(&config.keys_dir);
        return Err(e);
    }
    Ok(Restored {
        manifest_created_at: manifest.created_at,
        schema_version: manifest.schema_version,
        files,
        records,
        films_without_media,
    })
}

/// A restore without media: every published film with a package is unpublished (its
/// segments are not there; serving it would fail on every segment), with the event the
/// console's unpublish records. Returns their ids, for the operator to publish again once
/// `films/{film}/` is copied back. The store is opened (and so migrated) here.
fn withdraw_films_without_media(store_dir: &Path) -> Result<Vec<String>, BackupError> {
    // sled lets go of the import's lock from its flusher thread, a moment after the
    // import's handle is dropped.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let store = loop {
        match Store::open(store_dir) {
            Err(crate::store::StoreError::Locked { .. })
                if std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => break other.map_err(SnapshotError::from)?,
        }
    };
    let now = jiff::Timestamp::now().as_second();
    let mut withdrawn = Vec::new();
    for film in store.films().map_err(SnapshotError::from)? {
        if !film.is_watchable() {
            continue;
        }
        store
            .update_film(&film.id, |f| f.published = false)
            .map_err(SnapshotError::from)?;
        store
            .append_event(
                now,
                crate::store::events::Event::FilmUnpublished { film: film.id },
            )
            .map_err(SnapshotError::from)?;
        withdrawn.push(film.id.to_string());
    }
    store.flush().map_err(SnapshotError::from)?;
    Ok(withdrawn)
}

fn write_entry(
    entry: &mut impl Read,
    dest: &Path,
    path: &str,
    want: &archive::Entry,
) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let what = || io_err(format!("writing {}", dest.display()));
    let f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(dest)
        .map_err(what())?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    let mut h = archive::Hashing::new(entry);
    io::copy(&mut h, &mut out).map_err(what())?;
    out.flush().map_err(what())?;
    let (size, sha) = h.finish();
    if size != want.size || sha != want.sha256 {
        return Err(ArchiveError::Mismatch {
            path: path.into(),
            what: "changed since it was verified",
        }
        .into());
    }
    out.into_inner()
        .map_err(|e| what()(e.into_error()))?
        .sync_all()
        .map_err(what())
}

fn place(staging: &mut Staging, target: &Path) -> Result<(), BackupError> {
    // An empty target (checked at the start) gives way to the staged one.
    if target.exists() {
        must_be_empty(target)?;
        fs::remove_dir(target).map_err(io_err(format!("replacing {}", target.display())))?;
    }
    fs::rename(&staging.dir, target)
        .map_err(io_err(format!("moving into {}", target.display())))?;
    staging.kept = true;
    sync_parent(target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(root: &Path) -> Config {
        Config {
            media_dir: root.join("media"),
            keys_dir: root.join("keys"),
            ..Config::default()
        }
    }

    /// An archive of a store from a newer cinegate: refused before anything is written.
    #[test]
    fn a_newer_schema_is_refused_and_nothing_is_written() -> anyhow::Result<()> {
        let from = tempfile::tempdir()?;
        let cfg = config(from.path());
        fs::create_dir_all(cfg.films_dir())?;
        fs::create_dir_all(&cfg.keys_dir)?;
        fs::write(cfg.keys_dir.join("a.key"), b"k")?;
        let store = Store::temporary()?;
        let (snap, _) = snapshot_to_file(&store, &cfg.media_dir)?;
        let out = from.path().join("b.tar.gz");
        write_archive(&cfg, &snap, SCHEMA_VERSION + 1, true, &out, &mut |_| {})?;
        let to = tempfile::tempdir()?;
        let err = restore(&config(to.path()), &out, &mut |_| {}).err();
        assert!(
            matches!(err, Some(BackupError::NewerSchema { found }) if found == SCHEMA_VERSION + 1),
            "{err:?}"
        );
        assert_eq!(
            fs::read_dir(to.path())?.count(),
            0,
            "a refused restore wrote"
        );
        // The same archive at this schema restores.
        let ok = from.path().join("ok.tar.gz");
        write_archive(&cfg, &snap, SCHEMA_VERSION, true, &ok, &mut |_| {})?;
        let done = restore(&config(to.path()), &ok, &mut |_| {})?;
        assert_eq!(done.files, 2);
        assert_eq!(fs::read(to.path().join("keys/a.key"))?, b"k");
        Ok(())
    }
}
