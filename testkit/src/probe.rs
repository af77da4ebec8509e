//! What ffprobe says about a file (or an HLS URL): the judge of media, independent of the
//! code under test.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::process::run_ok;

/// `ffprobe -v error -of json ARGS TARGET`, parsed. TARGET is a file or a URL.
pub fn ffprobe_json(target: impl AsRef<OsStr>, args: &[&str]) -> Value {
    let out = run_ok(
        Command::new("ffprobe")
            .args(["-v", "error", "-of", "json"])
            .args(args)
            .arg(target),
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe printed JSON")
}
/// A JSON number that ffprobe may print as a string ("6.000000").
pub fn num(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

pub fn streams(path: &Path) -> Vec<Value> {
    let v = ffprobe_json(path, &["-show_streams"]);
    v["streams"].as_array().cloned().unwrap_or_default()
}

pub fn first_stream_of(path: &Path, kind: &str) -> Option<Value> {
    streams(path)
        .into_iter()
        .find(|s| s["codec_type"].as_str() == Some(kind))
}

/// `format.duration` as ffprobe reports it, of a file or a URL (a playlist is probed as a
/// player opens it).
pub fn format_duration(target: impl AsRef<OsStr>) -> f64 {
    let target = target.as_ref();
    let v = ffprobe_json(target, &["-show_entries", "format=duration"]);
    num(&v["format"]["duration"])
        .unwrap_or_else(|| panic!("no duration for {}", target.to_string_lossy()))
}

/// Rotation (degrees) of the display matrix of the first video stream, if any.
pub fn display_rotation(path: &Path) -> Option<f64> {
    let v = ffprobe_json(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream_side_data",
        ],
    );
    v["streams"][0]["side_data_list"]
        .as_array()?
        .iter()
        .find(|d| d["side_data_type"].as_str() == Some("Display Matrix"))
        .and_then(|d| num(&d["rotation"]))
}

/// Presentation times of the video packets of a file, in file order (decode order).
pub fn video_packets(path: &Path) -> Vec<(f64, Option<f64>, String)> {
    let v = ffprobe_json(
        path,
        &[
            "-select_streams",
            "v:0",
            "-show_entries",
            "packet=pts_time,duration_time,flags",
        ],
    );
    v["packets"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|p| {
            Some((
                num(&p["pts_time"])?,
                num(&p["duration_time"]).filter(|d| *d > 0.0),
                p["flags"].as_str().unwrap_or("").to_string(),
            ))
        })
        .collect()
}
