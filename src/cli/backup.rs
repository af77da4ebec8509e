//! `cinegate backup --out FILE [--without-media]`: the store snapshot from the running
//! server over the operator socket (or from the store directly when none runs), then the
//! archive written here, as the operator's user (`backup`).

use std::path::{Path, PathBuf};

use clap::Args;

use crate::ops::{self, Request};
use crate::store::snapshot::SnapshotStats;

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the archive (tar + gzip; mode 0600: it holds the keys).
    #[arg(long)]
    pub out: PathBuf,
    /// Leave the segments out (for media that has its own backups); manifests, posters,
    /// keys and the store are still included.
    #[arg(long)]
    pub without_media: bool,
}

/// Removes the snapshot file however the backup ends.
struct Remove(PathBuf);

impl Drop for Remove {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

pub fn run(config: Option<&Path>, args: BackupArgs) -> anyhow::Result<()> {
    let config = super::load_config(config)?;
    super::init_logging("warn");
    let (path, stats): (PathBuf, SnapshotStats) =
        match crate::control::send(&config.control_socket(), &Request::StoreSnapshot)? {
            Some(r) if r.ok => (
                serde_json::from_value(r.data["path"].clone())?,
                serde_json::from_value(r.data["stats"].clone())?,
            ),
            Some(r) => anyhow::bail!("the server could not snapshot the store: {}", r.message),
            None => {
                if !config.store_dir().exists() {
                    anyhow::bail!(
                        "there is no store at {} (is media_dir right?)",
                        config.store_dir().display()
                    );
                }
                let store = crate::store::Store::open(&config.store_dir())?;
                let r = ops::store_snapshot(&config, &store).map_err(|e| anyhow::anyhow!("{e}"))?;
                (
                    serde_json::from_value(r.data["path"].clone())?,
                    serde_json::from_value(r.data["stats"].clone())?,
                )
            }
        };
    let _remove = Remove(path.clone());
    eprintln!(
        "store snapshot: {} records in {} trees (schema {}); writes paused {} ms",
        stats.records,
        stats.trees,
        stats.schema,
        stats.writes_paused.as_millis()
    );
    let with_media = !args.without_media;
    let total = crate::backup::planned_bytes(&config, &path, with_media)?;
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let written = crate::backup::write_archive(
        &config,
        &path,
        stats.schema,
        with_media,
        &args.out,
        &mut |done| bar.set_position(done),
    );
    bar.finish_and_clear();
    let written = written?;
    println!(
        "backup written to {}: {} files, {} bytes read, {} bytes archived{}",
        args.out.display(),
        written.entries,
        written.bytes_in,
        written.bytes_out,
        if with_media {
            ""
        } else {
            " (without media: no segments)"
        }
    );
    Ok(())
}
