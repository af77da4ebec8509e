//! The backup archive format: a gzip-compressed tar whose last entry, `MANIFEST.json`,
//! lists every other entry with its size and SHA-256.
//!
//! Entries (all regular files, mode 0600, relative paths):
//! - `store.snapshot` — the store as of one moment (`store::snapshot`);
//! - `keys/…` — everything under `keys_dir` (signing keys, film secrets, tokens);
//! - `media/films/{film}/pkg-{job}/…` — package manifests and posters, and the segments
//!   (`*.ts`) unless the backup is `--without-media`.
//!
//! The manifest comes last because its checksums are computed while the entries are
//! written (a file is read once); a reader therefore reads the archive twice: once to
//! verify it whole (`verify`), and only then to extract.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub const MANIFEST: &str = "MANIFEST.json";
pub const SNAPSHOT: &str = "store.snapshot";
pub const FORMAT: u32 = 1;
/// The top-level names an archive may hold besides the manifest.
const TOPS: &[&str] = &["keys", "media", SNAPSHOT];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Entry {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub cinegate_version: String,
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub created_at: String,
    pub with_media: bool,
    pub entries: Vec<Entry>,
}

/// Why an archive was refused. Nothing has been written when one of these comes back.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the archive cannot be read (cut short or not a gzip tar?): {0}")]
    Read(io::Error),
    #[error("the archive has no {MANIFEST} at its end: it is cut short, or not a cinegate backup")]
    NoManifest,
    #[error("the archive's {MANIFEST} is unreadable: {0}")]
    BadManifest(String),
    #[error("the archive is format {0}; this cinegate reads format {FORMAT}")]
    Format(u32),
    #[error("refused entry {path:?}: {why}")]
    Unsafe { path: String, why: &'static str },
    #[error("entry {0:?} is in the archive but not in its manifest (added after the backup?)")]
    Extra(String),
    #[error("entry {0:?} is listed in the manifest but missing from the archive")]
    Missing(String),
    #[error(
        "entry {path:?} does not match the manifest ({what}): the archive was changed or damaged"
    )]
    Mismatch { path: String, what: &'static str },
    #[error("entry {0:?} appears twice")]
    Duplicate(String),
}

/// Whether `path` may be written under a restore's root: relative, made only of plain
/// names (no `..`, `.`, root or drive prefix), under one of the known tops.
pub fn check_path(path: &Path) -> Result<(), ArchiveError> {
    let shown = path.to_string_lossy().into_owned();
    let unsafe_ = |why| ArchiveError::Unsafe {
        path: shown.clone(),
        why,
    };
    if path.as_os_str().is_empty() {
        return Err(unsafe_("empty path"));
    }
    // `Path::components` drops inner `.` and doubled `/`; the text must have none.
    if shown
        .split('/')
        .skip(usize::from(shown.starts_with('/')))
        .any(|s| s.is_empty() || s == ".")
    {
        return Err(unsafe_(
            "`.` or empty components are not written by cinegate",
        ));
    }
    for c in path.components() {
        match c {
            Component::Normal(_) => {}
            Component::ParentDir => return Err(unsafe_("`..` would leave the data root")),
            Component::RootDir | Component::Prefix(_) => {
                return Err(unsafe_("absolute paths are not restored"))
            }
            Component::CurDir => return Err(unsafe_("`.` components are not written by cinegate")),
        }
    }
    let top = path
        .components()
        .next()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .unwrap_or_default();
    let is_file_top = top == SNAPSHOT;
    if !TOPS.contains(&top.as_str()) || (is_file_top && path.components().count() != 1) {
        return Err(unsafe_("not a place a cinegate backup writes to"));
    }
    Ok(())
}

/// Reads through `input`, counting and hashing it.
pub struct Hashing<R> {
    inner: R,
    hasher: Sha256,
    pub bytes: u64,
}

impl<R> Hashing<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        }
    }

    pub fn finish(self) -> (u64, String) {
        (self.bytes, hex::encode(self.hasher.finalize()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

pub fn open(
    file: &Path,
) -> io::Result<tar::Archive<flate2::read::GzDecoder<io::BufReader<std::fs::File>>>> {
    let f = std::fs::File::open(file)?;
    Ok(tar::Archive::new(flate2::read::GzDecoder::new(
        io::BufReader::with_capacity(1 << 20, f),
    )))
}

/// Reads the whole archive once: every entry a regular file at a safe path, hashed, the
/// manifest last, each entry listed in it with that size and hash, none missing, none
/// extra, and the gzip stream whole to its trailer. Returns the manifest.
pub fn verify<R: Read>(mut archive: tar::Archive<R>) -> Result<Manifest, ArchiveError> {
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Vec<u8>> = None;
    for entry in archive.entries().map_err(ArchiveError::Read)? {
        let mut entry = entry.map_err(ArchiveError::Read)?;
        let path = entry.path().map_err(ArchiveError::Read)?.into_owned();
        let shown = path.to_string_lossy().into_owned();
        if manifest.is_some() {
            return Err(ArchiveError::Extra(shown));
        }
        if !entry.header().entry_type().is_file() {
            let why = match entry.header().entry_type() {
                tar::EntryType::Symlink => "symbolic links are not restored",
                tar::EntryType::Link => "hard links are not restored",
                tar::EntryType::Directory => "directory entries are not written by cinegate",
                _ => "only regular files are restored",
            };
            return Err(ArchiveError::Unsafe { path: shown, why });
        }
        if shown == MANIFEST {
            let mut bytes = Vec::new();
            (&mut entry)
                .take(16 << 20)
                .read_to_end(&mut bytes)
                .map_err(ArchiveError::Read)?;
            manifest = Some(bytes);
            continue;
        }
        check_path(&path)?;
        let mut h = Hashing::new(&mut entry);
        io::copy(&mut h, &mut io::sink()).map_err(ArchiveError::Read)?;
        if seen.insert(shown.clone(), h.finish()).is_some() {
            return Err(ArchiveError::Duplicate(shown));
        }
    }
    // The tar's end marker can come before the gzip's end: read to the trailer, whose
    // CRC and length catch a cut or a changed byte there.
    io::copy(&mut archive.into_inner(), &mut io::sink()).map_err(ArchiveError::Read)?;
    let manifest: Manifest = serde_json::from_slice(&manifest.ok_or(ArchiveError::NoManifest)?)
        .map_err(|e| ArchiveError::BadManifest(e.to_string()))?;
    if manifest.format != FORMAT {
        return Err(ArchiveError::Format(manifest.format));
    }
    let mut listed = BTreeMap::new();
    for e in &manifest.entries {
        check_path(Path::new(&e.path))?;
        if listed.insert(e.path.clone(), e).is_some() {
            return Err(ArchiveError::Duplicate(e.path.clone()));
        }
    }
    for (path, (size, sha)) in &seen {
        let Some(want) = listed.get(path) else {
            return Err(ArchiveError::Extra(path.clone()));
        };
        if want.size != *size {
            return Err(ArchiveError::Mismatch {
                path: path.clone(),
                what: "size",
            });
        }
        if &want.sha256 != sha {
            return Err(ArchiveError::Mismatch {
                path: path.clone(),
                what: "SHA-256",
            });
        }
    }
    if let Some(missing) = listed.keys().find(|p| !seen.contains_key(*p)) {
        return Err(ArchiveError::Missing(missing.clone()));
    }
    if !seen.contains_key(SNAPSHOT) {
        return Err(ArchiveError::Missing(SNAPSHOT.into()));
    }
    Ok(manifest)
}

/// Writes the archive: `add` each file, then `finish` with the manifest.
pub struct Writer<W: Write> {
    tar: tar::Builder<flate2::write::GzEncoder<W>>,
    entries: Vec<Entry>,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Self {
        // Segments are compressed video already: the fast level saves the time, the
        // store and keys still shrink.
        let gz = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.mode(tar::HeaderMode::Deterministic);
        Self {
            tar,
            entries: Vec::new(),
        }
    }

    /// Adds `size` bytes read from `data` as `path`; a source that ends early or runs
    /// longer (a file changed while it was read) is an error.
    pub fn add(&mut self, path: &str, size: u64, data: impl Read) -> io::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_size(size);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        let mut h = Hashing::new(data.take(size));
        self.tar.append_data(&mut header, path, &mut h)?;
        let (bytes, sha256) = h.finish();
        if bytes != size {
            return Err(io::Error::other(format!(
                "{path} changed while it was read"
            )));
        }
        self.entries.push(Entry {
            path: path.to_string(),
            size,
            sha256,
        });
        Ok(())
    }

    pub fn finish(mut self, mut manifest: Manifest) -> io::Result<W> {
        manifest.entries = std::mem::take(&mut self.entries);
        let bytes = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        self.tar.append_data(&mut header, MANIFEST, &bytes[..])?;
        self.tar.into_inner()?.finish()
    }
}

/// Where an archive path goes, under the restore's media and keys roots.
pub fn target(path: &str, media: &Path, keys: &Path) -> Option<PathBuf> {
    let p = Path::new(path);
    if let Ok(rest) = p.strip_prefix("keys") {
        Some(keys.join(rest))
    } else if let Ok(rest) = p.strip_prefix("media") {
        Some(media.join(rest))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        Manifest {
            format: FORMAT,
            cinegate_version: "test".into(),
            schema_version: 1,
            created_at: "2026-01-01T00:00:00Z".into(),
            with_media: true,
            entries: vec![],
        }
    }

    fn archive(files: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
        let mut w = Writer::new(Vec::new());
        for (p, data) in files {
            w.add(p, data.len() as u64, *data)?;
        }
        w.finish(manifest())
    }

    fn check(bytes: &[u8]) -> Result<Manifest, ArchiveError> {
        verify(tar::Archive::new(flate2::read::GzDecoder::new(bytes)))
    }

    #[test]
    fn paths_that_leave_the_root_are_refused() {
        for bad in [
            "../etc/passwd",
            "keys/../../x",
            "/etc/passwd",
            "keys/./a",
            "",
            "other/file",
            "store.snapshot/x",
        ] {
            assert!(
                matches!(check_path(Path::new(bad)), Err(ArchiveError::Unsafe { .. })),
                "{bad:?} was let through"
            );
        }
        for good in [
            "keys/films/a.secret",
            "media/films/f/pkg-j/manifest.json",
            SNAPSHOT,
        ] {
            assert!(check_path(Path::new(good)).is_ok(), "{good:?} was refused");
        }
    }

    #[test]
    fn a_whole_archive_verifies() -> anyhow::Result<()> {
        let bytes = archive(&[(SNAPSHOT, b"s"), ("keys/a", b"secret")])?;
        let m = check(&bytes)?;
        assert_eq!(m.entries.len(), 2);
        Ok(())
    }

    /// A raw tar entry, written around the checks tar-rs makes on paths, as a hostile
    /// archive would be.
    fn raw_entry(name: &str, kind: tar::EntryType, link: Option<&str>, data: &[u8]) -> Vec<u8> {
        let mut header = tar::Header::new_old();
        let n = name.as_bytes();
        header.as_old_mut().name[..n.len()].copy_from_slice(n);
        if let Some(l) = link {
            header.as_old_mut().linkname[..l.len()].copy_from_slice(l.as_bytes());
        }
        header.set_size(data.len() as u64);
        header.set_entry_type(kind);
        header.set_mode(0o600);
        header.set_cksum();
        let mut out = header.as_bytes().to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn gz(tar: &[u8]) -> io::Result<Vec<u8>> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(tar)?;
        e.finish()
    }

    #[test]
    fn escaping_paths_symlinks_and_hard_links_are_refused() -> io::Result<()> {
        for (name, kind, link) in [
            ("../evil", tar::EntryType::Regular, None),
            ("/tmp/evil", tar::EntryType::Regular, None),
            ("keys/link", tar::EntryType::Symlink, Some("/etc/passwd")),
            ("keys/hard", tar::EntryType::Link, Some("keys/a")),
        ] {
            let mut t = raw_entry(name, kind, link, if link.is_some() { b"" } else { b"x" });
            t.extend_from_slice(&[0u8; 1024]);
            let err = check(&gz(&t)?).err();
            assert!(
                matches!(err, Some(ArchiveError::Unsafe { .. })),
                "{name}: {err:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn a_changed_byte_an_added_entry_and_a_cut_are_refused() -> anyhow::Result<()> {
        let bytes = archive(&[(SNAPSHOT, b"snapshot"), ("keys/a", b"secret-bytes")])?;
        // Changed: rebuild the tar with one byte of an entry changed but the old manifest.
        let mut tar_bytes = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..]).read_to_end(&mut tar_bytes)?;
        let at = tar_bytes
            .windows(12)
            .position(|w| w == b"secret-bytes")
            .ok_or_else(|| anyhow::anyhow!("the entry's bytes are not in the tar"))?;
        tar_bytes[at] = b'S';
        let err = check(&gz(&tar_bytes)?).err();
        assert!(
            matches!(
                err,
                Some(ArchiveError::Mismatch {
                    what: "SHA-256",
                    ..
                })
            ),
            "{err:?}"
        );
        // Added: an entry no manifest lists, before the manifest.
        let mut w = Writer::new(Vec::new());
        w.add(SNAPSHOT, 8, &b"snapshot"[..])?;
        w.add("keys/a", 12, &b"secret-bytes"[..])?;
        let listed = w.entries.clone();
        w.add("keys/extra", 1, &b"x"[..])?;
        w.entries = listed;
        let err = check(&w.finish(manifest())?).err();
        assert!(
            matches!(err, Some(ArchiveError::Extra(ref p)) if p == "keys/extra"),
            "{err:?}"
        );
        // Cut short anywhere: refused.
        for cut in [10, bytes.len() / 2, bytes.len() - 4] {
            assert!(check(&bytes[..cut]).is_err(), "cut at {cut} verified");
        }
        Ok(())
    }
}
