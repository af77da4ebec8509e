//! `cinegate serve`.

use std::path::Path;

pub fn run(config: Option<&Path>) -> anyhow::Result<()> {
    let config = super::load_config(config)?;
    super::init_logging_as(&config.log.filter, config.log.format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = crate::startup::Application::build(config.clone())?;
        let port = app.port();
        // Tests and scripts read this line to learn the port when `listen` ends in :0.
        println!("cinegate listening on http://{}:{port}", config.listen.ip());
        if let Some(port) = app.https_port() {
            println!(
                "cinegate listening on https://{}:{port}",
                config.tls.listen.ip()
            );
        }
        tracing::info!(port, media_dir = %config.media_dir.display(), "cinegate started");
        app.run_until_stopped().await
    })
}
