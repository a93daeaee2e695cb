//! The edge.
pub mod http;
