//! Alerts: what is raised (a probe's hard state, a job's last failure, a crash loop),
//! who hears it and when ([`escalation`]), and how it is delivered.

pub mod channel;
pub mod config;
pub mod deliveries;
pub mod escalation;
pub mod message;
pub mod notices;
pub mod store;
