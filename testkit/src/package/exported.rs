//! The playlists and key files `--export-keys` / `export_keys` write beside a package.

use std::path::Path;

use super::read_manifest;
use crate::keys::{derive_iv, derive_key};
use crate::probe::num;

pub fn check_exported(out: &Path, secret: &[u8], fails: &mut Vec<String>) {
    let manifest = read_manifest(out);
    let seg: Vec<f64> = manifest["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|v| num(v).unwrap_or(f64::NAN))
        .collect();
    let rends = manifest["renditions"]
        .as_array()
        .expect("renditions")
        .clone();

    let master = match std::fs::read(out.join("master.m3u8")) {
        Ok(b) => b,
        Err(e) => {
            fails.push(format!("master.m3u8: {e}"));
            return;
        }
    };
    match m3u8_rs::parse_master_playlist_res(&master) {
        Err(e) => fails.push(format!("master.m3u8 does not parse: {e:?}")),
        Ok(mp) => {
            let uris: Vec<String> = mp.variants.iter().map(|v| v.uri.clone()).collect();
            let want: Vec<String> = rends
                .iter()
                .map(|r| format!("{}/index.m3u8", r["name"].as_str().unwrap_or("")))
                .collect();
            if uris != want {
                fails.push(format!("master.m3u8 variants {uris:?}, want {want:?}"));
            }
            for (v, r) in mp.variants.iter().zip(&rends) {
                if Some(v.bandwidth as f64) != num(&r["bandwidth"]) {
                    fails.push(format!(
                        "variant {}: BANDWIDTH {} but manifest {}",
                        v.uri, v.bandwidth, r["bandwidth"]
                    ));
                }
                let res = v.resolution.map(|x| (x.width, x.height));
                let want_res = (
                    r["width"].as_u64().unwrap_or(0),
                    r["height"].as_u64().unwrap_or(0),
                );
                if res != Some(want_res) {
                    fails.push(format!(
                        "variant {}: RESOLUTION {res:?}, want {want_res:?}",
                        v.uri
                    ));
                }
                if v.codecs.as_deref() != r["codecs"].as_str() {
                    fails.push(format!(
                        "variant {}: CODECS {:?}, manifest {}",
                        v.uri, v.codecs, r["codecs"]
                    ));
                }
            }
        }
    }

    for r in &rends {
        let name = r["name"].as_str().unwrap_or("");
        let path = out.join(name).join("index.m3u8");
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                fails.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let mp = match m3u8_rs::parse_media_playlist_res(&bytes) {
            Ok(mp) => mp,
            Err(e) => {
                fails.push(format!("{name}/index.m3u8 does not parse: {e:?}"));
                continue;
            }
        };
        if mp.segments.len() != seg.len() {
            fails.push(format!(
                "{name}/index.m3u8 lists {} segments, manifest {}",
                mp.segments.len(),
                seg.len()
            ));
        }
        if !mp.end_list {
            fails.push(format!("{name}/index.m3u8 has no #EXT-X-ENDLIST"));
        }
        let max_round = seg.iter().map(|d| d.round() as u64).max().unwrap_or(0);
        if mp.target_duration < max_round {
            fails.push(format!(
                "{name}/index.m3u8 TARGETDURATION {} < longest rounded segment {max_round}",
                mp.target_duration
            ));
        }
        for (i, s) in mp.segments.iter().enumerate() {
            let at = format!("{name}/index.m3u8 segment {i}");
            if s.uri != format!("{i:05}.ts") {
                fails.push(format!(
                    "{at}: uri {:?}, want {:?}",
                    s.uri,
                    format!("{i:05}.ts")
                ));
            }
            if let Some(d) = seg.get(i) {
                if (f64::from(s.duration) - d).abs() > 0.01 {
                    fails.push(format!("{at}: EXTINF {} but manifest {d}", s.duration));
                }
            }
            match &s.key {
                None => fails.push(format!("{at}: no EXT-X-KEY before it")),
                Some(k) => {
                    if k.method != m3u8_rs::KeyMethod::AES128 {
                        fails.push(format!("{at}: METHOD {:?}, want AES-128", k.method));
                    }
                    if k.uri.as_deref() != Some(&format!("../keys/{i}.key")) {
                        fails.push(format!("{at}: key URI {:?}, want ../keys/{i}.key", k.uri));
                    }
                    let want_iv = format!("0x{}", hex::encode(derive_iv(i as u64)));
                    let iv_ok =
                        k.iv.as_deref()
                            .is_some_and(|iv| iv.eq_ignore_ascii_case(&want_iv) && iv.len() == 34);
                    if !iv_ok {
                        fails.push(format!("{at}: IV {:?}, want {want_iv}", k.iv));
                    }
                }
            }
        }
    }

    for i in 0..seg.len() {
        let p = out.join("keys").join(format!("{i}.key"));
        match std::fs::read(&p) {
            Ok(b) if b == derive_key(secret, i as u64) => {}
            Ok(b) => fails.push(format!(
                "keys/{i}.key = {} ({} bytes), want {}",
                hex::encode(&b),
                b.len(),
                hex::encode(derive_key(secret, i as u64))
            )),
            Err(e) => fails.push(format!("keys/{i}.key: {e}")),
        }
    }
}
