//! The proxy in front of the service (`[proxy]`): the daemon's `proxy` component
//! forwards HTTP/1.1 to the instance behind a role (`production` unless told), so that
//! an upgrade can switch which instance serves without a client noticing. What it
//! routes to and whether it is in maintenance is [`Routing`], kept in
//! `<state_dir>/proxy.json` so that it survives a daemon restart.

pub mod config;
pub mod routing;

pub use config::ProxyConfig;
pub use routing::{Maintenance, Routing};
