#!/usr/bin/env python3
"""Fetch an HLS master playlist and every media playlist it names over HTTP, parse them
with the PyPI `m3u8` package (an independent parser), and print what it saw as JSON.

usage: check_playlists.py MASTER_URL
"""
import json
import sys

import m3u8


def media(url):
    pl = m3u8.load(url)
    segments = []
    for seg in pl.segments:
        key = seg.key
        segments.append(
            {
                "uri": seg.uri,
                "absolute_uri": seg.absolute_uri,
                "duration": seg.duration,
                "key": None
                if key is None
                else {
                    "method": key.method,
                    "uri": key.uri,
                    "absolute_uri": key.absolute_uri,
                    "iv": key.iv,
                },
            }
        )
    return {
        "url": url,
        "is_variant": pl.is_variant,
        "is_endlist": pl.is_endlist,
        "playlist_type": pl.playlist_type,
        "target_duration": pl.target_duration,
        "version": pl.version,
        "segments": segments,
    }


def main():
    master_url = sys.argv[1]
    master = m3u8.load(master_url)
    variants = []
    for v in master.playlists:
        info = v.stream_info
        variants.append(
            {
                "uri": v.uri,
                "absolute_uri": v.absolute_uri,
                "bandwidth": info.bandwidth,
                "average_bandwidth": info.average_bandwidth,
                "resolution": list(info.resolution) if info.resolution else None,
                "codecs": info.codecs,
                "frame_rate": info.frame_rate,
                "closed_captions": info.closed_captions,
                "media": media(v.absolute_uri),
            }
        )
    json.dump(
        {
            "is_variant": master.is_variant,
            "version": master.version,
            "independent_segments": master.is_independent_segments,
            "variants": variants,
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
