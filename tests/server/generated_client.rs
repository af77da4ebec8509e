//! The mobile app's whole flow through a client generated from the OpenAPI document by an
//! independent generator (PyPI `openapi-python-client`; issue 18): sign in with a login
//! link → list films → playback → checkout with the dev provider → progress → comment. The
//! generated models parse every answer strictly and an undocumented status fails, so this
//! holds the document to what an SDK made from it can do (`tests/peers/generated_client_flow.py`).

use std::error::Error;

use serde_json::json;

use crate::harness::media::src_other;
use crate::harness::peer_scripts::python_json;
use crate::harness::server::{Server, FAST_PACE};
use crate::harness::users::unique_email;

/// `CINEGATE_PUBLIC_URL` of every harness server: the address in the URLs it makes.
const PUBLIC: &str = "http://127.0.0.1:1";

#[test]
fn a_generated_client_signs_in_buys_watches_and_comments() -> Result<(), Box<dyn Error>> {
    let server = Server::start(&[("CINEGATE_PAYMENTS__DEV__ENABLED", "true"), FAST_PACE]);
    let admin = server.user("gen-admin", true);
    let film = server.priced_film(&admin, &src_other(), "Generated client film", 350);
    let email = unique_email("gen-viewer");
    let created = server.cli(&["user", "create", &email]);
    assert!(created.starts_with("created"), "user create: {created:?}");
    let token = server.login_link_token(&email);

    let work = server.root.join("generated-client");
    let seen = python_json(
        "generated_client_flow.py",
        &[&server.base, PUBLIC, &token, &film, &work.to_string_lossy()],
    );
    assert_eq!(seen["token_type"], "Bearer", "{seen}");
    assert_eq!(seen["me"], email.as_str(), "{seen}");
    assert_eq!(seen["listed"], true, "{seen}");
    assert_eq!(seen["first_entitlement"], "preview", "{seen}");
    assert_eq!(seen["return_status"], 200, "{seen}");
    assert_eq!(seen["order_state"], "captured", "{seen}");
    assert_eq!(seen["order_amount"], json!([350, "USD"]), "{seen}");
    assert_eq!(seen["second_entitlement"], "full", "{seen}");
    assert_eq!(seen["keys"], 2, "the 12 s film's two segments: {seen}");
    assert_eq!(seen["unlocked"], true, "{seen}");
    assert_eq!(seen["coverage"], 1.0, "{seen}");
    assert_eq!(seen["comment_listed"], true, "{seen}");
    Ok(())
}
