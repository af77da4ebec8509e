//! The `Range` header of a segment request: the part served always lies inside the file and
//! is not empty, so `Content-Range`'s `end - 1` and the sendfile length cannot go wrong.
#![no_main]

use cinegate::api::hls::satisfiable_range;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first eight bytes are the file size (small sizes as often as huge ones), the rest
    // is the header value.
    let Some((size, header)) = data.split_first_chunk::<8>() else {
        return;
    };
    let raw = u64::from_le_bytes(*size);
    let size = if raw & 1 == 0 {
        raw >> 1
    } else {
        (raw >> 1) % 4096
    };
    let Ok(header) = std::str::from_utf8(header) else {
        return;
    };
    if let Some((start, length)) = satisfiable_range(header, size) {
        assert!(length > 0, "{header:?} {size}");
        assert!(start < size, "{header:?} {size} -> {start}");
        assert!(
            start.checked_add(length).is_some_and(|end| end <= size),
            "{header:?} {size} -> {start}+{length}"
        );
    }
});
