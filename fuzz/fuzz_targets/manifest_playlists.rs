//! The package manifest reader and the playlists rendered from it (what a film's first
//! playback loads): any `manifest.json` text either is refused or renders, without a panic,
//! a master and every rendition's full and preview playlists; for a well-formed package the
//! playlists read back (with m3u8-rs, an independent reader) to the segments they list.
#![no_main]

use std::path::Path;

use cinegate::stream::playlists::FilmPlayback;
use libfuzzer_sys::fuzz_target;
use transcoder::{FilmSecret, Manifest};

/// What the packager writes: plain rung names and codecs, finite numbers.
fn well_formed(m: &Manifest) -> bool {
    let plain = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b',' || b == b'-')
    };
    m.segments
        .iter()
        .all(|d| d.is_finite() && (0.0..100_000.0).contains(d))
        && m.renditions.iter().all(|r| {
            plain(&r.name)
                && !r.name.contains(',')
                && plain(&r.codecs)
                && r.frame_rate.is_none_or(|f| f.is_finite() && f.abs() < 1e9)
        })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::from_json(text) else {
        return;
    };
    let count = manifest.segment_count();
    let check = well_formed(&manifest);
    for fraction in [0.0, 0.1, 1.0] {
        let playback = FilmPlayback::from_manifest(
            manifest.clone(),
            Path::new("films/f/p"),
            FilmSecret::from_bytes([7; 32]),
            fraction,
        );
        assert!(playback.preview <= count);
        assert_eq!(playback.preview == 0, count == 0);
        for r in &manifest.renditions {
            let full = playback.media(&r.name, true);
            let preview = playback.media(&r.name, false);
            assert!(full.is_some() && preview.is_some(), "{:?}", r.name);
            if check {
                for (body, listed) in [(full, count), (preview, playback.preview)] {
                    let body = body.unwrap_or_else(|| unreachable!());
                    let read = m3u8_rs::parse_media_playlist_res(&body);
                    assert!(
                        read.as_ref()
                            .is_ok_and(|p| p.segments.len() == listed && p.end_list),
                        "{}",
                        String::from_utf8_lossy(&body)
                    );
                }
            }
        }
        if check {
            let read = m3u8_rs::parse_master_playlist_res(&playback.master);
            assert!(
                read.as_ref()
                    .is_ok_and(|p| p.variants.len() == manifest.renditions.len()),
                "{}",
                String::from_utf8_lossy(&playback.master)
            );
        }
    }
});
