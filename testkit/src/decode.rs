//! Decoding with the ffmpeg CLI, as a player would: every mapped sample is read, decrypted
//! (HLS AES-128) and decoded to nothing, and the progress report says how much.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// What the ffmpeg CLI decoded.
#[derive(Debug)]
pub struct Decoded {
    pub ok: bool,
    /// Video frames decoded.
    pub frames: u64,
    /// How far the output got, in seconds.
    pub seconds: f64,
    pub stderr: String,
}

/// `ffmpeg INPUT_OPTS -i INPUT -map M… -f null -`, progress read from `-progress pipe:1`.
pub fn decode(input_opts: &[&str], input: impl AsRef<OsStr>, maps: &[&str]) -> Decoded {
    let mut cmd = Command::new("ffmpeg");
    cmd.args(["-nostdin", "-hide_banner", "-v", "error"])
        .args(input_opts)
        .arg("-i")
        .arg(input);
    for m in maps {
        cmd.args(["-map", m]);
    }
    let out = cmd
        .args(["-f", "null", "-progress", "pipe:1", "-nostats", "-"])
        .output()
        .expect("run ffmpeg");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut frames = 0;
    let mut micros = 0i64;
    for line in stdout.lines() {
        if let Some(v) = line.strip_prefix("frame=") {
            frames = v.trim().parse().unwrap_or(frames);
        }
        if let Some(v) = line.strip_prefix("out_time_us=") {
            micros = v.trim().parse().unwrap_or(micros);
        }
    }
    Decoded {
        ok: out.status.success(),
        frames,
        seconds: micros as f64 / 1e6,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// An HLS master playlist at URL (served over HTTP), with its first video and first audio
/// stream, both required.
pub fn ffmpeg_decode(url: &str) -> Decoded {
    decode(&[], url, &["0:v:0", "0:a:0"])
}

/// Plays `DIR/master.m3u8` from disk (`-allowed_extensions ALL`: the keys are files) and
/// returns (decoded video frames of the first program's video, stderr, success).
pub fn play_master(out: &Path) -> (u64, String, bool) {
    let d = decode(
        &["-allowed_extensions", "ALL"],
        out.join("master.m3u8"),
        &["0:v:0", "0:a:0?"],
    );
    (d.frames, d.stderr, d.ok)
}
