//! `cinegate restore FILE`: into the configured (empty or absent) data root and keys
//! directory; the archive is verified whole before anything is written (`backup`).

use std::path::{Path, PathBuf};

use clap::Args;

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive `cinegate backup` wrote.
    pub file: PathBuf,
}

pub fn run(config: Option<&Path>, args: RestoreArgs) -> anyhow::Result<()> {
    let config = super::load_config(config)?;
    super::init_logging("warn");
    // Owner-only, as `prepare_data_root` makes the data root.
    rustix::process::umask(rustix::fs::Mode::RWXG | rustix::fs::Mode::RWXO);
    let restored = crate::backup::restore(&config, &args.file, &mut |step| eprintln!("{step}…"))?;
    println!(
        "restored {} files and {} store records (schema {}, backup of {}) into {} and {}",
        restored.files,
        restored.records,
        restored.schema_version,
        restored.manifest_created_at,
        config.media_dir.display(),
        config.keys_dir.display()
    );
    if !restored.films_without_media.is_empty() {
        println!(
            "this backup was taken --without-media: the segments are not restored, so {} \
             published film(s) were unpublished: {}. Copy each films/{{film}}/ directory back \
             into {} from your media backup, then publish the films again (console or API).",
            restored.films_without_media.len(),
            restored.films_without_media.join(", "),
            config.films_dir().display()
        );
    }
    Ok(())
}
