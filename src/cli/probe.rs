//! `cinegate probe INPUT [--json]`.

use std::path::PathBuf;

use clap::Args;
use transcoder::{MediaInfo, StreamKind};

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// The file to inspect.
    pub input: PathBuf,
    /// Print machine-readable JSON instead of a summary.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ProbeArgs) -> anyhow::Result<()> {
    let info = transcoder::probe(&args.input)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", summary(&info));
    }
    Ok(())
}

fn summary(info: &MediaInfo) -> String {
    let mut out = format!(
        "container: {}\nduration:  {:.3} s\n",
        info.container, info.duration
    );
    if let Some(rate) = info.bit_rate {
        out.push_str(&format!("bitrate:   {} kb/s\n", rate / 1000));
    }
    for s in &info.streams {
        let detail = match s.kind {
            StreamKind::Video | StreamKind::Picture => format!(
                "{}x{} (display {}x{}), {}, {} fps, rotation {}°",
                s.width.unwrap_or(0),
                s.height.unwrap_or(0),
                s.display_width.unwrap_or(0),
                s.display_height.unwrap_or(0),
                s.pixel_format.as_deref().unwrap_or("?"),
                s.frame_rate.map_or("?".into(), |f| format!("{f:.3}")),
                s.rotation.unwrap_or(0)
            ),
            StreamKind::Audio => format!(
                "{} Hz, {} channels",
                s.sample_rate.unwrap_or(0),
                s.channels.unwrap_or(0)
            ),
            _ => String::new(),
        };
        out.push_str(&format!(
            "stream {}: {:?} {} {}\n",
            s.index, s.kind, s.codec, detail
        ));
    }
    out
}
