//! `cinegate package INPUT --out DIR --secret-file FILE [--export-keys]`: the packaging
//! pipeline from the command line, with a progress bar, for operators and for checking a
//! package by hand. Touches no store.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;
use transcoder::{CrfTargets, FilmSecret, PackageOptions, RateControl, Rung};

#[derive(Debug, Args)]
pub struct PackageArgs {
    /// The source film.
    pub input: PathBuf,
    /// The package directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// The film secret (64 hex characters); created with mode 0600 if absent.
    #[arg(long)]
    pub secret_file: PathBuf,
    /// Also write key files and playlists so `ffmpeg -allowed_extensions ALL -i DIR/master.m3u8` plays offline.
    #[arg(long)]
    pub export_keys: bool,
    /// Ladder as HEIGHT:BITRATE pairs.
    #[arg(long, default_value = "1080:5000k,720:2800k,480:1400k,360:800k")]
    pub ladder: String,
    /// libx264 preset.
    #[arg(long, default_value = "veryfast")]
    pub preset: String,
    /// Target segment length in seconds.
    #[arg(long, default_value_t = 6.0)]
    pub segment_seconds: f64,
    /// AAC bitrate (e.g. 128k).
    #[arg(long, default_value = "128k")]
    pub audio_bitrate: String,
    /// Rate control: `abr` (each rung at its ladder bitrate), `crf` (each rung at its
    /// quality target, capped by its ladder bitrate) or `per-title` (`crf` with each rung's
    /// target chosen for the film: the picture `abr` gives, for fewer bytes).
    #[arg(long, default_value = "abr")]
    pub rate_control: String,
    /// Quality targets under `--rate-control crf` (where `per-title` starts): a CRF for every rung and/or HEIGHT:CRF
    /// overrides, e.g. `21` or `21,360:20`.
    #[arg(long, default_value = transcoder::DEFAULT_CRF)]
    pub crf: String,
    /// No progress bar.
    #[arg(long, short)]
    pub quiet: bool,
}

pub fn run(args: PackageArgs) -> anyhow::Result<()> {
    let opts = PackageOptions {
        ladder: Rung::parse_ladder(&args.ladder)?,
        segment_seconds: args.segment_seconds,
        x264_preset: args.preset.clone(),
        audio_bitrate: transcoder_bitrate(&args.audio_bitrate)?,
        rate_control: RateControl::parse(&args.rate_control)?,
        crf: CrfTargets::parse(&args.crf)?,
    };
    opts.validate()?;
    if args.out.exists() {
        anyhow::bail!("the output directory {} already exists", args.out.display());
    }
    let (secret, created) = FilmSecret::load_or_create(&args.secret_file)
        .with_context(|| format!("film secret {}", args.secret_file.display()))?;
    if created {
        eprintln!(
            "created a new film secret in {}",
            args.secret_file.display()
        );
    }

    let cancel = Arc::new(AtomicBool::new(false));
    {
        let cancel = cancel.clone();
        // Ctrl-C stops cleanly: the pipeline removes its partial output.
        let _ = ctrlc::set_handler(move || cancel.store(true, Ordering::Relaxed));
    }
    let bar = super::packaging_bar(!args.quiet && std::io::stderr().is_terminal());
    let mut on_progress = |f: f64| bar.set_position((f * 1000.0) as u64);
    let packaged = transcoder::package(
        &args.input,
        &args.out,
        &opts,
        &secret,
        &mut on_progress,
        &cancel,
    );
    bar.finish_and_clear();
    let packaged = packaged?;
    if args.export_keys {
        transcoder::export_keys(&args.out, &packaged.manifest, &secret)?;
    }

    let m = &packaged.manifest;
    let s = &packaged.stats;
    println!(
        "packaged {} ({:.1} s, {} segments) into {}",
        args.input.display(),
        m.duration,
        m.segment_count(),
        args.out.display()
    );
    println!("rate control: {}", m.rate_control.as_str());
    for r in &m.renditions {
        // Under per-title a rung without a CRF was kept at abr: say so rather than nothing.
        let crf = match (r.crf, r.quality.is_some()) {
            (Some(c), _) => format!("  crf {c}"),
            (None, true) => "  abr (no CRF paid)".to_string(),
            (None, false) => String::new(),
        };
        println!(
            "  {:>5}: {}x{}  avg {} kb/s  peak {} kb/s  {}{crf}",
            r.name,
            r.width,
            r.height,
            r.average_bandwidth / 1000,
            r.bandwidth / 1000,
            r.codecs
        );
    }
    println!(
        "time: {:.2} s wall ({:.2}x realtime); encryption {:.3} s ({:.2}% of packaging)",
        s.wall_seconds,
        m.duration / s.wall_seconds.max(1e-9),
        s.encrypt_seconds,
        100.0 * s.encrypt_seconds / s.wall_seconds.max(1e-9)
    );
    if args.export_keys {
        println!(
            "play offline: ffmpeg -allowed_extensions ALL -i {}/master.m3u8 -f null -",
            args.out.display()
        );
    }
    Ok(())
}

fn transcoder_bitrate(text: &str) -> anyhow::Result<u32> {
    transcoder::parse_bitrate(text)
        .with_context(|| format!("{text:?} is not a bitrate such as 128k"))
}
