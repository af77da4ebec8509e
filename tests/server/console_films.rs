//! The console's film pages in a real browser (issue 15): the film form (a markup title
//! stays text), the upload through the page with a reload mid-upload that resumes from
//! the server's offset, live packaging to 100%, publishing, the console player playing
//! the whole film, and a non-film's 422 and an oversized file's 413 shown in the page with
//! nothing left behind. Screenshots go to `target/console-shots/`.

use std::io::Write;
use std::path::Path;

use testkit::sources::{lavfi_av, with, X264};

use crate::harness::browser::run_browser;
use crate::harness::media::sources;
use crate::harness::server::Server;
use crate::harness::users::unique_email;

type R = Result<(), Box<dyn std::error::Error>>;

/// The upload limit of the test's server: above the 20 s film, below `big.mp4`.
const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// 20 s of testsrc2 and a tone at a high constant bitrate: several MB, so an upload in
/// 256 KiB chunks takes many requests.
fn film_20s() -> std::path::PathBuf {
    let args = with(
        with(lavfi_av("testsrc2", "640x360", 25, 20, 440, 48000), X264),
        &[
            "-b:v",
            "2400k",
            "-minrate",
            "2400k",
            "-maxrate",
            "2400k",
            "-bufsize",
            "1200k",
            "-x264-params",
            "nal-hrd=cbr",
            "-g",
            "50",
            "-c:a",
            "aac",
            "-b:a",
            "64k",
        ],
    );
    sources().gen("console-20s-cbr", "mp4", args)
}

/// Files left under `dir` (recursively).
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

#[test]
fn an_admin_creates_uploads_with_a_reload_packages_publishes_and_plays_a_film() -> R {
    let max = MAX_BYTES.to_string();
    let server = Server::start(&[("CINEGATE_UPLOAD__MAX_BYTES", max.as_str())]);
    let admin = unique_email("films-admin");
    assert!(server
        .cli(&["user", "create", &admin, "--admin"])
        .starts_with("created"));
    let film = film_20s();
    let film_bytes = std::fs::metadata(&film)?.len();
    assert!(
        film_bytes > 2 * 1024 * 1024 && film_bytes < MAX_BYTES,
        "the test film is {film_bytes} bytes"
    );
    let dir = tempfile::tempdir()?;
    let junk = dir.path().join("x.mp4");
    let mut bytes = vec![0u8; 512 * 1024];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::File::create(&junk)?.write_all(&bytes)?;
    let big = dir.path().join("big.mp4");
    std::fs::File::create(&big)?.set_len(MAX_BYTES + 1)?;

    let out = run_browser(
        "console_films.mjs",
        &[
            ("BASE_URL", server.base.clone()),
            ("ADMIN_TOKEN", server.login_link_token(&admin)),
            ("FILM_PATH", film.display().to_string()),
            ("FILM_BYTES", film_bytes.to_string()),
            ("JUNK_PATH", junk.display().to_string()),
            ("BIG_PATH", big.display().to_string()),
        ],
    )?;
    println!("{out}");
    assert!(
        out.contains("ok deleting asks, naming the film, and goes back to the list"),
        "{out}"
    );
    // Nothing of the refused uploads is left: no partial bytes, no upload record.
    let uploads = server.root.join("media/uploads");
    let left: Vec<String> = ["partial", "incoming"]
        .iter()
        .flat_map(|d| files_under(&uploads.join(d)))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    Ok(())
}
