//! The `/hls/` path classifier: what a path after `/hls/` names, and the strict segment and
//! key file names. A route names exactly the path it came from, with non-empty parts.
#![no_main]

use cinegate::api::hls::{key_index, route, segment_index, Route};
use libfuzzer_sys::fuzz_target;

fn part(p: &str) -> &str {
    assert!(!p.is_empty() && !p.contains('/'), "{p:?}");
    p
}

fuzz_target!(|data: &[u8]| {
    let Ok(rest) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(found) = route(rest) {
        let rebuilt = match found {
            Route::Master { token } => format!("{}/master.m3u8", part(token)),
            Route::Key { token, name } => format!("{}/keys/{}", part(token), part(name)),
            Route::Media { token, rendition } => {
                format!("{}/{}/index.m3u8", part(token), part(rendition))
            }
            Route::Segment {
                token,
                rendition,
                name,
            } => format!("{}/{}/{}", part(token), part(rendition), part(name)),
        };
        assert_eq!(rebuilt, rest);
    }
    for name in rest.split('/') {
        if let Some(i) = segment_index(name) {
            // Five digits exactly, so the name is its own canonical form.
            assert_eq!(format!("{i:05}.ts"), name);
        }
        if let Some(i) = key_index(name) {
            assert!(i < 1_000_000, "{i}");
            let digits = name.strip_suffix(".key");
            assert!(digits.is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit())));
            assert_eq!(digits.and_then(|d| d.parse().ok()), Some(i));
        }
    }
});
