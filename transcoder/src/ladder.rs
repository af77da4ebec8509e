//! The bitrate ladder and how it fits a given source. Pure arithmetic, unit-tested here.
//!
//! A rung's number is the picture's *shorter* side, so a portrait phone video keeps its
//! resolution (a 1080×1920 source makes a "1080" rendition of 1080×1920). Rungs above the
//! source's shorter side are dropped: we never upscale.

use serde::{Deserialize, Serialize};

use crate::error::TranscodeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rung {
    /// Shorter side in pixels (the "p" of 720p).
    pub height: u32,
    /// Target video bitrate in bits per second.
    pub bitrate: u32,
}

impl Rung {
    /// The default ladder: 1080p 5000k, 720p 2800k, 480p 1400k, 360p 800k.
    pub fn default_ladder() -> Vec<Rung> {
        vec![
            Rung {
                height: 1080,
                bitrate: 5_000_000,
            },
            Rung {
                height: 720,
                bitrate: 2_800_000,
            },
            Rung {
                height: 480,
                bitrate: 1_400_000,
            },
            Rung {
                height: 360,
                bitrate: 800_000,
            },
        ]
    }

    /// Parses `"1080:5000k,720:2800k"` (bitrates take an optional `k` or `M` suffix).
    pub fn parse_ladder(text: &str) -> Result<Vec<Rung>, TranscodeError> {
        let bad = |why: String| TranscodeError::InvalidOptions(format!("ladder {text:?}: {why}"));
        let mut rungs = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (h, b) = item
                .split_once(':')
                .ok_or_else(|| bad(format!("{item:?} is not HEIGHT:BITRATE")))?;
            let height: u32 = h
                .trim()
                .parse()
                .map_err(|_| bad(format!("{h:?} is not a height in pixels")))?;
            let bitrate = parse_bitrate(b.trim())
                .ok_or_else(|| bad(format!("{b:?} is not a bitrate such as 2800k")))?;
            rungs.push(Rung { height, bitrate });
        }
        validate(&rungs).map_err(bad)?;
        Ok(rungs)
    }
}

/// Checks a ladder: non-empty, even sizes of 64–4320 px, sane bitrates, no duplicates.
pub fn validate(rungs: &[Rung]) -> Result<(), String> {
    if rungs.is_empty() {
        return Err("the ladder needs at least one rung".into());
    }
    for r in rungs {
        if !(64..=4320).contains(&r.height) || r.height % 2 != 0 {
            return Err(format!("rung height {} must be even and 64–4320", r.height));
        }
        if !(50_000..=100_000_000).contains(&r.bitrate) {
            return Err(format!("rung bitrate {} must be 50k–100M", r.bitrate));
        }
    }
    let mut heights: Vec<u32> = rungs.iter().map(|r| r.height).collect();
    heights.sort_unstable();
    heights.dedup();
    if heights.len() != rungs.len() {
        return Err("two rungs have the same height".into());
    }
    Ok(())
}

pub fn parse_bitrate(text: &str) -> Option<u32> {
    let (digits, scale) = match text.as_bytes().last()? {
        b'k' | b'K' => (&text[..text.len() - 1], 1_000),
        b'm' | b'M' => (&text[..text.len() - 1], 1_000_000),
        _ => (text, 1),
    };
    digits.parse::<u32>().ok()?.checked_mul(scale)
}

/// How each rung's encoder spends bits (`transcode.rate_control`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RateControl {
    /// Average bitrate: every rung aims at its ladder bitrate whatever the picture
    /// (`maxrate` 1.1×, `bufsize` 2×). The behaviour before rate control was configurable.
    #[default]
    Abr,
    /// Capped quality: x264 CRF at the rung's quality target, with `maxrate` 1.1× and
    /// `bufsize` 2× the ladder bitrate, which becomes the rung's ceiling. Easy pictures take
    /// fewer bits; hard ones are held to the same peak as `abr`.
    Crf,
    /// Capped quality with each rung's CRF chosen for the film (`package::tune`): a few
    /// sampled seconds are encoded at the ladder bitrate and at two quality targets, and
    /// the rung gets the CRF whose picture matches the ladder bitrate's (SSIM) — the fewest
    /// bytes for today's picture. The ceiling is `crf`'s.
    PerTitle,
}

impl RateControl {
    pub fn parse(text: &str) -> Result<Self, TranscodeError> {
        match text.trim() {
            "abr" => Ok(Self::Abr),
            "crf" => Ok(Self::Crf),
            "per-title" => Ok(Self::PerTitle),
            other => Err(TranscodeError::InvalidOptions(format!(
                "rate control {other:?}: must be \"per-title\", \"crf\" or \"abr\""
            ))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Abr => "abr",
            Self::Crf => "crf",
            Self::PerTitle => "per-title",
        }
    }
}

/// The quality targets (x264 CRF, 0–51, lower is better) of the rungs under
/// `RateControl::Crf`: one value for every rung, and overrides for particular rungs.
#[derive(Debug, Clone, PartialEq)]
pub struct CrfTargets {
    pub default: f32,
    /// `(rung height, crf)`.
    pub per_rung: Vec<(u32, f32)>,
}

/// The default quality targets (docs/BENCHMARKS.md, "Rate control"): CRF 21 at 1080p, 19
/// at 720p and 18 below. The ladder gives the small rungs more bits per pixel (360p at
/// 800k: 0.12 bit/pixel at 30 fps, 1080p at 5000k: 0.08), so a uniform CRF would take
/// them well below the picture `abr` gives them.
pub const DEFAULT_CRF: &str = "18,1080:21,720:19";

impl Default for CrfTargets {
    fn default() -> Self {
        Self {
            default: 18.0,
            per_rung: vec![(1080, 21.0), (720, 19.0)],
        }
    }
}

impl CrfTargets {
    /// Parses `"21"` (every rung), `"21,360:20"` (every rung but one) or `"1080:22"`
    /// (the default targets with one rung changed): a bare number replaces the whole
    /// default table, `HEIGHT:CRF` sets one rung.
    pub fn parse(text: &str) -> Result<Self, TranscodeError> {
        let bad = |why: String| TranscodeError::InvalidOptions(format!("crf {text:?}: {why}"));
        let mut every: Option<f32> = None;
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let value = |v: &str| -> Result<f32, TranscodeError> {
                v.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|c| c.is_finite())
                    .ok_or_else(|| bad(format!("{v:?} is not a number such as 21")))
            };
            match item.split_once(':') {
                None => {
                    if every.is_some() {
                        return Err(bad("two values for every rung".into()));
                    }
                    every = Some(value(item)?);
                }
                Some((h, c)) => {
                    let height: u32 = h
                        .trim()
                        .parse()
                        .map_err(|_| bad(format!("{h:?} is not a rung height")))?;
                    if pairs.iter().any(|&(x, _)| x == height) {
                        return Err(bad(format!("two values for rung {height}")));
                    }
                    pairs.push((height, value(c)?));
                }
            }
        }
        let out = match every {
            Some(default) => Self {
                default,
                per_rung: pairs,
            },
            None if pairs.is_empty() => {
                return Err(bad("give a CRF such as 21, or HEIGHT:CRF pairs".into()))
            }
            None => {
                let mut out = Self::default();
                out.per_rung
                    .retain(|(h, _)| !pairs.iter().any(|(x, _)| x == h));
                out.per_rung.extend(pairs);
                out
            }
        };
        out.validate().map_err(bad)?;
        Ok(out)
    }

    pub fn validate(&self) -> Result<(), String> {
        let ok = |c: f32| (0.0..=51.0).contains(&c);
        if !ok(self.default) || self.per_rung.iter().any(|&(_, c)| !ok(c)) {
            return Err("a CRF must be 0–51".into());
        }
        Ok(())
    }

    /// The target of the rung named by its height.
    pub fn for_rung(&self, height: u32) -> f32 {
        self.per_rung
            .iter()
            .find(|&&(h, _)| h == height)
            .map_or(self.default, |&(_, c)| c)
    }
}

/// One rendition the packager will produce for a particular source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub name: String,
    pub width: u32,
    pub height: u32,
    pub bitrate: u32,
}

/// Fits the ladder to a source whose *display* size (after rotation and sample aspect
/// ratio) is `display_w × display_h`. Highest rendition first.
pub fn plan(display_w: u32, display_h: u32, ladder: &[Rung]) -> Vec<Target> {
    let short = display_w.min(display_h).max(2);
    let mut rungs: Vec<Rung> = ladder
        .iter()
        .copied()
        .filter(|r| r.height <= short)
        .collect();
    if rungs.is_empty() {
        // Smaller than every rung: one rendition at the source's own size, with the
        // smallest rung's bitrate scaled by pixel count.
        let smallest = ladder
            .iter()
            .min_by_key(|r| r.height)
            .copied()
            .unwrap_or(Rung {
                height: 360,
                bitrate: 800_000,
            });
        let short_even = short & !1;
        let ratio = f64::from(short_even) / f64::from(smallest.height);
        let bitrate = (f64::from(smallest.bitrate) * ratio * ratio).max(100_000.0) as u32;
        rungs.push(Rung {
            height: short_even.max(2),
            bitrate,
        });
    }
    rungs.sort_by_key(|r| std::cmp::Reverse(r.height));
    rungs
        .into_iter()
        .map(|r| {
            let (w, h) = scaled_size(display_w, display_h, r.height);
            Target {
                name: r.height.to_string(),
                width: w,
                height: h,
                bitrate: r.bitrate,
            }
        })
        .collect()
}

/// Output size whose shorter side is `short` and whose aspect matches the display size.
fn scaled_size(display_w: u32, display_h: u32, short: u32) -> (u32, u32) {
    let even = |x: f64| ((x / 2.0).round() as u32 * 2).max(2);
    let (w, h) = (f64::from(display_w.max(1)), f64::from(display_h.max(1)));
    if display_w >= display_h {
        (even(w * f64::from(short) / h), even(f64::from(short)))
    } else {
        (even(f64::from(short)), even(h * f64::from(short) / w))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(t: &[Target]) -> Vec<&str> {
        t.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn full_hd_gets_the_whole_ladder() {
        let t = plan(1920, 1080, &Rung::default_ladder());
        assert_eq!(names(&t), ["1080", "720", "480", "360"]);
        assert_eq!((t[0].width, t[0].height), (1920, 1080));
        assert_eq!((t[2].width, t[2].height), (854, 480));
        assert_eq!((t[3].width, t[3].height), (640, 360));
    }

    #[test]
    fn never_upscales() {
        let t = plan(854, 480, &Rung::default_ladder());
        assert_eq!(names(&t), ["480", "360"]);
        let t = plan(1280, 500, &Rung::default_ladder());
        assert_eq!(names(&t), ["480", "360"]);
    }

    #[test]
    fn tiny_source_gets_one_rendition_at_its_own_size() {
        let t = plan(321, 241, &Rung::default_ladder());
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].width, t[0].height, t[0].name.as_str()),
            (320, 240, "240")
        );
        assert!(t[0].bitrate >= 100_000 && t[0].bitrate < 800_000);
    }

    #[test]
    fn portrait_keeps_its_shorter_side() {
        let t = plan(1080, 1920, &Rung::default_ladder());
        assert_eq!((t[0].width, t[0].height), (1080, 1920));
        assert_eq!((t[1].width, t[1].height), (720, 1280));
    }

    #[test]
    fn odd_and_anamorphic_sizes_become_even() {
        for t in plan(1001, 563, &Rung::default_ladder()) {
            assert_eq!(t.width % 2, 0);
            assert_eq!(t.height % 2, 0);
        }
    }

    #[test]
    fn parses_ladders_and_names_bad_parts() {
        let l = Rung::parse_ladder("720:2800k, 360:0.8M").err();
        assert!(l.is_some(), "fractions are not accepted");
        let l = Rung::parse_ladder("720:2800k,360:800000").ok();
        assert_eq!(
            l,
            Some(vec![
                Rung {
                    height: 720,
                    bitrate: 2_800_000
                },
                Rung {
                    height: 360,
                    bitrate: 800_000
                }
            ])
        );
        let e = Rung::parse_ladder("720-2800k").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("HEIGHT:BITRATE")));
        assert!(Rung::parse_ladder("").is_err());
        assert!(Rung::parse_ladder("721:1M").is_err());
        assert!(Rung::parse_ladder("720:1M,720:2M").is_err());
    }

    #[test]
    fn parses_rate_control_and_crf_targets_and_names_bad_parts() {
        assert_eq!(RateControl::parse("crf").ok(), Some(RateControl::Crf));
        assert_eq!(RateControl::parse("abr").ok(), Some(RateControl::Abr));
        assert_eq!(
            RateControl::parse("per-title").ok(),
            Some(RateControl::PerTitle)
        );
        assert_eq!(
            serde_json::to_string(&RateControl::PerTitle)
                .ok()
                .as_deref(),
            Some("\"per-title\"")
        );
        assert_eq!(RateControl::default(), RateControl::Abr);
        let e = RateControl::parse("cbr").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("\"crf\" or \"abr\"")));

        let t = CrfTargets::parse("23").ok();
        assert_eq!(t.as_ref().map(|t| t.for_rung(720)), Some(23.0));
        let t = CrfTargets::parse("22, 360:20.5").ok();
        assert_eq!(t.as_ref().map(|t| t.for_rung(1080)), Some(22.0));
        assert_eq!(t.as_ref().map(|t| t.for_rung(360)), Some(20.5));
        let t = CrfTargets::parse("1080:24").ok();
        assert_eq!(t.as_ref().map(|t| t.for_rung(720)), Some(19.0));
        assert_eq!(t.as_ref().map(|t| t.for_rung(1080)), Some(24.0));
        assert_eq!(t.as_ref().map(|t| t.for_rung(240)), Some(18.0));
        let d = CrfTargets::default();
        assert_eq!(CrfTargets::parse(DEFAULT_CRF).ok().as_ref(), Some(&d));
        let by_height = [1080, 720, 480, 360, 240].map(|h| d.for_rung(h));
        assert_eq!(by_height, [21.0, 19.0, 18.0, 18.0, 18.0]);
        for bad in [
            "",
            "52",
            "-1",
            "x",
            "20,21",
            "720:20,720:21",
            "720p:20",
            "nan",
        ] {
            assert!(CrfTargets::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
