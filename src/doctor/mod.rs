//! `cinegate doctor`: checks an installation without starting a server, and while one
//! runs. One function per check, each returning a [`Check`]: ok, warn, fail or skipped,
//! with what is wrong and how to fix it. The store is never opened (a running server holds
//! sled's lock; `cinegate serve` checks the store when it starts).

mod net;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::config::Config;

pub use net::{provider_endpoints, Endpoint, Probe};

/// How a check came out. Only `Fail` makes `cinegate doctor` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    /// Not run, with the reason in the message (nothing to compare with, nothing configured).
    Skip,
}

/// One check's outcome: `name` is what was checked (`keys_dir`, `provider smtp`), `fix`
/// what the operator can do about a warning or a failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub message: String,
    pub fix: Option<String>,
}

impl Check {
    fn ok(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(name, Status::Ok, message, None)
    }
    fn skip(name: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(name, Status::Skip, message, None)
    }
    fn warn(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Warn, message, Some(fix.into()))
    }
    fn fail(name: impl Into<String>, message: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::new(name, Status::Fail, message, Some(fix.into()))
    }
    fn new(
        name: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        fix: Option<String>,
    ) -> Self {
        Self {
            name: name.into(),
            status,
            message: message.into(),
            fix,
        }
    }
}

/// The configuration, loaded as `cinegate serve` loads it: the error names the key.
pub fn check_config(path: Option<&Path>) -> (Check, Option<Config>) {
    let shown = path.map_or_else(
        || "built-in defaults (no ./config.toml)".to_string(),
        |p| p.display().to_string(),
    );
    let shown = if path.is_none() && Path::new("config.toml").is_file() {
        "./config.toml".to_string()
    } else {
        shown
    };
    match Config::load(path) {
        Ok(config) => (Check::ok("config", format!("{shown} loads")), Some(config)),
        Err(e) => (
            Check::fail(
                "config",
                format!("{shown}: {e}"),
                "correct that key (every key, with its default, is documented in the shipped \
                 config.toml; /usr/share/doc/cinegate/config.toml.example when packaged)",
            ),
            None,
        ),
    }
}

/// A private directory (`media_dir`, `keys_dir`): it exists owned by the running user with
/// mode 0700, or can be created (cinegate creates it 0700 at start).
pub fn check_private_dir(key: &str, dir: &Path) -> Check {
    let euid = rustix::process::geteuid().as_raw();
    let name = key.to_string();
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => Check::fail(
            name,
            format!("{} is not a directory", dir.display()),
            format!("point {key} at a directory"),
        ),
        Ok(meta) if meta.uid() != euid => Check::fail(
            name,
            format!(
                "{} is owned by uid {}, not by the user running this (uid {euid})",
                dir.display(),
                meta.uid()
            ),
            format!(
                "run doctor as the service user (sudo -u cinegate cinegate doctor …), or \
                 chown -R it to the user cinegate runs as: chown -R USER {}",
                dir.display()
            ),
        ),
        Ok(meta) if meta.permissions().mode() & 0o077 != 0 => Check::fail(
            name,
            format!(
                "{} has mode {:04o}: other users can {} it",
                dir.display(),
                meta.permissions().mode() & 0o7777,
                if meta.permissions().mode() & 0o044 != 0 {
                    "read"
                } else {
                    "enter or write"
                }
            ),
            format!("chmod 700 {}", dir.display()),
        ),
        Ok(_) => Check::ok(
            name,
            format!("{} is private (0700) and ours", dir.display()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let ancestor = nearest_existing(dir);
            match rustix::fs::access(&ancestor, rustix::fs::Access::WRITE_OK) {
                Ok(()) => Check::ok(
                    name,
                    format!(
                        "{} does not exist yet; it is created (0700) at start",
                        dir.display()
                    ),
                ),
                Err(e) => Check::fail(
                    name,
                    format!(
                        "{} does not exist and cannot be created in {}: {e}",
                        dir.display(),
                        ancestor.display()
                    ),
                    format!(
                        "create it for the service user: install -d -m 700 -o USER {}",
                        dir.display()
                    ),
                ),
            }
        }
        Err(e) => Check::fail(
            name,
            format!("{}: {e}", dir.display()),
            "check the path and its parents' permissions",
        ),
    }
}

fn nearest_existing(path: &Path) -> PathBuf {
    let mut at = path;
    loop {
        if at.exists() {
            return at.to_path_buf();
        }
        match at.parent() {
            Some(p) if !p.as_os_str().is_empty() => at = p,
            _ => return PathBuf::from("."),
        }
    }
}

/// Secrets under `keys_dir` (signing keys, film secrets, tokens): files 0600, directories
/// 0700, as cinegate writes them. A looser one was copied or restored by hand.
pub fn check_secrets(keys_dir: &Path) -> Check {
    if !keys_dir.is_dir() {
        return Check::skip("secrets", "keys_dir does not exist yet: no secrets");
    }
    let mut loose = Vec::new();
    let mut files = 0usize;
    let mut stack = vec![keys_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            loose.push(format!("{} (unreadable)", dir.display()));
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(path.clone());
            } else {
                files += 1;
            }
            let mode = meta.permissions().mode() & 0o7777;
            if !meta.file_type().is_symlink() && mode & 0o077 != 0 {
                loose.push(format!("{} ({mode:04o})", path.display()));
            }
        }
    }
    if loose.is_empty() {
        return Check::ok(
            "secrets",
            format!("{files} file(s) under keys_dir, none readable by other users"),
        );
    }
    loose.sort();
    let more = loose.len().saturating_sub(5);
    let mut shown = loose.into_iter().take(5).collect::<Vec<_>>().join(", ");
    if more > 0 {
        shown.push_str(&format!(" and {more} more"));
    }
    Check::fail(
        "secrets",
        format!("readable by other users: {shown}"),
        format!(
            "chmod -R go-rwx {} (files 0600, directories 0700)",
            keys_dir.display()
        ),
    )
}

/// The operator socket: absent (no server running), or a 0600 socket that answers. A
/// socket nobody answers on was left by a crash (the next start replaces it).
pub fn check_operator_socket(config: &Config) -> Check {
    let path = config.control_socket();
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Check::ok(
                "operator socket",
                "none: no server is running on this media_dir",
            )
        }
        Err(e) => {
            return Check::fail(
                "operator socket",
                format!("{}: {e}", path.display()),
                "check the permissions of media_dir",
            )
        }
    };
    if !meta.file_type().is_socket() {
        return Check::fail(
            "operator socket",
            format!("{} is not a socket", path.display()),
            "stop cinegate and remove the file; the server creates the socket at start",
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Check::fail(
            "operator socket",
            format!("{} has mode {mode:04o}", path.display()),
            "restart cinegate (it creates the socket 0600); check nothing changes its mode",
        );
    }
    match std::os::unix::net::UnixStream::connect(&path) {
        Ok(_) => Check::ok(
            "operator socket",
            "a server is running and its socket answers (0600)",
        ),
        Err(e) => Check::warn(
            "operator socket",
            format!("{} is there but nobody answers: {e}", path.display()),
            "a stopped or crashed server left it; the next start replaces it",
        ),
    }
}

/// Free space on media_dir's file system against `disk.min_free_bytes` (below it uploads
/// and packaging are refused) and the largest upload (`upload.max_bytes`) on top.
pub fn check_disk(config: &Config) -> Check {
    let free = match crate::disk::free_bytes(&config.media_dir) {
        Ok(free) => free,
        Err(e) => {
            return Check::fail(
                "disk",
                format!(
                    "cannot measure free space at {}: {e}",
                    config.media_dir.display()
                ),
                "check media_dir",
            )
        }
    };
    let floor = config.disk.min_free_bytes;
    let max = config.upload.max_bytes;
    let shown = format!(
        "{} free on media_dir's file system, floor (disk.min_free_bytes) {}, largest upload \
         (upload.max_bytes) {}",
        human(free),
        human(floor),
        human(max)
    );
    if free < floor {
        Check::fail(
            "disk",
            format!("{shown}: below the floor, uploads and packaging are refused"),
            "free space on that file system (old packages, uploads/), or lower disk.min_free_bytes",
        )
    } else if free - floor < max {
        Check::warn(
            "disk",
            format!("{shown}: the largest upload would not fit above the floor"),
            "free space, or lower upload.max_bytes",
        )
    } else {
        Check::ok("disk", shown)
    }
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The FFmpeg encoders packaging opens (libx264, AAC) in the libraries cinegate links.
pub fn check_encoders() -> Check {
    let missing = transcoder::missing_encoders();
    if missing.is_empty() {
        Check::ok("ffmpeg", "libx264 and aac encoders present")
    } else {
        Check::fail(
            "ffmpeg",
            format!("the linked FFmpeg lacks: {}", missing.join(", ")),
            "install Debian's FFmpeg libraries (libavcodec59 with libx264), not a build without GPL codecs",
        )
    }
}

/// The clock against the `Date` of the first provider that answered over HTTP(S): tokens,
/// webhook signatures and payment callbacks carry times, and a skew over a minute breaks
/// them.
pub fn check_clock(probes: &[Probe], now: jiff::Timestamp) -> Check {
    if probes.is_empty() {
        return Check::skip(
            "clock",
            "no provider configured to compare with; keep NTP (systemd-timesyncd) on",
        );
    }
    let Some((name, date)) = probes
        .iter()
        .find_map(|p| p.date.map(|d| (p.name.as_str(), d)))
    else {
        return Check::skip("clock", "no provider answered with a Date to compare with");
    };
    let skew = (now.as_second() - date.as_second()).abs();
    if skew > 60 {
        Check::fail(
            "clock",
            format!("this machine's clock is {skew} s off {name}'s Date header"),
            "turn NTP on (timedatectl set-ntp true) and check the time zone is not set as UTC offset by hand",
        )
    } else {
        Check::ok("clock", format!("within {skew} s of {name}'s Date header"))
    }
}

/// The reachability checks from the probes: DNS and a connection (TLS for https).
pub fn check_providers(probes: &[Probe]) -> Vec<Check> {
    if probes.is_empty() {
        return vec![Check::skip(
            "providers",
            "none configured (sign-in, payments, SMTP, push, webhooks)",
        )];
    }
    probes
        .iter()
        .map(|p| {
            let name = format!("provider {}", p.name);
            match &p.error {
                None => Check::ok(name, format!("{} answers", p.target)),
                Some(e) => Check::fail(
                    name,
                    format!("{} is unreachable: {e}", p.target),
                    format!(
                        "check {} and that this machine can reach it (DNS, firewall, proxy)",
                        p.key
                    ),
                ),
            }
        })
        .collect()
}

/// `[storage]` on a bucket: what `cinegate serve` checks at start (list, write a probe
/// object, read it back, delete it), naming the key at fault.
pub fn check_storage(config: &Config) -> Check {
    if config.storage.mode == crate::config::StorageMode::Local {
        return Check::skip("storage", "local: packages are served from media_dir");
    }
    let checked = crate::storage::Storage::from_config(&config.storage).and_then(|storage| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::storage::StorageError::Bucket {
                key: "storage.endpoint",
                message: format!("no runtime for the check: {e}"),
            })?
            .block_on(storage.probe())
    });
    match checked {
        Ok(()) => Check::ok(
            "storage",
            format!(
                "bucket {} at {} answers (list, write, read back, delete)",
                config.storage.bucket, config.storage.endpoint
            ),
        ),
        Err(e) => Check::fail("storage", e.to_string(), format!("check {}", e.key())),
    }
}

/// Every check, in the order printed. Network probes run concurrently, each with
/// `timeout`.
pub fn run(config_path: Option<&Path>, timeout: std::time::Duration) -> Vec<Check> {
    let (config_check, config) = check_config(config_path);
    let mut checks = vec![config_check];
    let Some(config) = config else {
        checks.push(Check::skip(
            "other checks",
            "not run: they need a configuration that loads",
        ));
        return checks;
    };
    checks.push(check_private_dir("media_dir", &config.media_dir));
    checks.push(check_private_dir("keys_dir", &config.keys_dir));
    checks.push(check_secrets(&config.keys_dir));
    checks.push(check_operator_socket(&config));
    checks.push(Check::skip(
        "store",
        "not opened (a running server holds it); `cinegate serve` checks it at start",
    ));
    checks.push(check_disk(&config));
    checks.push(check_encoders());
    checks.push(check_storage(&config));
    let probes = net::probe_all(&provider_endpoints(&config), timeout);
    checks.push(check_clock(&probes, jiff::Timestamp::now()));
    checks.extend(check_providers(&probes));
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_world_readable_dir_and_secret_fail_and_say_how_to_fix() -> std::io::Result<()> {
        let root = tempfile::tempdir()?;
        let keys = root.path().join("keys");
        std::fs::create_dir(&keys)?;
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700))?;
        assert_eq!(check_private_dir("keys_dir", &keys).status, Status::Ok);
        std::fs::write(keys.join("a.secret"), "x")?;
        std::fs::set_permissions(
            keys.join("a.secret"),
            std::fs::Permissions::from_mode(0o644),
        )?;
        let secrets = check_secrets(&keys);
        assert_eq!(secrets.status, Status::Fail);
        assert!(secrets.message.contains("a.secret (0644)"), "{secrets:?}");
        std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755))?;
        let dir = check_private_dir("keys_dir", &keys);
        assert_eq!(dir.status, Status::Fail);
        assert!(dir.fix.is_some_and(|f| f.contains("chmod 700")));
        let missing = check_private_dir("media_dir", &root.path().join("not/yet"));
        assert_eq!(missing.status, Status::Ok, "{missing:?}");
        Ok(())
    }

    #[test]
    fn a_skew_over_a_minute_fails() {
        let probe = |secs| Probe {
            name: "paypal".into(),
            key: "payments.paypal.api_url".into(),
            target: "https://api-m.paypal.com".into(),
            error: None,
            date: Some(jiff::Timestamp::from_second(secs).unwrap_or_default()),
        };
        let now = jiff::Timestamp::from_second(1_000_000).unwrap_or_default();
        assert_eq!(check_clock(&[probe(1_000_030)], now).status, Status::Ok);
        assert_eq!(check_clock(&[probe(1_000_090)], now).status, Status::Fail);
        assert_eq!(check_clock(&[], now).status, Status::Skip);
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1 << 30), "1.0 GiB");
        assert_eq!(human(3 << 19), "1.5 MiB");
    }
}
