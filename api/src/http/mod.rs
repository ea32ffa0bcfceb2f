//! What every request passes through before and after its operation:
//! request ids and timeouts, the client's address, rate limits, CORS for
//! the visitor API, slow-header protection and metrics.

pub mod client_ip;
pub mod cors;
pub mod header_timeout;
pub mod metrics;
pub mod middleware;
pub mod ratelimit;
