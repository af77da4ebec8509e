//! Where packaged films are served from (`[storage]`): the origin's disk, or an
//! S3-compatible bucket behind a CDN. This module is the bucket's client for the rest of
//! the server: publishing a package (every object read back before the caller records it),
//! naming its segments for the media playlists (public or presigned URLs), and deleting a
//! package or a film. It knows nothing of users or HTTP routes; `jobs` and `stream` call it.
//!
//! Object keys: `{prefix}films/{film}/{package dir}/{path in the package}`, the same layout
//! as `media_dir/films/`, so an operator can read a bucket listing like the local tree.

mod publish;

use std::path::Path;
use std::time::Duration;

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use uuid::Uuid;

use crate::config::{StorageConfig, StorageMode};

pub use publish::Published;

/// Why the bucket did not do what was asked, with the `[storage]` key an operator should
/// look at: the start-up probe and a failed job both show it.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{message} (check {key})")]
    Bucket { key: &'static str, message: String },
    /// An object was written but reading it back did not give what was sent.
    #[error("object {object} was not confirmed: {message}")]
    Unconfirmed { object: String, message: String },
    #[error("reading {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

impl StorageError {
    /// The `[storage]` key this error points at (`storage.endpoint` for the rest: the
    /// bucket's end of the connection).
    pub fn key(&self) -> &'static str {
        match self {
            Self::Bucket { key, .. } => key,
            Self::Unconfirmed { .. } | Self::Read { .. } => "storage.endpoint",
        }
    }

    /// From a client error: which setting it most likely names, and what happened. An S3
    /// error body's `<Code>` and `<Message>` say it best; without one (no answer at all)
    /// it is the endpoint.
    fn from_store(e: object_store::Error) -> Self {
        let text = chain(&e);
        let between = |open: &str, close: &str| {
            let start = text.find(open)? + open.len();
            let len = text[start..].find(close)?;
            Some(text[start..start + len].to_string())
        };
        let code = between("<Code>", "</Code>");
        // The few entities an S3 error message carries (quotes around a scope or a key).
        let detail = between("<Message>", "</Message>")
            .unwrap_or_default()
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        let lower = format!("{} {}", code.as_deref().unwrap_or(""), detail).to_ascii_lowercase();
        let key = if code.is_none() {
            match e {
                object_store::Error::Unauthenticated { .. }
                | object_store::Error::PermissionDenied { .. } => "storage.access_key_id",
                _ => "storage.endpoint",
            }
        } else if lower.contains("nosuchbucket") || lower.contains("bucket not found") {
            "storage.bucket"
        } else if lower.contains("authorizationheadermalformed") || lower.contains("region") {
            "storage.region"
        } else if lower.contains("invalidaccesskeyid") || lower.contains("no such key") {
            "storage.access_key_id"
        } else if lower.contains("signature") {
            "storage.secret_access_key"
        } else if lower.contains("accessdenied") || lower.contains("forbidden") {
            // A known key without the right on this bucket.
            "storage.access_key_id"
        } else {
            "storage.endpoint"
        };
        let what = match key {
            "storage.bucket" => "the bucket does not exist",
            "storage.region" => "the bucket refused the signing region",
            "storage.access_key_id" | "storage.secret_access_key" => {
                "the bucket refused the credentials"
            }
            _ => "the object store could not be reached or failed",
        };
        let message = match code {
            Some(code) => format!("{what}: it answered {code}: {detail}"),
            None => format!("{what}: {text}"),
        };
        Self::Bucket { key, message }
    }
}

/// An error and its sources on one line: object_store's own message is often only the
/// outer layer ("Error performing list request") and the cause is further down.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// How the media playlists of a package name its segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SegmentSource {
    /// Relative URIs under the playback token: the origin serves them from disk.
    Origin,
    /// Absolute URLs: this base (ending in `/`, the package's directory) + `720/00012.ts`.
    Public(String),
    /// Presigned GETs, made per playlist request (they expire).
    Presigned,
}

/// The storage a server runs with.
pub struct Storage {
    bucket: Option<Bucket>,
}

struct Bucket {
    client: AmazonS3,
    /// Normalised: empty, or ending in `/`.
    prefix: String,
    /// Normalised: ending in `/`; empty with presigned URLs.
    public_base: String,
    presign_ttl: Option<Duration>,
    keep_local: bool,
}

impl Storage {
    /// Local storage: packages stay on the origin's disk.
    pub const fn local() -> Self {
        Self { bucket: None }
    }

    /// The storage `config` names. Makes no request: `probe` checks the bucket.
    pub fn from_config(config: &StorageConfig) -> Result<Self, StorageError> {
        if config.mode == StorageMode::Local {
            return Ok(Self::local());
        }
        let client = AmazonS3Builder::new()
            .with_endpoint(config.endpoint.trim_end_matches('/'))
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key_id)
            .with_secret_access_key(&config.secret_access_key.0)
            .with_virtual_hosted_style_request(!config.path_style)
            // On the client options, not the builder: `with_client_options` replaces them
            // whole, and the builder's own allow_http lives in them.
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(config.endpoint.starts_with("http://"))
                    .with_connect_timeout(Duration::from_secs(5))
                    .with_timeout(Duration::from_secs(120)),
            )
            // object_store's default is 10 retries over up to 3 minutes; a publish has its
            // own passes over what failed (`publish`), and start-up should fail in seconds.
            .with_retry(RetryConfig {
                max_retries: 3,
                retry_timeout: Duration::from_secs(30),
                ..Default::default()
            })
            .build()
            .map_err(|e| StorageError::Bucket {
                key: "storage.endpoint",
                message: format!("the S3 client could not be set up: {}", chain(&e)),
            })?;
        Ok(Self {
            bucket: Some(Bucket {
                client,
                prefix: normalise_prefix(&config.prefix),
                public_base: if config.presign_ttl.is_some() {
                    String::new()
                } else {
                    format!("{}/", config.public_base_url.trim_end_matches('/'))
                },
                presign_ttl: config.presign_ttl,
                keep_local: config.keep_local,
            }),
        })
    }

    /// Whether packages go to a bucket.
    pub fn is_remote(&self) -> bool {
        self.bucket.is_some()
    }

    /// Whether segment files stay on disk once the bucket holds them (always, locally).
    pub fn keep_local(&self) -> bool {
        self.bucket.as_ref().is_none_or(|b| b.keep_local)
    }

    /// Start-up check that the bucket is there and the key may list, write, read and
    /// delete in it (a probe object under the prefix, removed again): a wrong endpoint,
    /// bucket, region or credential stops the server naming the key, rather than failing
    /// the first job. Local storage: nothing to check.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let Some(b) = &self.bucket else {
            return Ok(());
        };
        let films = b.path(&format!("{}films", b.prefix))?;
        b.client
            .list_with_delimiter(Some(&films))
            .await
            .map_err(StorageError::from_store)?;
        let probe = b.path(&format!("{}.cinegate-probe", b.prefix))?;
        b.client
            .put(&probe, object_store::PutPayload::from_static(b"probe"))
            .await
            .map_err(StorageError::from_store)?;
        let meta = b
            .client
            .head(&probe)
            .await
            .map_err(StorageError::from_store)?;
        b.client
            .delete(&probe)
            .await
            .map_err(StorageError::from_store)?;
        if meta.size != 5 {
            return Err(StorageError::Unconfirmed {
                object: probe.to_string(),
                message: format!("wrote 5 bytes, the bucket says {}", meta.size),
            });
        }
        Ok(())
    }

    /// The object key of the package directory `dir` of `film`, ending in `/`.
    pub fn package_key(&self, film: &Uuid, dir: &str) -> String {
        let prefix = self.bucket.as_ref().map_or("", |b| b.prefix.as_str());
        format!("{prefix}films/{film}/{dir}/")
    }

    /// How the playlists of a package name its segments: from the origin unless the
    /// package has a confirmed copy in the bucket (`stored`).
    pub fn segment_source(&self, film: &Uuid, dir: &str, stored: bool) -> SegmentSource {
        match &self.bucket {
            Some(b) if stored => {
                if b.presign_ttl.is_some() {
                    SegmentSource::Presigned
                } else {
                    SegmentSource::Public(format!(
                        "{}{}",
                        b.public_base,
                        self.package_key(film, dir)
                    ))
                }
            }
            _ => SegmentSource::Origin,
        }
    }

    /// Presigned GET URLs of `keys` (object keys), valid `storage.presign_ttl`.
    pub async fn presign(&self, keys: &[String]) -> Result<Vec<String>, StorageError> {
        let ttl = self
            .bucket
            .as_ref()
            .and_then(|b| b.presign_ttl)
            .unwrap_or(Duration::from_secs(3600));
        self.presign_as(reqwest::Method::GET, keys, ttl).await
    }

    /// Presigned `method` URLs of `keys`, valid `ttl` (a runner's uploads are presigned
    /// PUTs: runners hold no bucket credentials). Signing makes no request.
    pub async fn presign_as(
        &self,
        method: reqwest::Method,
        keys: &[String],
        ttl: Duration,
    ) -> Result<Vec<String>, StorageError> {
        let Some(b) = &self.bucket else {
            return Err(StorageError::Bucket {
                key: "storage.mode",
                message: "presigned URLs need storage.mode = \"s3\"".into(),
            });
        };
        let paths = keys
            .iter()
            .map(|k| b.path(k))
            .collect::<Result<Vec<_>, _>>()?;
        let urls = b
            .client
            .signed_urls(method, &paths, ttl)
            .await
            .map_err(StorageError::from_store)?;
        Ok(urls.into_iter().map(String::from).collect())
    }

    /// The object `key`'s bytes into the file `path` (written beside it, then renamed).
    pub async fn fetch_to(&self, key: &str, path: &Path) -> Result<u64, StorageError> {
        let Some(b) = &self.bucket else {
            return Err(StorageError::Bucket {
                key: "storage.mode",
                message: "reading from a bucket needs storage.mode = \"s3\"".into(),
            });
        };
        let bytes = b
            .client
            .get(&b.path(key)?)
            .await
            .map_err(StorageError::from_store)?
            .bytes()
            .await
            .map_err(StorageError::from_store)?;
        let write = |e| StorageError::Read {
            path: path.to_path_buf(),
            source: e,
        };
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, &bytes).await.map_err(write)?;
        tokio::fs::rename(&tmp, path).await.map_err(write)?;
        Ok(bytes.len() as u64)
    }

    /// The content type and cache policy every package object is stored with (runners'
    /// presigned PUTs send them as headers).
    pub fn object_headers(path: &str) -> Vec<(String, String)> {
        vec![
            ("content-type".into(), publish::content_type(path).into()),
            ("cache-control".into(), publish::CACHE_CONTROL.into()),
        ]
    }

    /// Uploads the package in `local` (the directory `dir` of `film`) and reads every
    /// object back: size, and for single PUTs the ETag against the file's MD5. Objects
    /// already there and equal are skipped, so a publish that failed part-way resumes
    /// where it stopped. `manifest.json` goes last: a listing that shows it shows a whole
    /// package. Nothing here records anything; the caller commits the package after `Ok`.
    pub async fn publish(
        &self,
        film: &Uuid,
        dir: &str,
        local: &Path,
    ) -> Result<Published, StorageError> {
        let Some(b) = &self.bucket else {
            return Err(StorageError::Bucket {
                key: "storage.mode",
                message: "publishing to a bucket needs storage.mode = \"s3\"".into(),
            });
        };
        publish::publish(&b.client, &self.package_key(film, dir), local).await
    }

    /// Deletes every object of `film`'s package `dir`; the number deleted.
    pub async fn delete_package(&self, film: &Uuid, dir: &str) -> Result<usize, StorageError> {
        self.delete_prefix(&self.package_key(film, dir)).await
    }

    /// Deletes every object of `film` (all its packages).
    pub async fn delete_film(&self, film: &Uuid) -> Result<usize, StorageError> {
        let prefix = self.bucket.as_ref().map_or("", |b| b.prefix.as_str());
        self.delete_prefix(&format!("{prefix}films/{film}/")).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let Some(b) = &self.bucket else {
            return Ok(0);
        };
        publish::delete_prefix(&b.client, &b.path(prefix.trim_end_matches('/'))?).await
    }

    /// The object keys under `prefix` (for tests and `storage migrate`'s report).
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StorageError> {
        let Some(b) = &self.bucket else {
            return Ok(Vec::new());
        };
        publish::list(&b.client, &b.path(prefix.trim_end_matches('/'))?).await
    }
}

impl Bucket {
    fn path(&self, key: &str) -> Result<ObjectPath, StorageError> {
        ObjectPath::parse(key).map_err(|e| StorageError::Bucket {
            key: "storage.prefix",
            message: format!("{key:?} is not a valid object key: {e}"),
        })
    }
}

/// `cinegate/`, `/cinegate`, `cinegate` → `cinegate/`; empty stays empty.
fn normalise_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(presign: Option<Duration>) -> StorageConfig {
        StorageConfig {
            mode: StorageMode::S3,
            endpoint: "http://127.0.0.1:3900".into(),
            region: "garage".into(),
            bucket: "films".into(),
            prefix: "/cg/".into(),
            access_key_id: "GK1".into(),
            secret_access_key: crate::config::Secret("s".repeat(32)),
            path_style: true,
            public_base_url: "https://cdn.example.com/".into(),
            presign_ttl: presign,
            keep_local: false,
        }
    }

    #[test]
    fn keys_and_public_urls_follow_the_local_layout() -> Result<(), StorageError> {
        let storage = Storage::from_config(&s3(None))?;
        let film = Uuid::nil();
        assert_eq!(
            storage.package_key(&film, "pkg-1"),
            format!("cg/films/{film}/pkg-1/")
        );
        assert_eq!(
            storage.segment_source(&film, "pkg-1", true),
            SegmentSource::Public(format!("https://cdn.example.com/cg/films/{film}/pkg-1/"))
        );
        // Not yet confirmed in the bucket: still the origin's.
        assert_eq!(
            storage.segment_source(&film, "pkg-1", false),
            SegmentSource::Origin
        );
        assert!(!storage.keep_local());
        let presigned = Storage::from_config(&s3(Some(Duration::from_secs(3600 * 9))))?;
        assert_eq!(
            presigned.segment_source(&film, "pkg-1", true),
            SegmentSource::Presigned
        );
        assert_eq!(
            Storage::local().segment_source(&film, "pkg-1", true),
            SegmentSource::Origin
        );
        Ok(())
    }

    #[tokio::test]
    async fn presigned_urls_are_signed_for_the_configured_ttl() -> Result<(), StorageError> {
        let storage = Storage::from_config(&s3(Some(Duration::from_secs(3600 * 9))))?;
        let urls = storage
            .presign(&["cg/films/f/pkg/720/00000.ts".into()])
            .await?;
        let url = &urls[0];
        assert!(
            url.starts_with("http://127.0.0.1:3900/films/cg/films/f/pkg/720/00000.ts?"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Expires=32400"), "{url}");
        assert!(url.contains("X-Amz-Signature="), "{url}");
        Ok(())
    }
}
