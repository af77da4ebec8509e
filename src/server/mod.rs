//! Server plumbing: how HTTP reaches the surfaces, knowing nothing of their routes.
//! actix-web's `HttpServer`, built by hand for one reason: the connection type is
//! [`sendfile::Conn`], so segment bodies can go out with sendfile(2) (see that module).
//! The settings are `HttpServer`'s defaults except where noted. `client` says who a
//! request's client is. `startup` assembles the application and hands it to [`Builder`].
//! `tls` holds the served certificate (reloaded from files, or from ACME by `acme`) for
//! the HTTPS listener [`Builder::tls`] adds.

pub mod acme;
pub mod client;
pub mod files;
pub mod sendfile;
pub mod session;
pub mod tls;

use std::fmt;
use std::net::TcpListener;
use std::time::Duration;

use actix_http::body::BoxBody;
use actix_http::header::{HeaderValue, STRICT_TRANSPORT_SECURITY};
use actix_http::{HttpServiceBuilder, Request, Response};
use actix_server::{GracefulShutdownSignal, Server, ServerBuilder};
use actix_service::ServiceFactoryExt;
use actix_service::{fn_service, map_config, IntoServiceFactory, Service, ServiceFactory};
use actix_web::body::MessageBody;
use actix_web::dev::AppConfig;

use sendfile::Conn;

/// What every listener's HTTP service shares: `HttpServer`'s request and disconnect
/// timeouts, and the stop signal, on which idle keep-alive connections close at once
/// instead of holding a worker until the shutdown timeout.
fn settings<T, S>(shutdown: &GracefulShutdownSignal) -> HttpServiceBuilder<T, S>
where
    S: ServiceFactory<Request, Config = ()>,
    S::Error: Into<Response<BoxBody>> + 'static,
    S::InitError: fmt::Debug,
    <S::Service as Service<Request>>::Future: 'static,
{
    let shutdown = shutdown.clone();
    HttpServiceBuilder::default()
        .graceful_shutdown_signal(move || {
            let shutdown = shutdown.clone();
            async move { shutdown.notified().await }
        })
        .client_request_timeout(Duration::from_secs(5))
        .client_disconnect_timeout(Duration::from_secs(1))
}

/// The listeners of one server, stopped together by one graceful-shutdown signal.
pub struct Builder {
    builder: ServerBuilder,
    shutdown: GracefulShutdownSignal,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    pub fn new() -> Self {
        let builder = Server::build();
        let shutdown = builder.graceful_shutdown_signal();
        Self { builder, shutdown }
    }

    /// The main listener: every connection is a [`Conn`], whose handle a handler finds in
    /// `HttpRequest::conn_data` to send files on.
    pub fn app<F, I, S, B>(
        self,
        name: &str,
        listener: TcpListener,
        factory: F,
    ) -> std::io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let addr = listener.local_addr()?;
        let shutdown = self.shutdown.clone();
        let builder = self.builder.listen(name, listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            let http = settings(&shutdown)
                // HLS players hold their connection between segment requests; 75 s is
                // nginx's default and outlasts a player's pause between 6 s segments.
                .keep_alive(Duration::from_secs(75))
                .local_addr(addr)
                .on_connect_ext(|conn: &Conn, ext: &mut actix_http::Extensions| {
                    ext.insert(conn.handle());
                })
                // `AppConfig::new` is private to actix-web; the default's host and address
                // (localhost:8080) only show in `ConnectionInfo` for a request without a
                // Host header, and nothing here builds URLs from them.
                .h1(map_config(app, |_| AppConfig::default()));
            fn_service(|io: tokio::net::TcpStream| {
                let peer = io.peer_addr().ok();
                // Like nginx's `tcp_nodelay on`: a response's last packet leaves at once.
                let _ = io.set_nodelay(true);
                std::future::ready(Ok((Conn::new(io), peer)))
            })
            .and_then(http)
        })?;
        Ok(Self { builder, ..self })
    }

    /// A listener of plain TCP connections with `HttpServer`'s settings (the
    /// `metrics.listen` one: no segments go out there).
    pub fn plain<F, I, S, B>(
        self,
        name: &str,
        listener: TcpListener,
        factory: F,
    ) -> std::io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let shutdown = self.shutdown.clone();
        let builder = self.builder.listen(name, listener, move || {
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response());
            settings(&shutdown)
                .h1(map_config(app, |_| AppConfig::default()))
                .tcp()
        })?;
        Ok(Self { builder, ..self })
    }

    /// The HTTPS listener: rustls (ring) over plain TCP connections, HTTP/1.1, the main
    /// listener's timeouts. Connections are not [`Conn`]s (sendfile cannot see through
    /// TLS), so file bodies fall back to ordinary streams there. `hsts`, when set, is the
    /// `Strict-Transport-Security` value of every answer.
    pub fn tls<F, I, S, B>(
        self,
        name: &str,
        listener: TcpListener,
        config: rustls::ServerConfig,
        hsts: Option<HeaderValue>,
        factory: F,
    ) -> std::io::Result<Self>
    where
        F: Fn() -> I + Send + Clone + 'static,
        I: IntoServiceFactory<S, Request>,
        S: ServiceFactory<Request, Config = AppConfig> + 'static,
        S::Error: Into<actix_web::Error> + 'static,
        S::InitError: fmt::Debug,
        S::Response: Into<Response<B>> + 'static,
        <S::Service as Service<Request>>::Future: 'static,
        S::Service: 'static,
        B: MessageBody + 'static,
    {
        let addr = listener.local_addr()?;
        let shutdown = self.shutdown.clone();
        let builder = self.builder.listen(name, listener, move || {
            let hsts = hsts.clone();
            let app = factory()
                .into_factory()
                .map_err(|err| err.into().error_response())
                .map(move |res| {
                    let mut res: Response<B> = res.into();
                    if let Some(value) = &hsts {
                        res.headers_mut()
                            .insert(STRICT_TRANSPORT_SECURITY, value.clone());
                    }
                    res
                });
            settings(&shutdown)
                .keep_alive(Duration::from_secs(75))
                .local_addr(addr)
                .h1(map_config(app, |_| AppConfig::default()))
                .rustls_0_23(config.clone())
        })?;
        Ok(Self { builder, ..self })
    }

    /// Runs the listeners. Signals are the caller's (`startup` stops the server itself,
    /// after its own shutdown steps); in-flight requests get 30 s to finish.
    pub fn run(self) -> Server {
        self.builder.disable_signals().shutdown_timeout(30).run()
    }
}
