#!/usr/bin/env python3
"""A tus 1.0 client (the PyPI `tuspy` package) for the resumable-upload test.

usage:
  tus_upload.py start  ENDPOINT TOKEN FILE FILM_ID CHUNK   create the upload, send one chunk, stop
  tus_upload.py resume UPLOAD_URL TOKEN FILE CHUNK         a new uploader: HEAD for the offset,
                                                           then send the rest
Prints one JSON object.
"""
import json
import os
import sys

from tusclient import client


def headers_of(uploader):
    req = getattr(uploader, "request", None)
    h = getattr(req, "response_headers", None) or {}
    return {str(k).lower(): v for k, v in dict(h).items()}


def main():
    mode = sys.argv[1]
    if mode == "start":
        endpoint, token, path, film_id, chunk = sys.argv[2:7]
        c = client.TusClient(endpoint, headers={"Authorization": "Bearer " + token})
        up = c.uploader(
            path,
            chunk_size=int(chunk),
            metadata={"film_id": film_id, "filename": os.path.basename(path)},
        )
        up.upload_chunk()
        print(json.dumps({"url": up.url, "offset": up.offset}))
    elif mode == "resume":
        url, token, path, chunk = sys.argv[2:6]
        c = client.TusClient(url, headers={"Authorization": "Bearer " + token})
        up = c.uploader(path, url=url, chunk_size=int(chunk))
        start = up.offset  # from HEAD
        up.upload()
        print(
            json.dumps(
                {
                    "start_offset": start,
                    "final_offset": up.offset,
                    "job_id": headers_of(up).get("cinegate-job-id"),
                }
            )
        )
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
