//! HLS playlists rendered from a manifest with `m3u8-rs`. URIs are relative to the
//! playlist: the master names `720/index.m3u8`, a media playlist names `00012.ts` and
//! `../keys/12.key`, so a player resolves everything under whatever prefix (a playback
//! token, a directory) the master was fetched from.

use m3u8_rs::{
    ClosedCaptionGroupId, Key, KeyMethod, MasterPlaylist, MediaPlaylist, MediaPlaylistType,
    MediaSegment, Resolution, VariantStream,
};

use crate::manifest::Manifest;
use crate::secret::segment_iv_hex;

/// The variant players should start on: 720p if present, else the nearest below, so a
/// phone on a cold start neither stalls on 1080p nor looks poor on 360p. `None` for a
/// manifest without renditions.
fn start_variant(manifest: &Manifest) -> Option<usize> {
    let renditions = &manifest.renditions;
    renditions
        .iter()
        .position(|r| r.width.min(r.height) <= 720)
        .or_else(|| (!renditions.is_empty()).then_some(0))
}

/// The master playlist. A manifest without renditions (never written by the packager, but
/// `manifest.json` is a file on disk) gives one with no variants rather than a panic.
pub fn master(manifest: &Manifest) -> String {
    let mut order: Vec<usize> = (0..manifest.renditions.len()).collect();
    if let Some(first) = start_variant(manifest) {
        order.retain(|&i| i != first);
        order.insert(0, first);
    }
    let variants = order
        .into_iter()
        .map(|i| {
            let r = &manifest.renditions[i];
            VariantStream {
                uri: format!("{}/index.m3u8", r.name),
                bandwidth: r.bandwidth,
                average_bandwidth: Some(r.average_bandwidth),
                codecs: Some(r.codecs.clone()),
                resolution: Some(Resolution {
                    width: u64::from(r.width),
                    height: u64::from(r.height),
                }),
                frame_rate: r.frame_rate.map(|f| (f * 1000.0).round() / 1000.0),
                // No CEA-608/708 captions are carried; saying so explicitly (as Apple's
                // authoring spec asks) stops players from looking for them in the video.
                closed_captions: Some(ClosedCaptionGroupId::None),
                ..Default::default()
            }
        })
        .collect();
    let playlist = MasterPlaylist {
        version: Some(3),
        independent_segments: true,
        variants,
        ..Default::default()
    };
    render(|w| playlist.write_to(w))
}

/// The media playlist of `rendition`, listing the first `limit` segments (all when
/// `None`). Returns `None` for an unknown rendition.
pub fn media(manifest: &Manifest, rendition: &str, limit: Option<usize>) -> Option<String> {
    media_with(manifest, rendition, limit, &|i| format!("{i:05}.ts"))
}

/// `media` with each segment's URI from `segment_uri(index)`: an absolute URL where the
/// segments live somewhere else than the playlist (an object store, a CDN). Key URIs stay
/// relative to the playlist.
pub fn media_with(
    manifest: &Manifest,
    rendition: &str,
    limit: Option<usize>,
    segment_uri: &dyn Fn(usize) -> String,
) -> Option<String> {
    manifest.rendition(rendition)?;
    let count = limit.map_or(manifest.segments.len(), |l| l.min(manifest.segments.len()));
    let segments: Vec<MediaSegment> = manifest.segments[..count]
        .iter()
        .enumerate()
        .map(|(i, &duration)| MediaSegment {
            uri: segment_uri(i),
            duration: duration as f32,
            key: Some(Key {
                method: KeyMethod::AES128,
                uri: Some(format!("../keys/{i}.key")),
                iv: Some(segment_iv_hex(i as u64)),
                keyformat: None,
                keyformatversions: None,
            }),
            ..Default::default()
        })
        .collect();
    let longest = manifest.segments[..count]
        .iter()
        .copied()
        .fold(0.0, f64::max);
    let playlist = MediaPlaylist {
        version: Some(3),
        target_duration: longest.round().max(1.0) as u64,
        media_sequence: 0,
        segments,
        end_list: true,
        playlist_type: Some(MediaPlaylistType::Vod),
        independent_segments: true,
        ..Default::default()
    };
    Some(render(|w| playlist.write_to(w)))
}

fn render(write: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> String {
    let mut out = Vec::new();
    // Writing into a Vec cannot fail, and m3u8-rs writes UTF-8.
    let _ = write(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Rendition;
    use crate::probe::MediaInfo;

    fn manifest() -> Manifest {
        let rendition = |name: &str, w, h| Rendition {
            name: name.into(),
            width: w,
            height: h,
            video_bitrate: 1,
            bandwidth: 2_000_000,
            average_bandwidth: 1_500_000,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: Some(29.97),
            crf: None,
            quality: None,
        };
        Manifest {
            version: 1,
            duration: 15.5,
            segment_target: 6.0,
            rate_control: Default::default(),
            segments: vec![6.0, 6.0, 3.5],
            has_audio: true,
            poster: "poster.jpg".into(),
            renditions: vec![rendition("1080", 1920, 1080), rendition("720", 1280, 720)],
            source: MediaInfo {
                container: "mp4".into(),
                duration: 15.5,
                bit_rate: None,
                streams: vec![],
            },
        }
    }

    #[test]
    fn media_playlist_lists_keys_with_explicit_ivs() {
        let text = media(&manifest(), "720", None).unwrap_or_default();
        assert!(text.contains("#EXT-X-TARGETDURATION:6"));
        assert!(text.contains("#EXT-X-PLAYLIST-TYPE:VOD"));
        assert!(text.contains(
            "#EXT-X-KEY:METHOD=AES-128,URI=\"../keys/2.key\",IV=0x00000000000000000000000000000002"
        ));
        assert!(text.contains("00002.ts"));
        assert!(text.trim_end().ends_with("#EXT-X-ENDLIST"));
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes());
        assert!(parsed.is_ok_and(|p| p.segments.len() == 3));
    }

    #[test]
    fn preview_is_cut_and_still_ends() {
        let text = media(&manifest(), "720", Some(1)).unwrap_or_default();
        assert!(text.contains("00000.ts"));
        assert!(!text.contains("00001.ts"));
        assert!(text.contains("#EXT-X-ENDLIST"));
        assert!(media(&manifest(), "999", None).is_none());
    }

    #[test]
    fn master_starts_at_720_and_lists_all() {
        let text = master(&manifest());
        let first = text.find("720/index.m3u8");
        let second = text.find("1080/index.m3u8");
        assert!(first.is_some() && second.is_some() && first < second);
        assert!(text.contains("AVERAGE-BANDWIDTH=1500000"));
        assert!(text.contains("RESOLUTION=1280x720"));
        assert!(text.contains("#EXT-X-INDEPENDENT-SEGMENTS"));
        assert_eq!(text.matches("CLOSED-CAPTIONS=NONE").count(), 2);
    }
}
