//! Uploading a package directory to the bucket and confirming every object, and removing
//! objects by prefix.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use md5::{Digest, Md5};
use object_store::aws::AmazonS3;
use object_store::path::Path as ObjectPath;
use object_store::{
    Attribute, Attributes, ObjectStore, ObjectStoreExt, PutOptions, PutPayload, WriteMultipart,
};

use super::StorageError;

/// Objects above this size go up in parts (S3 takes at most 5 GiB in one PUT; parts
/// also bound what a retry resends). Package objects (6 s segments) are far below it.
const MULTIPART_ABOVE: u64 = 64 << 20;
/// Uploads in flight at once.
const CONCURRENCY: usize = 8;
/// Passes over the objects not yet confirmed, each after the client's own retries.
const PASSES: u32 = 3;
/// Every object lives under its package's own directory and never changes: a CDN may keep
/// it for good.
pub(super) const CACHE_CONTROL: &str = "public, max-age=31536000, immutable";

/// What a publish put in the bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub objects: usize,
    pub bytes: u64,
}

pub(super) async fn publish(
    client: &AmazonS3,
    package_key: &str,
    local: &Path,
) -> Result<Published, StorageError> {
    let mut files = Vec::new();
    walk(local, local, &mut files)?;
    files.sort();
    let (last, rest): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|(rel, _)| rel == "manifest.json");
    let client = Arc::new(client.clone());
    let mut published = Published {
        objects: 0,
        bytes: 0,
    };
    for batch in [rest, last] {
        let mut pending = batch;
        let mut pass = 0;
        loop {
            pass += 1;
            let results: Vec<_> = futures_util::stream::iter(pending.clone())
                .map(|(rel, path)| {
                    let client = client.clone();
                    let key = format!("{package_key}{rel}");
                    async move {
                        let outcome = upload(&client, &key, &path).await;
                        ((rel, path), outcome)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
            let mut failed = Vec::new();
            let mut last_error = None;
            for (file, outcome) in results {
                match outcome {
                    Ok(size) => {
                        published.objects += 1;
                        published.bytes += size;
                    }
                    // A file that cannot be read will not read on the next pass either.
                    Err(e @ StorageError::Read { .. }) => return Err(e),
                    Err(e) => {
                        failed.push(file);
                        last_error = Some(e);
                    }
                }
            }
            match last_error {
                None => break,
                Some(e) if pass >= PASSES => return Err(e),
                Some(e) => {
                    tracing::warn!(failed = failed.len(), pass, error = %e, "publish: objects not confirmed; retrying them");
                    tokio::time::sleep(Duration::from_secs(u64::from(pass) * 2)).await;
                    pending = failed;
                }
            }
        }
    }
    Ok(published)
}

/// Every regular file under `dir`, as (path relative to `root` with `/`, full path).
fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), StorageError> {
    let read = |e| StorageError::Read {
        path: dir.to_path_buf(),
        source: e,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let path = entry.path();
        let kind = entry.file_type().map_err(read)?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
    Ok(())
}

pub(super) fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("ts") => "video/mp2t",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("json") => "application/json",
        Some("m3u8") => "application/vnd.apple.mpegurl",
        _ => "application/octet-stream",
    }
}

/// Uploads one file unless the bucket already holds it byte for byte, then confirms it;
/// the object's size.
async fn upload(client: &AmazonS3, key: &str, path: &Path) -> Result<u64, StorageError> {
    let read = |e| StorageError::Read {
        path: path.to_path_buf(),
        source: e,
    };
    let location = ObjectPath::parse(key).map_err(|e| StorageError::Bucket {
        key: "storage.prefix",
        message: format!("{key:?} is not a valid object key: {e}"),
    })?;
    let size = tokio::fs::metadata(path).await.map_err(read)?.len();
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, content_type(key).into());
    attributes.insert(Attribute::CacheControl, CACHE_CONTROL.into());
    if size > MULTIPART_ABOVE {
        // A multipart ETag is not the MD5 of the object: the size is what is compared.
        if let Ok(meta) = client.head(&location).await {
            if meta.size == size {
                return Ok(size);
            }
        }
        let upload = client
            .put_multipart_opts(&location, attributes.into())
            .await
            .map_err(StorageError::from_store)?;
        let mut writer = WriteMultipart::new(upload);
        let mut file = tokio::fs::File::open(path).await.map_err(read)?;
        let mut buf = vec![0u8; 8 << 20];
        loop {
            use tokio::io::AsyncReadExt;
            let n = file.read(&mut buf).await.map_err(read)?;
            if n == 0 {
                break;
            }
            writer
                .wait_for_capacity(4)
                .await
                .map_err(StorageError::from_store)?;
            writer.write(&buf[..n]);
        }
        writer.finish().await.map_err(StorageError::from_store)?;
        return confirm(client, key, &location, size, None).await;
    }
    let data = tokio::fs::read(path).await.map_err(read)?;
    let md5 = hex::encode(Md5::digest(&data));
    if let Ok(meta) = client.head(&location).await {
        if meta.size == size && etag_is(meta.e_tag.as_deref(), &md5) {
            return Ok(size);
        }
    }
    let options = PutOptions {
        attributes,
        ..Default::default()
    };
    client
        .put_opts(&location, PutPayload::from(data), options)
        .await
        .map_err(StorageError::from_store)?;
    confirm(client, key, &location, size, Some(&md5)).await
}

async fn confirm(
    client: &AmazonS3,
    key: &str,
    location: &ObjectPath,
    size: u64,
    md5: Option<&str>,
) -> Result<u64, StorageError> {
    let meta = client
        .head(location)
        .await
        .map_err(StorageError::from_store)?;
    if meta.size != size {
        return Err(StorageError::Unconfirmed {
            object: key.to_string(),
            message: format!("sent {size} bytes, the bucket holds {}", meta.size),
        });
    }
    if let Some(md5) = md5 {
        if !etag_is(meta.e_tag.as_deref(), md5) {
            return Err(StorageError::Unconfirmed {
                object: key.to_string(),
                message: format!(
                    "its ETag {:?} is not the MD5 of what was sent ({md5})",
                    meta.e_tag
                ),
            });
        }
    }
    Ok(size)
}

/// Whether an S3 ETag (quoted, sometimes weak) is this hex MD5.
fn etag_is(etag: Option<&str>, md5: &str) -> bool {
    etag.map(|e| e.trim_start_matches("W/").trim_matches('"'))
        .is_some_and(|e| e.eq_ignore_ascii_case(md5))
}

pub(super) async fn delete_prefix(
    client: &AmazonS3,
    prefix: &ObjectPath,
) -> Result<usize, StorageError> {
    let locations = client
        .list(Some(prefix))
        .map_ok(|meta| meta.location)
        .boxed();
    let deleted: Vec<ObjectPath> = client
        .delete_stream(locations)
        .try_collect()
        .await
        .map_err(StorageError::from_store)?;
    Ok(deleted.len())
}

pub(super) async fn list(
    client: &AmazonS3,
    prefix: &ObjectPath,
) -> Result<Vec<(String, u64)>, StorageError> {
    let objects: Vec<_> = client
        .list(Some(prefix))
        .map_ok(|meta| (meta.location.to_string(), meta.size))
        .try_collect()
        .await
        .map_err(StorageError::from_store)?;
    Ok(objects)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_compare_unquoted_and_case_blind() {
        let md5 = "9e107d9d372bb6826bd81d3542a419d6";
        assert!(etag_is(Some("\"9E107D9D372BB6826BD81D3542A419D6\""), md5));
        assert!(etag_is(Some("W/\"9e107d9d372bb6826bd81d3542a419d6\""), md5));
        assert!(!etag_is(
            Some("\"9e107d9d372bb6826bd81d3542a419d6-2\""),
            md5
        ));
        assert!(!etag_is(None, md5));
    }

    #[test]
    fn content_types_by_extension() {
        assert_eq!(content_type("a/720/00001.ts"), "video/mp2t");
        assert_eq!(content_type("a/poster.jpg"), "image/jpeg");
        assert_eq!(content_type("a/manifest.json"), "application/json");
    }
}
