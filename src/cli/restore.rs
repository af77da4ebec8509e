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
            "this backup was taken --without-media: the segments of {} film(s) are not restored \
             and these films will not play until their films/{{film}}/ directories are copied back \
             into {} from your media backup: {}",
            restored.films_without_media.len(),
            config.films_dir().display(),
            restored.films_without_media.join(", ")
        );
    }
    Ok(())
}
