//! MPEG-TS checks written from ISO/IEC 13818-1: a PSI section's CRC in the first packet.

/// MPEG-2 CRC-32 (poly 0x04C11DB7, init all ones, no reflection, no final xor).
fn crc32_mpeg(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04C1_1DB7
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// If the first TS packet starts a PSI section (PAT, PMT, SDT …) that fits in it, whether
/// its CRC-32 is right. The first 16 bytes of a CBC plaintext depend on the IV, so this
/// proves the segment was encrypted with the IV the test used. `None` when the first
/// packet is not a whole PSI section.
pub fn first_packet_psi_crc_ok(plain: &[u8]) -> Option<bool> {
    if plain.len() < 188 || plain[0] != 0x47 {
        return Some(false);
    }
    let pkt = &plain[..188];
    let pusi = pkt[1] & 0x40 != 0;
    let afc = (pkt[3] >> 4) & 0x3;
    if !pusi || afc == 0 || afc == 2 {
        return None;
    }
    let mut p = 4;
    if afc == 3 {
        p += 1 + usize::from(pkt[4]);
    }
    let pointer = usize::from(*pkt.get(p)?);
    let s = p + 1 + pointer;
    let table_id = *pkt.get(s)?;
    // PES packets start 00 00 01; PSI table ids are < 0x80 here and use section syntax.
    if table_id == 0x00 && pkt.get(s + 1) == Some(&0x00) {
        return None;
    }
    let b1 = *pkt.get(s + 1)?;
    if b1 & 0x80 == 0 {
        return None; // not section_syntax: not a CRC'd table
    }
    let len = (usize::from(b1 & 0x0F) << 8) | usize::from(*pkt.get(s + 2)?);
    let end = s + 3 + len;
    if end > 188 || len < 4 {
        return None;
    }
    let body = &pkt[s..end - 4];
    let want = u32::from_be_bytes([pkt[end - 4], pkt[end - 3], pkt[end - 2], pkt[end - 1]]);
    Some(crc32_mpeg(body) == want)
}
