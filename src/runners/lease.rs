//! The files of a leased job on the origin's disk: the source a runner downloads (its
//! length and SHA-256, cached beside it), the package paths a runner may upload (checked
//! against traversal), an upload written beside its target and renamed into place, and
//! the check of a finished package before it is moved into place.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{io, RunnerError};

/// The largest single package file accepted (a segment is a few MB; a poster less).
pub const MAX_FILE_BYTES: u64 = 1 << 30;

/// The source of a leased job: what a runner checks its download against.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceInfo {
    pub length: u64,
    /// SHA-256 of the whole file, hex.
    pub sha256: String,
}

/// A file of a package as a runner declares it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredFile {
    /// Relative to the package directory, `/`-separated (`360/00003.ts`).
    pub path: String,
    pub size: u64,
}

/// Where one file goes (`runners::upload_target`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadTarget {
    pub path: String,
    /// The origin already has it at the declared size: nothing to send.
    pub present: bool,
    pub method: String,
    /// Relative to the origin, or absolute (an object store's presigned URL).
    pub url: String,
    /// Headers to send with it, as they are.
    pub headers: Vec<(String, String)>,
    /// Send the runner token and the lease token with it (the origin's own target only;
    /// never to a third party).
    pub origin_credentials: bool,
}

/// The length and SHA-256 of a source, hashed once and cached in `{source}.sha256`
/// (length, modification time in ns, hash), so a job leased again does not read a
/// multi-gigabyte source again. Blocking.
pub fn source_info(source: &Path) -> Result<SourceInfo, RunnerError> {
    let meta = std::fs::metadata(source).map_err(io("reading the source's metadata"))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let stamp = format!("{} {mtime}", meta.len());
    let cache = sidecar(source);
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some(hash) = text.trim().strip_prefix(&stamp).map(str::trim) {
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Ok(SourceInfo {
                    length: meta.len(),
                    sha256: hash.to_string(),
                });
            }
        }
    }
    let mut file = std::fs::File::open(source).map_err(io("opening the source"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io("reading the source"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let sha256 = hex::encode(hasher.finalize());
    // A cache only: losing it costs a re-hash, so no fsync.
    let _ = std::fs::write(&cache, format!("{stamp} {sha256}\n"));
    Ok(SourceInfo {
        length: meta.len(),
        sha256,
    })
}

fn sidecar(source: &Path) -> PathBuf {
    let mut name = source
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    name.push(".sha256");
    source.with_file_name(name)
}

/// A package path a runner may upload: one to three `/`-separated parts, each of
/// `A-Za-z0-9._-`, none empty, none starting with `.` (so no `..`, no hidden file, no
/// staging name of ours), nothing absolute. Returned as a relative path.
pub fn check_path(path: &str) -> Result<PathBuf, RunnerError> {
    let refuse =
        |why: &str| RunnerError::InvalidPath(format!("upload path {path:?} refused: {why}"));
    if path.is_empty() || path.len() > 200 {
        return Err(refuse("must be 1–200 characters"));
    }
    let parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 3 {
        return Err(refuse("at most three levels"));
    }
    let mut out = PathBuf::new();
    for part in parts {
        if part.is_empty() || part.starts_with('.') {
            return Err(refuse(
                "empty parts, `.`, `..` and names starting with `.` are not allowed",
            ));
        }
        if !part
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(refuse("only A-Z, a-z, 0-9, `.`, `_` and `-` are allowed"));
        }
        out.push(part);
    }
    Ok(out)
}

/// One upload in progress: bytes go to a hidden temporary file beside the target, which
/// is fsynced and renamed over it on `commit`, so a file at its final name is always
/// whole. Dropped uncommitted, the temporary file is removed.
pub struct Upload {
    pub tmp: PathBuf,
    pub dest: PathBuf,
    committed: bool,
}

impl Upload {
    pub(super) fn new(staging: &Path, rel: &Path) -> Result<Self, RunnerError> {
        let dest = staging.join(rel);
        let parent = dest.parent().unwrap_or(staging).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(io("creating the staging directory"))?;
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = parent.join(format!(".{name}.{:016x}.upload", rand::random::<u64>()));
        Ok(Self {
            tmp,
            dest,
            committed: false,
        })
    }

    /// Opens the temporary file for writing.
    pub fn create(&self) -> Result<std::fs::File, RunnerError> {
        std::fs::File::create(&self.tmp).map_err(io("creating an upload file"))
    }

    /// Syncs the written file and renames it over the target. Blocking.
    pub fn commit(mut self, file: std::fs::File) -> Result<u64, RunnerError> {
        let mut file = file;
        file.flush().map_err(io("writing an upload"))?;
        file.sync_all().map_err(io("syncing an upload"))?;
        let size = file.metadata().map_err(io("reading an upload"))?.len();
        drop(file);
        std::fs::rename(&self.tmp, &self.dest).map_err(io("renaming an upload into place"))?;
        sync_dir(self.dest.parent());
        self.committed = true;
        Ok(size)
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// fsync of a directory after a rename in it (best effort: not every file system allows it).
pub(crate) fn sync_dir(dir: Option<&Path>) {
    if let Some(dir) = dir {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

/// Every regular file under `dir` (`/`-separated relative paths, hidden files such as
/// uploads in progress left out), sorted.
pub fn list_files(dir: &Path) -> Vec<DeclaredFile> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<DeclaredFile>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            match e.file_type() {
                Ok(t) if t.is_dir() && depth < 3 => walk(&e.path(), &path, depth + 1, out),
                Ok(t) if t.is_file() => {
                    let size = e.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(DeclaredFile { path, size });
                }
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", 1, &mut out);
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out
}

/// The check before a runner's package is moved into place: the declared files and the
/// staged ones are the same set at the same sizes, and the manifest reads and names no
/// file that is not there (every rendition's segments, the poster). Returns the manifest.
pub fn check_package(
    staging: &Path,
    declared: &[DeclaredFile],
) -> Result<transcoder::Manifest, RunnerError> {
    let have: BTreeMap<String, u64> = list_files(staging)
        .into_iter()
        .map(|f| (f.path, f.size))
        .collect();
    check_listing(declared, &have, staging)
}

/// `check_package` over a listing of what arrived (the origin's staging directory, or the
/// bucket's objects under the attempt's prefix), with the manifest read from `manifest_dir`.
pub fn check_listing(
    declared: &[DeclaredFile],
    have: &BTreeMap<String, u64>,
    manifest_dir: &Path,
) -> Result<transcoder::Manifest, RunnerError> {
    let incomplete = |m: String| RunnerError::Incomplete(m);
    if declared.is_empty() {
        return Err(incomplete("the package declares no files".into()));
    }
    let mut want = BTreeMap::new();
    for f in declared {
        check_path(&f.path)?;
        if want.insert(f.path.clone(), f.size).is_some() {
            return Err(incomplete(format!("{} is declared twice", f.path)));
        }
    }
    for (path, size) in &want {
        match have.get(path) {
            None => return Err(incomplete(format!("{path} was not uploaded"))),
            Some(got) if got != size => {
                return Err(incomplete(format!(
                    "{path} is {got} bytes where it was uploaded, {size} declared"
                )))
            }
            Some(_) => {}
        }
    }
    if let Some(extra) = have.keys().find(|p| !want.contains_key(*p)) {
        return Err(incomplete(format!("{extra} was uploaded but not declared")));
    }
    let manifest = transcoder::Manifest::load(manifest_dir)
        .map_err(|e| incomplete(format!("the package's manifest: {e}")))?;
    let mut named = Vec::new();
    if !manifest.poster.is_empty() {
        named.push(manifest.poster.clone());
    }
    for r in &manifest.renditions {
        for i in 0..manifest.segment_count() {
            named.push(format!("{}/{i:05}.ts", r.name));
        }
    }
    if let Some(missing) = named.iter().find(|p| !want.contains_key(*p)) {
        return Err(incomplete(format!(
            "the manifest names {missing}, which is not in the package"
        )));
    }
    Ok(manifest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_paths_are_plain_relative_names() {
        for ok in ["manifest.json", "360/00001.ts", "poster.jpg", "a/b/c"] {
            assert!(check_path(ok).is_ok(), "{ok} refused");
        }
        for bad in [
            "",
            "../x",
            "360/../../keys",
            "/etc/passwd",
            ".hidden",
            "a//b",
            "a/./b",
            "a\\b",
            "a b",
            "a/b/c/d",
            "360/%2e%2e",
            "ü",
        ] {
            assert!(
                matches!(check_path(bad), Err(RunnerError::InvalidPath(_))),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn the_source_hash_is_cached_until_the_file_changes() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let source = dir.path().join("source");
        std::fs::write(&source, b"abc")?;
        let first = source_info(&source)?;
        assert_eq!(first.length, 3);
        assert_eq!(
            first.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(dir.path().join("source.sha256").exists());
        assert_eq!(source_info(&source)?, first);
        std::fs::write(&source, b"abcd")?;
        assert_eq!(source_info(&source)?.length, 4);
        Ok(())
    }

    #[test]
    fn a_package_is_refused_unless_every_declared_file_is_there_at_its_size(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir(dir.path().join("360"))?;
        std::fs::write(dir.path().join("360/00000.ts"), b"12345")?;
        let declared = vec![DeclaredFile {
            path: "360/00000.ts".into(),
            size: 5,
        }];
        // No manifest: refused, naming it.
        let e = check_package(dir.path(), &declared)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|m| m.contains("manifest")),
            "{e:?}"
        );
        let short = vec![DeclaredFile {
            path: "360/00000.ts".into(),
            size: 6,
        }];
        let e = check_package(dir.path(), &short)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("5 bytes where it was uploaded, 6 declared")),
            "{e:?}"
        );
        let e = check_package(dir.path(), &[]).err();
        assert!(matches!(e, Some(RunnerError::Incomplete(_))));
        std::fs::write(dir.path().join("extra"), b"x")?;
        let e = check_package(dir.path(), &declared)
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|m| m.contains("extra was uploaded but not declared")),
            "{e:?}"
        );
        Ok(())
    }
}
