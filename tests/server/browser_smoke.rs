//! The Chromium test peer itself (issue 15): `tests/peers/browser/smoke.mjs` loads the
//! vendored htmx, hls.js, tus-js-client and chart.js (`web/assets/vendor/`) under the admin
//! console's CSP and exercises each with no CSP violation reported.

use crate::harness::browser::run_browser;

#[test]
fn vendored_libraries_work_in_chromium_under_the_console_csp(
) -> Result<(), Box<dyn std::error::Error>> {
    let out = run_browser("smoke.mjs", &[])?;
    for step in [
        "ok vendored libraries load under the console CSP",
        "ok htmx swaps a fragment",
        "ok hls.js plays an HLS stream (blob: worker and MediaSource)",
        "ok tus-js-client uploads",
        "ok chart.js draws",
        "ok no CSP violation or error was reported",
    ] {
        assert!(
            out.contains(step),
            "smoke.mjs did not report `{step}`:\n{out}"
        );
    }
    Ok(())
}
