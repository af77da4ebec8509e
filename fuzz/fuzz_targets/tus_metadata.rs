//! tus `Upload-Metadata` and the byte counts of `Upload-Length` / `Upload-Offset`. What
//! parses re-encodes to a header that parses to the same thing.
#![no_main]

use cinegate::api::tus::{parse_bytes, parse_metadata};
use libfuzzer_sys::fuzz_target;

fn encode(map: &std::collections::BTreeMap<String, String>) -> String {
    use base64::Engine;
    map.iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(map) = parse_metadata(text) {
        for key in map.keys() {
            assert!(
                !key.is_empty() && !key.contains(',') && !key.contains(' '),
                "{key:?}"
            );
        }
        let again = parse_metadata(&encode(&map)).ok();
        assert_eq!(again.as_ref(), Some(&map), "{text:?}");
    }
    if let Some(n) = parse_bytes(text) {
        assert_eq!(parse_bytes(&n.to_string()), Some(n));
        assert!(text
            .trim_start_matches('+')
            .bytes()
            .all(|b| b.is_ascii_digit()));
    }
});
