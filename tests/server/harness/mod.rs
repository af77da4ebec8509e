//! The harness: the real `cinegate` binary on loopback ([`server`]), its operator CLI, a
//! blocking HTTP client ([`http`]) and raw-socket requests ([`raw`]) for paths a URL
//! library would normalise, generated sources and the ffmpeg/ffprobe judges ([`media`], over
//! the `testkit` crate the transcoder's tests share), the API calls tests build on
//! ([`users`], [`films`], [`playback`]) and one shared server with two packaged, published
//! films ([`shared`]), and a 3-node Garage cluster behind an nginx "CDN" for the object-storage
//! tests ([`garage`]).

pub mod browser;
pub mod clock;
pub mod films;
pub mod garage;
pub mod http;
pub mod media;
pub mod peer_scripts;
pub mod playback;
pub mod raw;
pub mod server;
pub mod shared;
pub mod threads;
pub mod users;
