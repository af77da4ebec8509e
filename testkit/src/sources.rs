//! Source files generated with the ffmpeg CLI (lavfi test patterns and tones) and cached
//! under the build's `target/tmp`, so a test run pays for each at most once.
//!
//! A file is named by its name and a hash of the ffmpeg arguments (changed arguments make a
//! new file), written under a temporary name and renamed, one writer per name at a time.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use crate::process::run_ok;

/// `-c:v libx264 -preset ultrafast -pix_fmt yuv420p`.
pub const X264: &[&str] = &[
    "-c:v",
    "libx264",
    "-preset",
    "ultrafast",
    "-pix_fmt",
    "yuv420p",
];

/// Two lavfi inputs: the video PATTERN (`testsrc2`, `testsrc`, …) at SIZE and RATE, and a
/// TONE Hz sine at SAMPLE_RATE, both SECS long.
pub fn lavfi_av(
    pattern: &str,
    size: &str,
    rate: u32,
    secs: u32,
    tone: u32,
    sample_rate: u32,
) -> Vec<String> {
    vec![
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("{pattern}=size={size}:rate={rate}:duration={secs}"),
        "-f".into(),
        "lavfi".into(),
        "-i".into(),
        format!("sine=frequency={tone}:sample_rate={sample_rate}:duration={secs}"),
    ]
}

/// BASE followed by MORE.
pub fn with(mut base: Vec<String>, more: &[&str]) -> Vec<String> {
    base.extend(more.iter().map(|s| s.to_string()));
    base
}

/// The transcoder tests' usual input: `testsrc2` and a 440 Hz tone.
fn lavfi_440(size: &str, rate: u32, secs: u32, sample_rate: u32) -> Vec<String> {
    lavfi_av("testsrc2", size, rate, secs, 440, sample_rate)
}

fn name_lock(name: &str) -> Arc<Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    map.entry(name.to_string()).or_default().clone()
}

/// A text file with a media-looking name, in DIR.
pub fn src_text(dir: &Path) -> PathBuf {
    let p = dir.join("not-a-film.mp4");
    std::fs::write(&p, "This is a text file, not a film.\n".repeat(200)).expect("write text");
    p
}

/// The cache of generated sources.
pub struct Sources {
    dir: PathBuf,
}

impl Sources {
    /// The cache under `target_tmpdir`: the calling test crate's `env!("CARGO_TARGET_TMPDIR")`
    /// (cargo sets it only while building integration tests, so a library cannot read it).
    pub fn new(target_tmpdir: &str) -> Sources {
        let dir = Path::new(target_tmpdir).join("cinegate-test-sources");
        std::fs::create_dir_all(&dir).expect("create source cache dir");
        Sources { dir }
    }

    /// Generates (once, then cached) `ffmpeg -y ARGS <file>.EXT` and returns the file.
    /// Files the command reads are named in ARGS, so their paths are part of the cache key.
    pub fn generated(&self, name: &str, ext: &str, args: &[&str]) -> PathBuf {
        let mut h = DefaultHasher::new();
        args.hash(&mut h);
        let path = self.dir.join(format!("{name}-{:016x}.{ext}", h.finish()));
        let lock = name_lock(name);
        let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            let tmp = self
                .dir
                .join(format!("{name}.tmp{}.{ext}", std::process::id()));
            run_ok(
                Command::new("ffmpeg")
                    .args(["-nostdin", "-hide_banner", "-v", "error", "-y"])
                    .args(args)
                    .arg(&tmp),
            );
            std::fs::rename(&tmp, &path).expect("rename generated source");
        }
        path
    }

    /// [`Sources::generated`] with owned arguments.
    pub fn gen(&self, name: &str, ext: &str, args: Vec<String>) -> PathBuf {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        self.generated(name, ext, &a)
    }

    /// The first half (in bytes) of FULL, cached as NAME.
    fn half_of(&self, full: &Path, name: &str) -> PathBuf {
        let bytes = std::fs::read(full).expect("read full file");
        let stem = full.file_stem().unwrap().to_string_lossy().into_owned();
        let path = self.dir.join(format!("{stem}-{name}"));
        let lock = name_lock(name);
        let _g = lock.lock().unwrap_or_else(|e| e.into_inner());
        if !path.exists() {
            let tmp = self.dir.join(format!("{name}.tmp{}", std::process::id()));
            std::fs::write(&tmp, &bytes[..bytes.len() / 2]).expect("write half");
            std::fs::rename(&tmp, &path).expect("rename half");
        }
        path
    }

    /// 13 s, 320x240, 25 fps H.264 + stereo 48 kHz AAC, mp4.
    pub fn h264(&self) -> PathBuf {
        let a = with(lavfi_440("320x240", 25, 13, 48000), X264);
        self.gen(
            "h264",
            "mp4",
            with(a, &["-c:a", "aac", "-b:a", "96k", "-ac", "2"]),
        )
    }

    /// 8 s, 854x480 (16:9, square pixels), 25 fps H.264 + AAC, mp4.
    pub fn h264_480p(&self) -> PathBuf {
        let a = with(lavfi_440("854x480", 25, 8, 48000), X264);
        self.gen("h480", "mp4", with(a, &["-c:a", "aac", "-b:a", "96k"]))
    }

    /// 8 s, 320x240 HEVC (libx265, 8-bit) + AAC, mp4.
    pub fn hevc(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 8, 48000),
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
                "-pix_fmt",
                "yuv420p",
                "-tag:v",
                "hvc1",
            ],
        );
        self.gen("hevc", "mp4", with(a, &["-c:a", "aac", "-b:a", "96k"]))
    }

    /// 8 s, 320x240 HEVC Main10 (yuv420p10le) + AAC, mkv.
    pub fn hevc10(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 8, 48000),
            &[
                "-c:v",
                "libx265",
                "-preset",
                "ultrafast",
                "-x265-params",
                "log-level=error",
                "-pix_fmt",
                "yuv420p10le",
            ],
        );
        self.gen("hevc10", "mkv", with(a, &["-c:a", "aac", "-b:a", "96k"]))
    }

    /// 8 s, 320x240 VP9 + Opus, webm.
    pub fn vp9(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 8, 48000),
            &[
                "-c:v",
                "libvpx-vp9",
                "-deadline",
                "realtime",
                "-cpu-used",
                "8",
                "-b:v",
                "300k",
                "-pix_fmt",
                "yuv420p",
            ],
        );
        self.gen("vp9", "webm", with(a, &["-c:a", "libopus", "-b:a", "64k"]))
    }

    /// 8 s, 320x240 AV1 (libsvtav1 if present, else libaom-av1) + Opus, mkv.
    pub fn av1(&self) -> PathBuf {
        let encoders = run_ok(Command::new("ffmpeg").args(["-hide_banner", "-encoders"]));
        let svt = String::from_utf8_lossy(&encoders.stdout).contains("libsvtav1");
        let codec: &[&str] = if svt {
            &["-c:v", "libsvtav1", "-preset", "12"]
        } else {
            &[
                "-c:v",
                "libaom-av1",
                "-cpu-used",
                "8",
                "-row-mt",
                "1",
                "-b:v",
                "300k",
            ]
        };
        let a = with(lavfi_440("320x240", 25, 8, 48000), codec);
        self.gen(
            "av1",
            "mkv",
            with(
                a,
                &["-pix_fmt", "yuv420p", "-c:a", "libopus", "-b:a", "64k"],
            ),
        )
    }

    /// 13 s, 320x240 H.264 with variable frame rate: 30 fps for 3 s, then 10 fps. AAC, mp4.
    pub fn vfr(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 30, 13, 48000),
            &[
                "-vf",
                "select='lt(n\\,90)+not(mod(n\\,3))'",
                "-fps_mode",
                "vfr",
            ],
        );
        let a = with(a, X264);
        self.gen("vfr", "mp4", with(a, &["-c:a", "aac", "-b:a", "96k"]))
    }

    /// 8 s, 321x241 (odd, square pixels) H.264 High 4:4:4 + AAC, mp4.
    pub fn odd(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 8, 48000),
            &[
                "-vf",
                "format=yuv444p,scale=321:241,setsar=1",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv444p",
            ],
        );
        self.gen("odd", "mp4", with(a, &["-c:a", "aac", "-b:a", "96k"]))
    }

    /// 8 s, 320x240 H.264, no audio track, mp4.
    pub fn no_audio(&self) -> PathBuf {
        let a = vec![
            "-f".to_string(),
            "lavfi".into(),
            "-i".into(),
            "testsrc2=size=320x240:rate=25:duration=8".into(),
        ];
        self.gen("noaudio", "mp4", with(with(a, X264), &["-an"]))
    }

    /// 8 s, 320x240 H.264 + mono 44.1 kHz AAC, mp4.
    pub fn mono_44k(&self) -> PathBuf {
        let a = with(lavfi_440("320x240", 25, 8, 44100), X264);
        self.gen(
            "mono44",
            "mp4",
            with(
                a,
                &["-c:a", "aac", "-b:a", "64k", "-ac", "1", "-ar", "44100"],
            ),
        )
    }

    /// 8 s, 320x240 H.264 + 5.1 22.05 kHz AAC, mkv.
    pub fn surround_22k(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 8, 22050),
            &[
                "-af",
                "pan=5.1|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0",
                "-c:a",
                "aac",
                "-b:a",
                "128k",
                "-ar",
                "22050",
            ],
        );
        self.gen("surround22", "mkv", with(a, X264))
    }

    /// 8 s, coded 320x240 H.264 + AAC in mp4 whose display matrix rotates it by 90°
    /// (so it displays as 240x320 portrait).
    pub fn rotated(&self) -> PathBuf {
        let base = with(lavfi_440("320x240", 25, 8, 48000), X264);
        let base = self.gen(
            "rotbase",
            "mp4",
            with(base, &["-c:a", "aac", "-b:a", "96k"]),
        );
        let b = base.to_string_lossy().into_owned();
        self.generated(
            "rotated",
            "mp4",
            &["-i", &b, "-c", "copy", "-metadata:s:v:0", "rotate=90"],
        )
    }

    /// 10 s of H.264 (2 s closed GOPs, no B-frames) + AAC in MPEG-TS, cut at 1 s with stream
    /// copy keeping the leading non-keyframes: the first video packet is a P-frame and the
    /// first second of video cannot be decoded. About 9 s long.
    pub fn nonkey_start(&self) -> PathBuf {
        let a = with(
            lavfi_440("320x240", 25, 10, 48000),
            &[
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-pix_fmt",
                "yuv420p",
                "-x264-params",
                "keyint=50:min-keyint=50:scenecut=0",
                "-bf",
                "0",
                "-c:a",
                "aac",
                "-b:a",
                "96k",
            ],
        );
        let gop = self.gen("gop", "ts", a);
        let g = gop.to_string_lossy().into_owned();
        self.generated(
            "nonkey",
            "ts",
            &["-i", &g, "-ss", "1", "-c", "copy", "-copyinkf"],
        )
    }

    /// 4 s of AAC only, m4a.
    pub fn audio_only(&self) -> PathBuf {
        self.generated(
            "audioonly",
            "m4a",
            &[
                "-f",
                "lavfi",
                "-i",
                "sine=frequency=440:sample_rate=48000:duration=4",
                "-c:a",
                "aac",
                "-b:a",
                "64k",
            ],
        )
    }

    /// An mp4 with an H.264 video stream (320x240, SPS/PPS present) and no samples at all:
    /// fragmented with an empty moov and no fragment. ffprobe reports the stream with
    /// duration 0.
    pub fn zero_duration(&self) -> PathBuf {
        let base = with(lavfi_440("320x240", 25, 2, 48000), X264);
        let base = self.gen("zbase", "mp4", with(base, &["-an"]));
        let b = base.to_string_lossy().into_owned();
        self.generated(
            "zero",
            "mp4",
            &[
                "-i",
                &b,
                "-c",
                "copy",
                "-frames:v",
                "0",
                "-movflags",
                "frag_keyframe+empty_moov",
            ],
        )
    }

    /// 8 s H.264 + AAC, mp4 with +faststart (moov first), then cut to half its size.
    pub fn truncated_mp4(&self) -> PathBuf {
        let a = with(lavfi_440("320x240", 25, 8, 48000), X264);
        let full = self.gen(
            "faststart",
            "mp4",
            with(
                a,
                &["-c:a", "aac", "-b:a", "96k", "-movflags", "+faststart"],
            ),
        );
        self.half_of(&full, "half-faststart.mp4")
    }

    /// 8 s H.264 + AAC, mkv, cut to half its size.
    pub fn truncated_mkv(&self) -> PathBuf {
        let a = with(lavfi_440("320x240", 25, 8, 48000), X264);
        let full = self.gen("fullmkv", "mkv", with(a, &["-c:a", "aac", "-b:a", "96k"]));
        self.half_of(&full, "half.mkv")
    }
}
